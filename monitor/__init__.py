"""driftloop: production monitoring and a closed retraining loop for LLM applications.

`monitor` is the core (collector, metrics, alerts). `retrain` builds on it and is never imported
from here, except by the composition roots (the CLI, the API app, `monitor.composition`, the demo):
`lint-imports` checks that (see `[tool.importlinter]` in pyproject.toml and docs/architecture.md).
"""

__version__ = "0.1.0"
