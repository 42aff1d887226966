"""The lock files agree with pyproject.toml, and the suite runs in the environment they describe.

`make test` and `make demo` install from lock/requirements.txt and lock/nodeps.txt; pyproject.toml keeps ranges
for library users. These tests fail when a dependency is edited without `make lock`, when a pin falls outside
pyproject's range, or when the running environment is not the locked one (a machine whose older packages made a
green run that a fresh machine would not repeat)."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = (ROOT / "lock" / "requirements.txt", ROOT / "lock" / "nodeps.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\;]+)", re.M)


def _refresh() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_refresh", ROOT / "lock" / "refresh.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(path: Path) -> dict[str, Version]:
    return {canonicalize_name(name): Version(version) for name, version in PIN.findall(path.read_text())}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for group in project["optional-dependencies"].values() for r in group]
    return [r for r in reqs if canonicalize_name(r.name) != canonicalize_name(project["name"])]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_lock_was_computed_from_the_current_pyproject(lock: Path) -> None:
    refresh = _refresh()
    stated = next(line for line in lock.read_text().splitlines() if line.startswith(refresh.INPUTS_PREFIX))
    assert stated.removeprefix(refresh.INPUTS_PREFIX) == refresh.inputs_digest(ROOT), (
        f"{lock.relative_to(ROOT)} is stale: pyproject.toml's dependencies or lock/constraints.in changed since "
        "it was generated. Run `make lock` and commit the result.")


def test_every_declared_requirement_is_pinned_within_its_range() -> None:
    pins = _pins(LOCKS[0])
    problems = []
    for req in _declared():
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}: locked {pinned}, pyproject asks {req.specifier}")
    assert not problems, "; ".join(problems)


def test_every_pin_carries_a_hash() -> None:
    for lock in LOCKS:
        blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
        unhashed = [b.split(" ", 1)[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
        assert not unhashed, f"{lock.name}: pins without a hash: {unhashed}"


def test_the_running_environment_is_the_locked_one() -> None:
    wrong = []
    for lock in LOCKS:
        for name, version in _pins(lock).items():
            try:
                installed = Version(metadata.version(name))
            except metadata.PackageNotFoundError:
                installed = None
            if installed != version:
                wrong.append(f"{name} {installed or 'missing'} (lock: {version})")
    assert not wrong, ("this environment differs from the lock; run the suite with `make test` (it builds .venv "
                       f"from the lock): {', '.join(wrong)}")
