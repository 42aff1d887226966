"""Every panel, annotation and variable query of every dashboard, expanded as Grafana expands it and run against
a real Postgres holding seeded metrics: no Grafana server runs here, so this is how we know a panel works.

Each query must run for several variable choices (one segment, All) and zoom levels ($__interval of 20s, 1h
and 1d, the last merging hourly windows), return the columns its panel kind needs (a `time` column sorted
ascending plus numeric values for time series; exactly the organized columns for a table; …), and, over the
seeded range, return data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from monitor.dashboards import load_dashboards
from tests.dashboards.conftest import T0, Seeded
from tests.dashboards.grafana_sql import TimeRange, Variable, expand

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NUMERIC = {"int2", "int4", "int8", "float4", "float8", "numeric"}
TIME = {"timestamptz", "timestamp"}
TEXT = {"text", "varchar", "bpchar", "name"}
INTERVALS = (timedelta(seconds=20), timedelta(hours=1), timedelta(days=1))


@dataclass(frozen=True)
class Query:
    dashboard: str
    kind: str  # panel type, "annotation" or "variable"
    title: str
    sql: str
    fmt: str
    panel: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.dashboard}:{self.title}"


def _queries() -> list[Query]:
    out = []
    for name, d in load_dashboards().items():
        for panel in d["panels"]:
            for t in panel.get("targets", []):
                out.append(Query(name, panel["type"], panel["title"], t["rawSql"], t["format"], panel))
        for a in d["annotations"]["list"]:
            if "target" in a:
                out.append(Query(name, "annotation", a["name"], a["target"]["rawSql"], a["target"]["format"], a))
        for v in d["templating"]["list"]:
            out.append(Query(name, "variable", f"${v['name']}", v["query"], "table", v))
    return out


QUERIES = _queries()


def run(seeded: Seeded, sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    """Column names, Postgres type names and rows; in a savepoint, so a failing query leaves the rest usable."""
    raw = seeded.connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with seeded.connection.begin_nested(), raw.cursor() as cur:
        cur.execute(sql.encode())  # no parameters: the SQL goes as Grafana sends it, `%` and all
        description = cur.description
        assert description is not None
        rows = [tuple(r) for r in cur.fetchall()]
    names = [c.name for c in description]
    types = [psycopg.postgres.types.get(c.type_code).name for c in description]
    return names, types, rows


def variable_choices(seeded: Seeded, dashboard: str, time_range: TimeRange) -> list[dict[str, Variable]]:
    """The dashboard's variables as a person would set them: the seeded project, then each multi-value variable
    at its default and at All (whose values come from running the variable's own query, as Grafana does)."""
    spec = load_dashboards()[dashboard]["templating"]["list"]
    base = {"project": Variable("project", (seeded.slug,))}
    choices = [dict(base)]
    all_values = dict(base)
    for v in spec:
        if v["name"] == "project":
            continue
        _, _, rows = run(seeded, expand(v["query"], variables=base, time_range=time_range))
        options = tuple(str(r[0]) for r in rows)
        assert options, f"variable ${v['name']} of {dashboard} has no options over the seeded data"
        default = tuple(v["current"]["value"])
        assert set(default) <= set(options), (v["name"], default, options)
        for choice in choices:
            choice[v["name"]] = Variable(v["name"], default, v["multi"], v["includeAll"])
        all_values[v["name"]] = Variable(v["name"], options, v["multi"], v["includeAll"])
    return choices + ([all_values] if len(all_values) > 1 else [])


def check_columns(q: Query, names: list[str], types: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert len(set(names)) == len(names), f"duplicate column names {names}"
    typed = dict(zip(names, types, strict=True))
    if q.kind == "variable":
        if "__value" in typed:
            assert set(names) == {"__value", "__text"}, names
        else:
            assert len(names) == 1 and types[0] in TEXT, typed
        return
    if q.kind == "annotation":
        assert typed.get("time") in TIME and typed.get("text") in TEXT, typed
        assert set(names) <= {"time", "timeend", "text", "tags"}, names
        return
    if q.fmt == "time_series":
        assert typed.get("time") in TIME | NUMERIC, f"a time series needs a time column: {typed}"
        values = [n for n in names if n != "time"]
        assert any(typed[n] in NUMERIC for n in values), f"no numeric value column: {typed}"
        labels = [n for n in values if typed[n] in TEXT]
        assert all(typed[n] in NUMERIC | TEXT for n in values), typed
        assert labels in ([], ["metric"]), f"one label column, named metric, names the series: {labels}"
        times = [r[names.index("time")] for r in rows]
        assert times == sorted(times), "Grafana converts long to wide only when sorted by time"
        return
    if q.kind == "table":
        [organize] = [t for t in q.panel["transformations"] if t["id"] == "organize"]
        assert names == list(organize["options"]["indexByName"]), "columns must be the ones the table organizes"
        return
    if q.kind == "stat":
        assert len(rows) <= 1, "a stat panel shows one row"
        text = q.panel["options"]["reduceOptions"]["fields"] == "/.*/"
        assert all(t in (TEXT if text else NUMERIC) for t in types), typed
        return
    if q.kind == "state-timeline":
        assert typed.get("time") in TIME | NUMERIC, typed
        assert len(names) >= 2, names
        times = [r[names.index("time")] for r in rows]
        assert times == sorted(times)
        return
    raise AssertionError(f"no column rules for panel type {q.kind}")


@pytest.mark.parametrize("q", QUERIES, ids=str)
def test_query_runs_and_returns_the_columns_its_panel_needs(seeded: Seeded, q: Query) -> None:
    full = TimeRange(seeded.start, seeded.end)
    for variables in variable_choices(seeded, q.dashboard, full):
        for interval in INTERVALS:
            names, types, rows = run(seeded, expand(q.sql, variables=variables, time_range=full, interval=interval))
            check_columns(q, names, types, rows)
            assert rows, f"no rows over the seeded range ({interval}, {variables})"
            cells = [c for r in rows for n, c in zip(names, r, strict=True) if n != "time"]
            assert any(c is not None for c in cells), "only NULLs: a misspelt metric or field?"


@pytest.mark.parametrize("q", QUERIES, ids=str)
def test_query_runs_over_a_range_that_starts_mid_episode(seeded: Seeded, q: Query) -> None:
    """A range starting after the drift fired and the champion changed: carried-over state, empty panels."""
    late = TimeRange(T0 + timedelta(hours=2, minutes=30), seeded.end)
    for variables in variable_choices(seeded, q.dashboard, TimeRange(seeded.start, seeded.end)):
        names, types, rows = run(seeded, expand(q.sql, variables=variables, time_range=late))
        check_columns(q, names, types, rows)


def test_state_timelines_carry_the_state_from_before_the_range(seeded: Seeded) -> None:
    """The alert that fired in window 2 and resolved in window 3 starts the late range as firing."""
    q = next(q for q in QUERIES if q.dashboard == "alerts" and q.kind == "state-timeline")
    start = T0 + timedelta(hours=2, minutes=30)
    variables = {"project": Variable("project", (seeded.slug,))}
    names, _, rows = run(seeded, expand(q.sql, variables=variables, time_range=TimeRange(start, seeded.end)))
    series = [dict(zip(names, r, strict=True)) for r in rows]
    assert [(s["time"], s["metric"], s["value"]) for s in series] == [
        (start, "prompt-drift · all", 2), (T0 + timedelta(hours=3), "prompt-drift · all", 0)]


def test_evaluation_table_shows_the_disparity_the_bias_gate_compares(seeded: Seeded) -> None:
    """The seeded candidates' cells put a 0.1 gap between two groups for the champion and 0.08 for the challenger:
    disparity (mean squared gap) 0.01 and 0.0064, beside the informational largest gaps 0.1 and 0.08."""
    q = next(q for q in QUERIES if q.dashboard == "models" and q.title == "Evaluation results")
    full = TimeRange(seeded.start, seeded.end)
    names, _, rows = run(seeded, expand(q.sql, variables={"project": Variable("project", (seeded.slug,))},
                                        time_range=full))
    assert rows
    for row in rows:
        r = dict(zip(names, row, strict=True))
        assert r["champion_bias_disparity"] == pytest.approx(0.01)
        assert r["challenger_bias_disparity"] == pytest.approx(0.0064)
        assert r["champion_bias_gap"] == pytest.approx(0.1) and r["challenger_bias_gap"] == pytest.approx(0.08)
