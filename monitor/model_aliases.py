"""Names of the bundled offline model, importable without torch.

The collector and the API app need the *name* (a retraining job's default base model, the allow-list of base
models), not the model: importing `monitor.llm` for it loaded torch into every collector process (~200 MB and
seconds of start-up per process, for nothing on the ingest path).
"""

from __future__ import annotations

DEFAULT_MODEL_ALIAS = "smollm2"
