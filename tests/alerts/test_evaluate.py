"""Pure evaluation: the alert state machine over series of metric rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from monitor.alerts.state import AlertState, Condition, Point, RuleParams, decide

T0 = datetime(2026, 11, 20, tzinfo=UTC)
H = timedelta(hours=1)
HIGH_LATENCY = Condition("value", ">", 1000.0)


def pts(*values: float | None, status: str = "ok") -> list[Point]:
    """Hourly points; None stands for an `insufficient` row."""
    return [Point(T0 + i * H, "insufficient" if v is None else status, 50, value=v) for i, v in enumerate(values)]


def run(rule: RuleParams, series: list[Point]) -> list[tuple[int, str | None]]:
    """Evaluate each window in order, carrying the state like the service does; (window index, change)."""
    state = AlertState()
    out = []
    for i, p in enumerate(series):
        d = decide(rule, state, series, p.window_start)
        out.append((i, d.to_status))
        if d.to_status is not None:
            status = d.to_status if d.to_status in ("pending", "firing") else "inactive"
            fired = p.window_start if d.to_status == "firing" else state.last_fired_window
            state = AlertState(status, p.window_start, fired)  # type: ignore[arg-type]
    return out


def changes(rule: RuleParams, series: list[Point]) -> list[tuple[int, str]]:
    return [(i, c) for i, c in run(rule, series) if c is not None]


def test_pending_then_firing_after_n_windows_and_no_refire() -> None:
    rule = RuleParams(HIGH_LATENCY, for_windows=3)
    series = pts(900, 1500, 1600, 1700, 1800, 1900, 800)
    assert changes(rule, series) == [(1, "pending"), (3, "firing"), (6, "resolved")]


def test_for_one_window_fires_at_once() -> None:
    assert changes(RuleParams(HIGH_LATENCY), pts(1500, 1500, 100)) == [(0, "firing"), (2, "resolved")]


def test_pending_that_recovers_is_cancelled_not_resolved() -> None:
    rule = RuleParams(HIGH_LATENCY, for_windows=3)
    assert changes(rule, pts(1500, 1500, 100)) == [(0, "pending"), (2, "cancelled")]


def test_insufficient_rows_neither_breach_nor_recover_nor_break_a_streak() -> None:
    rule = RuleParams(HIGH_LATENCY, for_windows=2)
    # breach, insufficient, breach → the two breaches are consecutive among rows that say something
    assert changes(rule, pts(1500, None, 1500)) == [(0, "pending"), (2, "firing")]
    # firing, then insufficient: still firing (no resolve); recovery only on a real ok row
    assert changes(RuleParams(HIGH_LATENCY), pts(1500, None, None, 100)) == [(0, "firing"), (3, "resolved")]
    d = decide(RuleParams(HIGH_LATENCY), AlertState("firing", T0, T0), pts(1500, None), T0 + H)
    assert d.to_status is None and "insufficient" in d.reason


def test_empty_field_is_skipped() -> None:
    rule = RuleParams(Condition("p_value", "<", 0.01))
    series = [Point(T0, "ok", 100, value=0.3, p_value=None)]
    d = decide(rule, AlertState(), series, T0)
    assert d.to_status is None and "empty" in d.reason


def test_cooldown_holds_a_second_firing_in_pending_until_it_passes() -> None:
    rule = RuleParams(HIGH_LATENCY, cooldown=timedelta(hours=4))
    # fire at 0, resolve at 1, breach again at 2 and 3 (inside 4h of the firing), fire at 4
    assert changes(rule, pts(1500, 100, 1500, 1500, 1500)) == [
        (0, "firing"), (1, "resolved"), (2, "pending"), (4, "firing")]
    # without cooldown the second breach fires at once
    assert changes(RuleParams(HIGH_LATENCY), pts(1500, 100, 1500)) == [(0, "firing"), (1, "resolved"), (2, "firing")]


def test_stale_window_cannot_change_a_newer_state() -> None:
    series = pts(100, 1500)
    state = AlertState("firing", T0 + H, T0 + H)
    d = decide(RuleParams(HIGH_LATENCY), state, series, T0)  # the old, healthy window re-evaluated late
    assert d.to_status is None and d.reason.startswith("stale")


def test_re_evaluating_the_same_window_is_a_no_op() -> None:
    rule = RuleParams(HIGH_LATENCY, for_windows=2)
    series = pts(1500, 1500)
    first = decide(rule, AlertState(), series, T0)
    assert first.to_status == "pending"
    again = decide(rule, AlertState("pending", T0, None), series, T0)
    assert again.to_status is None


def test_flagged_and_p_value_fields_and_evidence() -> None:
    series = [Point(T0 + i * H, "ok", 200, value=0.1, p_value=p, flagged=p < 0.01, threshold=0.01)
              for i, p in enumerate([0.4, 0.001, 0.002])]
    flagged = RuleParams(Condition("flagged", "==", 1.0), for_windows=2)
    assert changes(flagged, series) == [(1, "pending"), (2, "firing")]
    d = decide(RuleParams(Condition("p_value", "<", 0.01), for_windows=2), AlertState("pending", T0 + H), series,
               T0 + 2 * H)
    assert d.to_status == "firing" and d.streak == 2
    assert [p.p_value for p in d.evidence] == [0.001, 0.002]


@given(st.lists(st.one_of(st.none(), st.floats(0, 3000)), min_size=1, max_size=40), st.integers(1, 5),
       st.integers(0, 6))
def test_lifecycle_invariants(values: list[float | None], n: int, cooldown_h: int) -> None:
    rule = RuleParams(HIGH_LATENCY, for_windows=n, cooldown=timedelta(hours=cooldown_h))
    series = pts(*values)
    seen = changes(rule, series)
    status = "inactive"
    last_fire: int | None = None
    allowed = {"inactive": {"pending", "firing"}, "pending": {"firing", "cancelled"}, "firing": {"resolved"}}
    for i, to in seen:
        assert to in allowed[status], (status, to)
        if to == "firing":
            # n consecutive breaching rows (skipping insufficient ones) end here, and the cooldown has passed
            said = [v for v in values[: i + 1] if v is not None]
            assert len(said) >= n and all(v > 1000 for v in said[-n:])
            assert last_fire is None or (i - last_fire) >= cooldown_h
            last_fire = i
        if to in ("resolved", "cancelled"):
            assert values[i] is not None and values[i] <= 1000
        status = to if to in ("pending", "firing") else "inactive"
    # an insufficient row never changes anything
    assert all(values[i] is not None for i, _ in seen)
