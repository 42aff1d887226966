"""Rebuild bench/data/hwu64_full.tsv (every HWU64 query of KFold_1, train + test) from the public repository.

    python bench/data/extract_hwu64_full.py --git-dir DIR   (DIR = a git dir of xliuhw/NLU-Evaluation-Data)

One query per line, `text<TAB>intent<TAB>domain` like hwu64_extract.tsv: text = column `answer_from_anno`,
intent = `<scenario>_<intent>`, domain = scenario. Rows are sorted by (intent, text). Queries that differ only
in case or whitespace are kept once (MiniLM is uncased: they would be the same vector, i.e. a verbatim repeat
between a benchmark's reference and its window); no text is edited except tabs and newlines replaced by spaces.
See bench/data/README.md for source, commit and licence.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from monitor.drift.calibration import query_key

COMMIT = "f6071b4"
FOLD = ("CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/CrossValidation/KFold_1")
OUT = Path(__file__).resolve().parent / "hwu64_full.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--git-dir", type=Path, required=True)
    args = parser.parse_args()
    git = ["git", "--git-dir", str(args.git_dir)]
    names = subprocess.run([*git, "ls-tree", "-r", "--name-only", COMMIT, FOLD], check=True, capture_output=True,
                           text=True).stdout.split()
    files = sorted(n for n in names if n.endswith(".csv") and ("/trainset/" in n or "/testset/csv/" in n))
    rows: dict[str, tuple[str, str, str]] = {}
    for name in files:
        raw = subprocess.run([*git, "show", f"{COMMIT}:{name}"], check=True, capture_output=True).stdout
        for rec in csv.DictReader(io.StringIO(raw.decode("utf-8")), delimiter=";"):
            text = " ".join(rec["answer_from_anno"].replace("\t", " ").splitlines()).strip()
            if text:
                rows.setdefault(query_key(text), (text, f"{rec['scenario']}_{rec['intent']}", rec["scenario"]))
    ordered = sorted(rows.values(), key=lambda r: (r[1], r[0]))
    OUT.write_text("".join(f"{t}\t{i}\t{d}\n" for t, i, d in ordered), encoding="utf-8")
    print(f"{len(files)} files, {len(ordered)} queries, {len({r[1] for r in ordered})} intents -> {OUT}")


if __name__ == "__main__":
    main()
