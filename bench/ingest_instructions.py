"""One stage of the collector's hot path on bench traffic, alone, for instruction counts that load cannot move.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.MODE \\
        python bench/ingest_instructions.py MODE [BATCHES=10]

MODE is `setup` (imports and inputs only), `parse` (`parse_events`), `redact` (the collector's redaction with the
default detectors) or `rows` (`_event_row`), each on BATCHES batches of 2,000 pre-encoded bench events
(bench/ingest_load.py). Instructions per event of a stage = (Collected of MODE - Collected of setup) /
(BATCHES * 2,000). Under valgrind a run takes about a minute of CPU, mostly the imports. docs/scaling.md ("Hot
path", fourth round) has the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_load import batch_template, bench_texts, fill
from monitor.db import utcnow
from monitor.ingest.fastparse import parse_events
from monitor.ingest.service import _event_row
from monitor.privacy.ingest import _redact_all
from monitor.privacy.policy import project_privacy
from monitor.schemas import Limits
from monitor.settings import Settings

SIZE = 2000


def main() -> None:
    mode, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if mode not in ("setup", "parse", "redact", "rows"):
        raise SystemExit(f"unknown mode {mode!r}")
    settings = Settings()
    limits = Limits(settings.max_text_chars, settings.max_metadata_bytes, settings.max_batch_events)
    pieces = batch_template(bench_texts(0, False), 0, SIZE)
    bodies = [fill(pieces, [b'"s-%d-%d"' % (k, j) for j in range(SIZE)]) for k in range(n)]
    privacy = project_privacy(settings, 1, None)
    first = parse_events(bodies[0], limits)  # the later stages' input, built in every mode (setup included)
    assert first is not None
    now = utcnow()
    if mode == "parse":
        for body in bodies:
            parse_events(body, limits)
    elif mode == "redact":
        for _ in range(n):
            _redact_all(privacy, "events", first)
    elif mode == "rows":
        for _ in range(n):
            [_event_row(1, e, now) for e in first]


if __name__ == "__main__":
    main()
