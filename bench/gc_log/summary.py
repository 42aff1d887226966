"""The full (generation 2) collections of the two busiest processes in a bench/gc_log/sitecustomize.py log.

    python bench/gc_log/summary.py DIR

Each full collection is printed as (seconds before that process's last collection, milliseconds): in a
bench/ingest.py run the start-up ones come first, those during ingestion in the last seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    logs = {}
    for f in Path(sys.argv[1]).iterdir():
        rows = [line.split() for line in f.read_text().splitlines()]
        logs[f.name] = [(float(t), int(g), float(ms)) for t, g, ms in rows]
    for pid, rows in sorted(logs.items(), key=lambda kv: -len(kv[1]))[:2]:
        end = rows[-1][0]
        full = [(round(t - end, 1), round(ms)) for t, g, ms in rows if g == 2]
        counts = [sum(1 for r in rows if r[1] == g) for g in range(3)]
        print(f"process {pid}: collections by generation {counts}, {sum(r[2] for r in rows):.0f} ms in all; "
              f"full collections (s before its last, ms): {full}")


if __name__ == "__main__":
    main()
