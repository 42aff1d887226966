"""Building a training set from production feedback: pure functions, rows in, a snapshot out.

Sources: answers users rated positively (the answer is the target) and corrected answers supplied with
feedback (the correction is the target). Then: PII scrubbed, toxic targets dropped, duplicates removed,
a deterministic train/eval split by content hash, and a content hash over the canonical JSONL so that a
version's data can be reproduced and verified byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrain.dataset.pii import scrub


@dataclass(frozen=True)
class FeedbackRow:
    event_id: str
    prompt: str | None
    response: str | None
    score: float | None
    label: str | None
    corrected_response: str | None


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str
    source: str  # "positive" | "corrected"
    event_id: str


@dataclass(frozen=True)
class DatasetSnapshot:
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    content_hash: str
    stats: dict[str, int] = field(default_factory=dict)

    def jsonl(self) -> str:
        return canonical_jsonl(self.train, self.eval)

    def write(self, path: Path) -> Path:
        """Write the snapshot atomically (a unique temp file + rename); the file's SHA-256 is the content hash.

        The temp file is unique per writer (`tempfile` in the target directory): two jobs building the same
        content-addressed snapshot at once each write their own file and the last rename wins with the same bytes
        (a shared `.jsonl.tmp` name made one job's rename fail or move the other's half-written file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.jsonl())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path


@dataclass(frozen=True)
class BuildOptions:
    positive_threshold: float = 0.5
    positive_labels: frozenset[str] = frozenset({"thumbs_up", "positive", "good", "accepted"})
    eval_fraction: float = 0.2
    min_chars: int = 2
    max_chars: int = 4000
    # A target scored at or above this is dropped. None: the toxicity scorer's calibrated threshold, which the
    # caller passes to build_dataset (the retrain job: the same threshold its toxicity gate uses).
    toxicity_threshold: float | None = None


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def _positive(row: FeedbackRow, opts: BuildOptions) -> bool:
    if row.score is not None:
        return row.score > opts.positive_threshold
    return row.label is not None and row.label.lower() in opts.positive_labels


def canonical_jsonl(train: Sequence[Example], eval_: Sequence[Example]) -> str:
    lines = [json.dumps({"split": split, **asdict(e)}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
             for split, part in (("train", train), ("eval", eval_)) for e in part]
    return "\n".join(lines) + ("\n" if lines else "")


def build_dataset(
    rows: Sequence[FeedbackRow],
    *,
    toxicity: Callable[[list[str]], Sequence[float]] | None = None,
    toxicity_threshold: float | None = None,
    options: BuildOptions | None = None,
) -> DatasetSnapshot:
    """Select, clean, deduplicate and split. Deterministic: the same rows give the same hash.

    ``toxicity`` scores targets; those at or above ``options.toxicity_threshold`` are dropped, or, when the
    options leave it unset, at or above ``toxicity_threshold``: the scorer's own calibrated threshold
    (``monitor.safety.toxicity.threshold_for``). A scorer without either threshold is refused: a constant
    fitted to one scorer means nothing for another."""
    opts = options or BuildOptions()
    threshold = opts.toxicity_threshold if opts.toxicity_threshold is not None else toxicity_threshold
    if toxicity is not None and threshold is None:
        raise ValueError("build_dataset: a toxicity scorer needs its threshold (toxicity_threshold=, "
                         "e.g. threshold_for(scorer)) or options.toxicity_threshold")
    stats = {"rows": len(rows), "positive": 0, "corrected": 0, "pii_replaced": 0, "dropped_toxic": 0,
             "dropped_duplicate": 0, "dropped_length": 0}
    candidates: list[Example] = []
    for row in rows:
        if not row.prompt:
            continue
        if row.corrected_response:
            target, source = row.corrected_response, "corrected"
        elif row.response and _positive(row, opts):
            target, source = row.response, "positive"
        else:
            continue
        prompt, n1 = scrub(row.prompt)
        response, n2 = scrub(target)
        stats["pii_replaced"] += n1 + n2
        if not (opts.min_chars <= len(prompt) <= opts.max_chars and opts.min_chars <= len(response) <= opts.max_chars):
            stats["dropped_length"] += 1
            continue
        candidates.append(Example(prompt, response, source, row.event_id))

    if toxicity is not None and candidates:
        scores = toxicity([e.response for e in candidates])
        assert threshold is not None  # checked above
        kept = [e for e, s in zip(candidates, scores, strict=True) if s < threshold]
        stats["dropped_toxic"] = len(candidates) - len(kept)
        candidates = kept

    # Corrections outrank positive ratings of the same prompt: they are what a person said is right.
    candidates.sort(key=lambda e: (e.source != "corrected", e.event_id))
    seen: set[str] = set()
    unique: list[Example] = []
    for e in candidates:
        key = _normal(e.prompt)
        if key in seen:
            stats["dropped_duplicate"] += 1
            continue
        seen.add(key)
        unique.append(e)
    unique.sort(key=lambda e: hashlib.sha256(_normal(e.prompt).encode()).hexdigest())

    train: list[Example] = []
    eval_: list[Example] = []
    for e in unique:
        bucket = int(hashlib.sha256(("split|" + _normal(e.prompt)).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (eval_ if bucket < opts.eval_fraction else train).append(e)
    if not eval_ and len(train) >= 5:  # a small set still needs something held out
        eval_.append(train.pop())
    for e in unique:
        stats[e.source] += 1
    body = canonical_jsonl(train, eval_)
    return DatasetSnapshot(tuple(train), tuple(eval_), hashlib.sha256(body.encode("utf-8")).hexdigest(), stats)


def read_snapshot(path: Path) -> DatasetSnapshot:
    """Load a written snapshot and verify its content hash."""
    body = path.read_text(encoding="utf-8")
    train: list[Example] = []
    eval_: list[Example] = []
    for line in body.splitlines():
        rec: dict[str, Any] = json.loads(line)
        split = rec.pop("split")
        (train if split == "train" else eval_).append(Example(**rec))
    return DatasetSnapshot(tuple(train), tuple(eval_), hashlib.sha256(body.encode("utf-8")).hexdigest())
