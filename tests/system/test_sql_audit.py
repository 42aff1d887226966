"""SQL is built only with bound parameters: no SQL string in `monitor/` or `retrain/` is assembled with
f-strings, `%` or `.format()` — except the reviewed places below, which interpolate identifiers from the code
itself, never values. Everything else goes through SQLAlchemy expressions or `text()` with a literal."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.services import repo_root

SQL_CALLS = frozenset({"execute", "exec_driver_sql", "executemany", "executescript", "copy", "text"})
_PARTITION_NAMES = ("table, partition, index, constraint and column names from monitor/partitions/schema.py "
                    "(code constants) or the catalogue, an interval from a Literal setting; never a value")
_BOUNDS = "; range bounds are isoformat() of datetimes computed by monitor/partitions/bounds.py"
# (file, function) -> why its dynamic SQL is safe.
REVIEWED: dict[tuple[str, str], str] = {
    ("monitor/ingest/service.py", "_copy_insert"): "the savepoint's name is a module constant (_SAVEPOINT)",
    ("monitor/ingest/service.py", "_copy_rows"): (
        "the table and column list come from module constants (_EVENT_COLUMNS, _FEEDBACK_COLUMNS), the ORM table "
        "name and the partition spec's keys table; every value travels through COPY, never through the SQL text"
    ),
    ("monitor/ingest/service.py", "_staged_insert"): (
        "the staging table, column list and conflict columns come from module constants (_EVENT_COLUMNS, "
        "_FEEDBACK_COLUMNS) and the ORM table name; every value travels through COPY, never through the SQL text"
    ),
    ("monitor/partitions/convert.py", "_swap"): _PARTITION_NAMES,
    ("monitor/partitions/convert.py", "_build"): _PARTITION_NAMES + " (and its index definitions)",
    ("monitor/partitions/convert.py", "_copy"): _PARTITION_NAMES + "; batch bounds are integers from min/max(id)",
    ("monitor/partitions/convert.py", "_lock"): _PARTITION_NAMES + "; the lock timeout is int() of an int",
    ("monitor/partitions/convert.py", "row_counts"): _PARTITION_NAMES,
    ("monitor/partitions/convert.py", "_initial_ranges"): _PARTITION_NAMES + "; the dates are bound parameters",
    ("monitor/partitions/convert.py", "to_partitioned"): _PARTITION_NAMES + _BOUNDS,
    ("monitor/partitions/convert.py", "to_plain"): _PARTITION_NAMES,
    ("monitor/partitions/convert.py", "repeated_client_ids"): _PARTITION_NAMES,
    ("monitor/partitions/convert.py", "_drop_repeated_ids"): _PARTITION_NAMES + " (children from EVENT_CHILDREN)",
    ("monitor/partitions/service.py", "create_partition"): _PARTITION_NAMES + _BOUNDS,
    ("monitor/partitions/service.py", "ensure_partitions"): _PARTITION_NAMES + "; the interval is a Literal setting",
    ("monitor/partitions/service.py", "partition_rows"): "a partition name read from the catalogue (pg_inherits)",
    ("monitor/partitions/service.py", "drop_partitions"): "partition names read from the catalogue (pg_inherits)",
    ("monitor/partitions/service.py", "forget_client_ids"): _PARTITION_NAMES + "; the ids are bound parameters",
    ("monitor/retention/service.py", "_forget_expired"): (
        "the key-table names are literals in the function; the cutoff and batch size are bound parameters"
    ),
    ("monitor/events/indexing.py", "index_batch"): (
        "FTS_EXPRESSION is a module constant (monitor/models.py); the id bounds and batch size are bound parameters"
    ),
    ("monitor/projects/deletion.py", "delete_project"): (
        _PARTITION_NAMES + " (a keys_table of BY_NAME); the project id is a bound parameter"
    ),
    ("monitor/events/queries.py", "_estimate"): (
        "prefixes EXPLAIN to a statement SQLAlchemy compiled from the explorer's own query; its values stay bound "
        "parameters (compiled.params), never part of the SQL text"
    ),
}


def _dynamic(node: ast.expr, tainted: frozenset[str] = frozenset()) -> bool:
    """An expression that assembles a string at run time, or a name that was assigned one (`tainted`)."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    if isinstance(node, ast.Name):
        return node.id in tainted
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("format", "join"))


def _tainted_names(func: ast.AST) -> frozenset[str]:
    """Names the function assigns an assembled string to (`q = f"... {v}"`, `q = a + b`, `q += v`, `q2 = q`),
    so that `conn.exec_driver_sql(q)` is judged by how `q` was built. Flow-insensitive: a name assigned an
    assembled string anywhere in the function counts everywhere in it (a reviewer can list a false alarm)."""
    tainted: set[str] = set()
    while True:
        before = len(tainted)
        for node in ast.walk(func):
            for target in _assigned_string_targets(node, frozenset(tainted)):
                tainted.update(t.id for t in ast.walk(target) if isinstance(t, ast.Name))
        if len(tainted) == before:
            return frozenset(tainted)


def _assigned_string_targets(node: ast.AST, tainted: frozenset[str]) -> list[ast.expr]:
    """The targets `node` assigns an assembled string to (none if it assigns nothing, or nothing assembled)."""
    if isinstance(node, ast.AugAssign):  # `q += v` / `q %= v`: whatever q was, it is assembled now
        return [node.target] if isinstance(node.op, ast.Add | ast.Mod) else []
    value = getattr(node, "value", None)
    if not isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) or value is None:
        return []
    if not _dynamic(value, tainted):
        return []
    return list(node.targets) if isinstance(node, ast.Assign) else [node.target]


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _findings(root: Path, packages: tuple[str, ...] = ("monitor", "retrain")) -> list[tuple[str, str, int, str]]:
    """(file, function, line, argument) of every SQL call under root/<package> whose SQL is assembled at run time,
    directly in the call or in a name assigned first, and of every `text()` of anything but a literal."""
    out = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(), filename=rel)
            for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
                tainted = _tainted_names(func)
                for call in [n for n in ast.walk(func) if isinstance(n, ast.Call)]:
                    name = _call_name(call)
                    if name not in SQL_CALLS or not call.args:
                        continue
                    first = call.args[0]
                    literal_text = name != "text" or isinstance(first, ast.Constant)
                    if _dynamic(first, tainted) or not literal_text:
                        out.append((rel, func.name, call.lineno, ast.unparse(first)[:80]))
    return out


def test_no_sql_is_assembled_from_strings_outside_reviewed_places() -> None:
    findings = _findings(repo_root())
    unreviewed = [f for f in findings if (f[0], f[1]) not in REVIEWED]
    assert unreviewed == [], "SQL built from strings; use bound parameters (or review and list it here)"
    # The list stays honest: every reviewed place still exists and still builds SQL dynamically.
    assert {(f[0], f[1]) for f in findings} == set(REVIEWED)


# Planted code for the audit's self-test: each function named bad_* builds SQL from a value in one shape the
# audit must catch; each good_* runs SQL the safe way and must produce no finding.
PLANTED = """
from sqlalchemy import select, text

TABLE_SQL = "SELECT count(*) FROM events"


def bad_fstring_in_call(s, v):
    s.execute(text(f"SELECT * FROM t WHERE x = {v}"))


def bad_percent_in_call(conn, v):
    conn.exec_driver_sql("DELETE FROM t WHERE id = %s" % v)


def bad_text_of_a_parameter(s, q):
    s.execute(text(q))


def bad_fstring_in_variable(conn, v):
    q = f"DELETE FROM t WHERE id = {v}"
    conn.exec_driver_sql(q)


def bad_format_in_variable(conn, v):
    q = "DELETE FROM t WHERE id = {}".format(v)
    conn.exec_driver_sql(q)


def bad_percent_in_variable(cur, v):
    sql = "UPDATE t SET x = '%s'" % v
    cur.execute(sql)


def bad_concatenation_in_variable(cur, v):
    sql: str = "SELECT * FROM t WHERE name = '" + v + "'"
    cur.executemany(sql, [])


def bad_appended_to_a_variable(cur, v):
    sql = "SELECT * FROM t WHERE 1 = 1"
    sql += f" AND x = {v}"
    cur.execute(sql)


def bad_copied_through_another_name(conn, v):
    first = f"DELETE FROM t WHERE id = {v}"
    second = first
    conn.exec_driver_sql(second)


def bad_joined_in_variable(cur, values):
    sql = "SELECT * FROM t WHERE x IN (" + ", ".join(values) + ")"
    cur.execute(sql)


def good_bound_parameter(s, v):
    s.execute(text("SELECT * FROM t WHERE x = :v"), {"v": v})


def good_literal_in_variable(conn, v):
    q = "DELETE FROM t WHERE id = %s"
    conn.exec_driver_sql(q, (v,))


def good_expression(s, table, v):
    stmt = select(table).where(table.c.x == v)
    s.execute(stmt)


def good_module_constant(conn):
    conn.exec_driver_sql(TABLE_SQL)


def good_fstring_for_a_message(log, v):
    message = f"deleted {v}"
    log.info(message)
"""


def test_the_audit_catches_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "monitor").mkdir()
    (tmp_path / "monitor" / "planted.py").write_text(PLANTED)
    findings = _findings(tmp_path)
    planted = ast.parse(PLANTED)
    functions = [n.name for n in planted.body if isinstance(n, ast.FunctionDef)]
    assert {f[1] for f in findings} == {name for name in functions if name.startswith("bad_")}, findings
    assert all(f[0] == "monitor/planted.py" for f in findings)
    assert len([n for n in functions if n.startswith("good_")]) == 5  # the good shapes were really checked
