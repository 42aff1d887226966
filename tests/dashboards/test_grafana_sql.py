"""The Grafana expander the panel tests rely on, against Grafana's documented expansions, and its output run on
Postgres (the expansion must be SQL the database accepts, not just a string that looks right)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from tests.dashboards.grafana_sql import (
    ExpansionError,
    TimeRange,
    Variable,
    expand,
    format_interval,
    go_float,
    parse_interval,
)

# The time range of Grafana's documentation examples.
TR = TimeRange(datetime(2017, 4, 21, 5, 1, 17, tzinfo=UTC), datetime(2017, 4, 21, 5, 6, 17, tzinfo=UTC))
NONE: dict[str, Variable] = {}


def x(sql: str, interval: timedelta = timedelta(minutes=5), **variables: Variable) -> str:
    return expand(sql, variables=variables, time_range=TR, interval=interval)


def test_time_macros_as_documented() -> None:
    assert x("$__timeFilter(ts)") == "ts BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'"
    assert x("$__timeFrom() $__timeTo()") == "'2017-04-21T05:01:17Z' '2017-04-21T05:06:17Z'"
    assert x("$__time(c)") == 'c AS "time"'
    assert x("$__timeEpoch(c)") == 'extract(epoch from c) as "time"'
    assert x("$__unixEpochFilter(c)") == "c >= 1492750877 AND c <= 1492751177"
    assert x("$__unixEpochFrom() $__unixEpochTo()") == "1492750877 1492751177"
    assert x("$__unixEpochNanoFrom()") == "1492750877000000000"


def test_time_group_and_interval() -> None:
    assert x("$__timeGroup(dateColumn,'5m')") == "floor(extract(epoch from dateColumn)/300)*300"
    assert x("$__timeGroupAlias(dateColumn, '1h')") == 'floor(extract(epoch from dateColumn)/3600)*3600 AS "time"'
    assert x("$__timeGroup(dateColumn,'5m', NULL)") == "floor(extract(epoch from dateColumn)/300)*300"
    # Followed by a comma, $__timeGroup keeps its pre-5.3 meaning and aliases the column.
    assert x("SELECT $__timeGroup(c,'5m'), v") == 'SELECT floor(extract(epoch from c)/300)*300 AS "time", v'
    assert x("$__unixEpochGroupAlias(c, 1d)") == 'floor((c)/86400)*86400 AS "time"'
    # $__interval is substituted first (Grafana's global pass), then parsed as the macro's interval.
    assert x("$__timeGroupAlias(c, $__interval)", timedelta(hours=2)) == \
        'floor(extract(epoch from c)/7200)*7200 AS "time"'
    assert x("$__interval_ms $__interval", timedelta(seconds=20)) == "20000 20s"
    with pytest.raises(ExpansionError, match="fill value"):
        x("$__timeGroup(c, 5m, sometimes)")
    with pytest.raises(ExpansionError, match="interval"):
        x("$__timeGroup(c, soon)")


def test_go_formatting_of_times_intervals_and_seconds() -> None:
    assert format_interval(timedelta(days=3)) == "3d" and format_interval(timedelta(minutes=90)) == "1h"
    assert format_interval(timedelta(milliseconds=250)) == "250ms"
    assert parse_interval("'1w'") == 604800 and parse_interval("500ms") == 0.5
    assert [go_float(v) for v in (300.0, 0.5, 604800.0, 2592000.0, 1e-05)] == \
        ["300", "0.5", "604800", "2.592e+06", "1e-05"]
    tr = TimeRange(datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), datetime(2026, 1, 2, 4, tzinfo=UTC))
    assert expand("$__timeFrom()", variables=NONE, time_range=tr) == "'2026-01-02T03:04:05.12Z'"


def test_template_variables_formatting() -> None:
    one = Variable("project", ("shop",))
    multi = Variable("segment", ("all", "locale=de"), multi=True, include_all=True)
    quote = Variable("segment", ("O'Brien",), multi=True)
    assert x("p = '$project'", project=one) == "p = 'shop'"  # a plain variable's value goes in raw
    assert x("s IN ($segment)", segment=multi) == "s IN ('all','locale=de')"
    assert x("s IN (${segment:sqlstring})", segment=quote) == "s IN ('O''Brien')"
    assert x("p = ${project:sqlstring}", project=one) == "p = 'shop'"
    assert x("${segment:csv} [[segment]] ${segment:singlequote}", segment=multi) == \
        "all,locale=de 'all','locale=de' 'all','locale=de'"
    with pytest.raises(ExpansionError, match="not a variable"):
        x("$nope")
    with pytest.raises(ExpansionError, match="unknown macro"):
        x("$__timeFilterr(c)")
    with pytest.raises(ExpansionError, match="not expanded"):
        x("$__timeFilter")


@pytest.mark.postgres
def test_expanded_sql_runs_on_postgres(pg_engine: Engine) -> None:
    tr = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    sql = """
SELECT $__timeGroupAlias(t, $__interval), count(*) AS value
FROM (VALUES ('2026-01-01T10:10:00Z'::timestamptz), ('2026-01-01T10:50:00Z'), ('2026-01-03T00:00:00Z')) v(t)
WHERE $__timeFilter(t) AND 'a' IN (${s:sqlstring})
GROUP BY 1 ORDER BY 1"""
    expanded = expand(sql, variables={"s": Variable("s", ("a", "b'c"), multi=True)}, time_range=tr,
                      interval=timedelta(hours=1))
    with pg_engine.connect() as conn:
        rows = conn.execute(text(expanded)).all()
    assert [(float(t), n) for t, n in rows] == [(datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp(), 2)]
