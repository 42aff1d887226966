"""What Grafana does to a Postgres panel's SQL before it reaches the database, so the tests can run it as-is.

Three passes, in Grafana's order:
1. the frontend's template variables (`$var`, `${var}`, `${var:format}`, `[[var]]`), with the SQL data sources'
   default formatting: a multi-value or include-all variable's values are quoted and comma-joined, a plain
   variable's single value is inserted raw;
2. the backend's global substitutions (`$__interval_ms`, `$__interval`, `$__unixEpochFrom()`, `$__unixEpochTo()`);
3. the Postgres macro engine (`$__timeFilter(col)`, `$__timeGroup(col, interval[, fill])`, `$__timeGroupAlias`,
   `$__timeFrom()`, `$__timeTo()`, `$__time`, `$__timeEpoch`, `$__unixEpochFilter`, `$__unixEpochGroup[Alias]`,
   `$__unixEpochNano*`), formatted as Grafana formats them (RFC 3339 UTC times, Go's `%v` for seconds).
Anything left that looks like a variable or macro is an error: the panel would not run in Grafana either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

# Grafana's variable syntax (public/app/features/variables/utils.ts: variableRegex).
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
# The Postgres macro engine's expression: $name(args), args up to the first ')'.
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


class ExpansionError(ValueError):
    pass


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's current value(s), with the flags that decide its default formatting."""

    name: str
    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime


def rfc3339(t: datetime) -> str:
    """Go's time.RFC3339Nano of the UTC time: no trailing zeros in the fraction, `Z` for UTC."""
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_float(x: float) -> str:
    """Go's `%v` of a float64 (strconv 'g', shortest digits): exponent form when the exponent is below -4 or at
    least 6 (so 86400 stays `86400`, a 30-day interval is `2.592e+06`)."""
    if x == 0:
        return "0"
    d = Decimal(repr(float(x))).normalize()
    exp = d.adjusted()
    sign, digits, _ = d.as_tuple()
    text = "".join(map(str, digits))
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{'-' if sign else ''}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format(d, "f")


def format_interval(d: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit (y, d, h, m, s, ms)."""
    ms = int(d.total_seconds() * 1000)
    for unit, size in (("y", 31536000000), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms >= 1 else "1ms"


def parse_interval(text: str) -> float:
    """gtime.ParseInterval, in seconds."""
    m = _INTERVAL.match(text.strip().strip("'"))
    if m is None:
        raise ExpansionError(f"error parsing interval {text}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(var: Variable, fmt: str | None) -> str:
    values = list(var.values)
    if fmt is None:  # the SQL data sources' interpolateVariable
        if len(values) == 1 and not (var.multi or var.include_all):
            return values[0]
        return ",".join(_quote_literal(v) for v in values)
    if fmt == "sqlstring":
        return ",".join(_quote_literal(v) for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "raw":
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    raise ExpansionError(f"format {fmt!r} of ${{{var.name}}} is not one these tests know")


def expand_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name.startswith("__"):  # built-ins the backend expands ($__interval, $__timeFilter, …)
            return m.group(0)
        if name not in variables:
            raise ExpansionError(f"${name} is not a variable of this dashboard")
        return _format(variables[name], fmt)

    return _VARIABLE.sub(one, sql)


def expand_globals(sql: str, time_range: TimeRange, interval: timedelta) -> str:
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_range.start.timestamp())))
    return sql.replace("$__unixEpochTo()", str(int(time_range.end.timestamp())))


def _fill(args: Sequence[str], name: str) -> None:
    if len(args) == 3 and args[2] not in ("NULL", "previous"):
        try:
            float(args[2])
        except ValueError:
            raise ExpansionError(f"{name}: fill value must be NULL, previous or a number, got {args[2]}") from None


def _macro(name: str, args: list[str], tr: TimeRange) -> str:
    frm, to = rfc3339(tr.start), rfc3339(tr.end)
    need_column = ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter")
    if name in need_column and (not args or not args[0]):
        raise ExpansionError(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
    if name == "__timeFrom":
        return f"'{frm}'"
    if name == "__timeTo":
        return f"'{to}'"
    if name in ("__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias"):
        if len(args) < 2:
            raise ExpansionError(f"macro {name} needs time column and interval and optional fill value")
        seconds = go_float(parse_interval(args[1]))
        _fill(args, name)
        if name.startswith("__timeGroup"):
            expr = f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
        else:
            expr = f"floor(({args[0]})/{seconds})*{seconds}"
        return expr + (' AS "time"' if name.endswith("Alias") else "")
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {int(tr.start.timestamp())} AND {args[0]} <= {int(tr.end.timestamp())}"
    nano_from, nano_to = int(tr.start.timestamp()) * 10**9, int(tr.end.timestamp()) * 10**9
    if name == "__unixEpochNanoFilter":
        return f"{args[0]} >= {nano_from} AND {args[0]} <= {nano_to}"
    if name == "__unixEpochNanoFrom":
        return str(nano_from)
    if name == "__unixEpochNanoTo":
        return str(nano_to)
    raise ExpansionError(f"unknown macro {name!r}")


def expand_macros(sql: str, time_range: TimeRange) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        # Grafana: `$__timeGroup(...)` directly followed by ',' means the pre-5.3 aliasing form.
        if name == "__timeGroup" and sql[m.end():m.end() + 1] == ",":
            name = "__timeGroupAlias"
        return _macro(name, [a.strip() for a in m.group(2).split(",")], time_range)

    return _MACRO.sub(one, sql)


def expand(sql: str, *, variables: Mapping[str, Variable], time_range: TimeRange,
           interval: timedelta = timedelta(hours=1)) -> str:
    out = expand_macros(expand_globals(expand_variables(sql, variables), time_range, interval), time_range)
    left = re.search(r"\$\{?\w+|\[\[\w+", out)
    if left:
        raise ExpansionError(f"{left.group(0)} was not expanded (unknown variable or macro)")
    return out
