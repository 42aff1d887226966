"""Every module that defines tables, so `Base.metadata` is complete (Alembic, tests): an explicit table.

Listed by name: `retrain.models` belongs to the closed loop, which `monitor` code never imports (the import
contracts in pyproject.toml); the wheel ships both packages, so every name here imports.
"""

from __future__ import annotations

import importlib

TABLE_MODULES = (
    "monitor.models", "monitor.pipeline.models", "monitor.alerts.models", "monitor.webhooks.models",
    "monitor.ui.models", "monitor.projects.models", "monitor.evaluators.models",
    "monitor.evaluators.judge.models", "retrain.models",
)


def import_all_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)
