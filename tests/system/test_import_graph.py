"""The import graph of `monitor/` and `retrain/` has no cycles, counting every import: module level, inside
functions, under `TYPE_CHECKING`. import-linter (`make lint`) checks the layer contracts; this checks what it
cannot: a lazy import inside a function is still an edge, and a cycle closed by one is still a cycle."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("monitor", "retrain")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    # `from a.b import c` names module `a.b.c` when that is a module, else an attribute of `a.b`.
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != module:
                out.add(resolved)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_sees_a_cycle_closed_by_a_lazy_import(tmp_path: Path) -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = "import os\n\ndef later():\n    from monitor.db import utcnow\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    assert _imports("monitor.x", path, {"monitor.x": path, "monitor.db": path}) == {"monitor.db"}


def test_project_modules_import_each_other_without_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100  # the walk found the tree
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles (lazy imports included):\n" + "\n".join(" ⇄ ".join(c) for c in cycles)


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0] if not node.module.startswith("monitor.") else node.module)
    return names


def test_the_sdk_imports_only_the_standard_library_httpx_and_itself() -> None:
    # `monitor` itself is only the package's `__init__` (the version string), which imports nothing.
    assert not [n for n in ast.walk(ast.parse((ROOT / "monitor" / "__init__.py").read_text()))
                if isinstance(n, ast.Import | ast.ImportFrom)]
    foreign = {}
    for path in (ROOT / "monitor" / "sdk").rglob("*.py"):
        bad = {n for n in _top_level_imports(path) if n not in sys.stdlib_module_names
               and n not in ("httpx", "monitor") and not n.startswith("monitor.sdk")
               # the stdlib-only detectors (tests/privacy checks they stay so)
               and n not in ("monitor.privacy.redact", "monitor.privacy.detectors")}
        if bad:
            foreign[path.name] = sorted(bad)
    assert foreign == {}


def test_the_worker_loads_every_module_that_defines_a_task() -> None:
    from monitor.worker.app import TASK_MODULES

    defining = {name for name, path in _modules().items() if "@celery_app.task" in path.read_text()}
    assert defining == set(TASK_MODULES)


def _contract(name_start: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["name"].startswith(name_start))


def _matches(module: str, expressions: object) -> bool:
    # import-linter's module expressions: `a.b` is that module, `a.*` its children, `a.**` all below it.
    assert isinstance(expressions, list)
    for expression in expressions:
        if "*" not in expression:
            if module == expression:
                return True
            continue
        pattern = re.escape(expression).replace(r"\*\*", ".+").replace(r"\*", "[^.]+")
        if re.fullmatch(pattern, module):
            return True
    return False


# The entry layers: the HTTP app and its helpers, the Celery app, the UI, the demo, the SDK (a contract of its
# own) and the composition roots. Everything else is domain or cross-cutting code.
ENTRY_LAYERS = ("monitor.api", "monitor.worker", "monitor.ui", "monitor.demo", "monitor.sdk", "retrain.ui")
ENTRY_MODULES = {"monitor.cli", "monitor.cli_support", "monitor.composition", "retrain.api", "retrain.cli",
                 "retrain.demo_loop"}
INTERFACE_NAME = re.compile(r"(^|\.)(routes\w*|tasks|cli|app|api|mount)$")


def test_every_task_route_and_cli_module_is_forbidden_to_domain_code() -> None:
    forbidden = _contract("domain code never imports")["forbidden_modules"]
    interface = {m for m in _modules() if INTERFACE_NAME.search(m) and m != "monitor.api"}
    assert len(interface) > 30
    assert sorted(m for m in interface if not _matches(m, forbidden)) == []


def test_every_module_is_domain_code_under_the_contract_or_an_entry_layer() -> None:
    # A new module lands in a domain package (then the contract covers it) or in an entry layer; a new top-level
    # module or package must be added to the contract's source_modules by hand, and this says so.
    sources = _contract("domain code never imports")["source_modules"]
    loose = sorted(m for m in _modules() if not _matches(m, sources) and m not in ENTRY_MODULES
                   and not any(m == layer or m.startswith(layer + ".") for layer in ENTRY_LAYERS))
    assert loose == []


def test_the_module_expression_matcher_reads_wildcards_as_import_linter_does() -> None:
    assert _matches("monitor.alerts.routes", ["monitor.alerts.**"])
    assert _matches("monitor.ingest.otlp.routes", ["monitor.ingest.**"])
    assert not _matches("monitor.ingest", ["monitor.ingest.**"])
    assert _matches("monitor.alerts.cli", ["monitor.*.cli"])
    assert not _matches("monitor.evaluators.judge.cli", ["monitor.*.cli"])
