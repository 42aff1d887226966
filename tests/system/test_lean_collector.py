"""The collector (the API app every collector process loads) imports no torch: it needs a model's *name* for the
retraining routes, never the model, and torch cost each process ~180 MB of memory and seconds of start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.services import repo_root

_PROBE = """
import json, sys
from monitor.api.app import create_app
create_app()
print(json.dumps({"heavy": sorted(m for m in ("torch", "transformers", "sentence_transformers", "peft")
                                  if m in sys.modules)}))
"""


def test_the_api_app_loads_without_torch() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=repo_root(), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["heavy"] == [], f"the collector imports {found['heavy']}: import their names from a lighter module"
