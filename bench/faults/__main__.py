"""Every fault script, one after the other, each in its own process; exits non-zero if any promise broke.

    python -m bench.faults [--quick] [--only collector_down postgres_restart ...]

Each script prints what it did and found (see its own --help); this prints a summary at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.faults import SCRIPTS

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter outages and fewer events (what CI runs)")
    ap.add_argument("--only", nargs="+", choices=SCRIPTS, default=list(SCRIPTS))
    args = ap.parse_args(argv)
    results: list[tuple[str, int, float]] = []
    for name in args.only:
        start = time.monotonic()
        cmd = [sys.executable, "-m", f"bench.faults.{name}", *(["--quick"] if args.quick else [])]
        print(f"== {' '.join(cmd[1:])}", flush=True)
        code = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        results.append((name, code, time.monotonic() - start))
    print("\n== fault scripts")
    for name, code, seconds in results:
        print(f"{name:18} {'kept' if code == 0 else f'BROKEN (exit {code})':18} {seconds:6.0f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
