"""Import every module that defines tables, so `Base.metadata` is complete (Alembic, tests).

`retrain` tables are loaded by name only when that package is installed next to `monitor`; `monitor` code
never imports `retrain` directly.
"""

from __future__ import annotations

import importlib

TABLE_MODULES = (
    "monitor.models", "monitor.pipeline.models", "monitor.alerts.models", "monitor.ui.models", "retrain.models",
)


def import_all_tables() -> None:
    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module must not be hidden
                raise
