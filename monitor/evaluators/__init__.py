"""Online evaluators (issue #21): per-event quality checks summarised per window as `eval.<name>.*` metrics.

Pure parts (base, the built-ins, registry) never import the database or the queue; the window stage lives in
monitor/pipeline/stages/evaluators.py and the score table in monitor/evaluators/models.py.
"""
