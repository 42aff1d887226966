"""Hypothesis strategies for the input classes that used to reach a 500 (issue #18, finding 6): times at the edges
of what `datetime` holds with extreme offsets, JSON nested deeper than parsers recurse (with `\\u` escapes), lone
UTF-16 surrogates in keys, integers past 64 bits and non-finite numbers, and path integers past 64 bits.
Shared by the property tests (tests/ingest/test_properties.py) and the schemathesis run (tests/system/
test_api_fuzz.py, which registers `HOSTILE_DATETIME` for the `date-time` format)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

MAX_OFFSET = timedelta(hours=23, minutes=59)
OFFSETS = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)),
                    st.integers(-MAX_OFFSET // timedelta(minutes=1), MAX_OFFSET // timedelta(minutes=1)))
# The edges (year 1 and 9999 with any offset) and the ordinary middle, in ISO 8601 text.
EDGE_DATETIMES = st.one_of(
    st.datetimes(datetime(1, 1, 1), datetime(1, 1, 3)),
    st.datetimes(datetime(9999, 12, 29), datetime(9999, 12, 31, 23, 59, 59)),
    st.datetimes(datetime(1969, 12, 30), datetime(1970, 1, 2)),
    st.datetimes(datetime(9998, 12, 30), datetime(9999, 1, 2)),
)
HOSTILE_DATETIME = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), EDGE_DATETIMES, OFFSETS),
    st.builds(lambda d: d.isoformat(), EDGE_DATETIMES),
    st.builds(lambda d: d.isoformat(), st.datetimes(datetime(1971, 1, 1), datetime(2200, 1, 1),
                                                    timezones=st.just(UTC))),
)


def nested(depth: int, leaf: str = '"\\u00e9"') -> str:
    """A JSON object nested `depth` levels deep around `leaf` (raw JSON text)."""
    return '{"k":' * depth + leaf + "}" * depth


DEEP_JSON = st.builds(nested, st.integers(1, 20_000),
                      st.sampled_from(['"\\u00e9"', '"\\ud800"', '[1, "\\u0041"]', "1", '"x"']))
# Unpaired only: low surrogates never pair when nothing precedes them, and a high one at the end has no partner.
LONE_SURROGATE_KEY = st.builds(
    lambda low, high, prefix: json.dumps(prefix + low + high),  # json.dumps writes each as a \\udxxx escape
    st.text(st.characters(min_codepoint=0xDC00, max_codepoint=0xDFFF), max_size=3),
    st.one_of(st.just(""), st.characters(min_codepoint=0xD800, max_codepoint=0xDBFF)),
    st.sampled_from(["", "k", "é"]),
).filter(lambda key: "\\ud" in key)
UNSTORABLE_NUMBER = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
    st.integers(2**63, 2**200).map(str), st.integers(-(2**200), -(2**63) - 1).map(str),
)
HUGE_PATH_INT = st.one_of(st.integers(2**63, 10**40), st.integers(-(10**40), 0)).map(str)
