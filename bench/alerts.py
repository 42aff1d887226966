"""Alerting costs: rule evaluation per window (SQLite file, in-process path) and webhook signing.

Creates a project with R rules over S segments each (glob rules), writes W hourly windows of metric rows,
and times `evaluate_window` per window (a mix of breaching and healthy windows, so alerts open, fire and
resolve; no webhook endpoints, so no network). Then times signing one ~2 KB payload with one and two
secrets (the rotation case).

    python -m bench.alerts [--rules 20] [--segments 10] [--windows 48]      (from the repository root)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from monitor import migrations
from monitor.alerts.evaluation import evaluate_window
from monitor.alerts.rule_service import create_rule
from monitor.alerts.rules import RuleSpec
from monitor.db import make_engine
from monitor.pipeline.ops import MetricPoint
from monitor.pipeline.store import upsert_points
from monitor.projects.service import get_or_create_project
from monitor.webhooks.signing import envelope, generate_secret, render_body, webhook_headers

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bench_evaluation(rules: int, segments: int, windows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrations.upgrade(url)
        engine = make_engine(url)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with factory() as s:
            pid = get_or_create_project(s, "bench").id
            for r in range(rules):
                create_rule(s, pid, RuleSpec.model_validate({
                    "name": f"r{r}", "metric": "ops.latency_p95", "comparator": ">", "threshold": 1000 + r,
                    "segment": "model_version=*", "for_windows": 1 + r % 3}))
            for w in range(windows):
                start = T0 + timedelta(hours=w)
                for seg in range(segments):
                    slow = (w // 4 + seg) % 3 == 0  # episodes of a few windows
                    upsert_points(s, pid, f"model_version=v{seg}", start, start + timedelta(hours=1),
                                  [MetricPoint("ops.latency_p95", "ok", 100, value=2000.0 if slow else 300.0)])
            s.commit()
        times, changes = [], 0
        for w in range(windows):
            with factory() as s:
                t = time.perf_counter()
                changes += len(evaluate_window(s, pid, T0 + timedelta(hours=w)))
                s.commit()
                times.append(time.perf_counter() - t)
        engine.dispose()
    per = statistics.median(times)
    print(f"evaluation: {rules} rules x {segments} segments, {windows} windows, {changes} transitions")
    print(f"  median {per * 1000:.1f} ms per window ({per / (rules * segments) * 1e6:.0f} us per rule-segment), "
          f"max {max(times) * 1000:.1f} ms")


def bench_signing(repeat: int = 2000) -> None:
    payload = envelope("alert.firing", {"evidence": [{"window_start": "x" * 20, "p_value": 0.001}] * 20,
                                        "text": "y" * 800}, T0)
    body = render_body(payload, "standard")
    for n in (1, 2):
        keys = [generate_secret() for _ in range(n)]
        t = time.perf_counter()
        for i in range(repeat):
            webhook_headers(f"msg_{i}", 1_700_000_000, body, keys)
        dt = (time.perf_counter() - t) / repeat
        print(f"signing a {len(body)}-byte body with {n} secret(s): {dt * 1e6:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--windows", type=int, default=48)
    args = parser.parse_args()
    bench_evaluation(args.rules, args.segments, args.windows)
    bench_signing()


if __name__ == "__main__":
    main()
