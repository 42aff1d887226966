"""Person names by a named-entity model: the optional `person` detector (off by default, never part of `all=`).

spaCy (3.8) and an English pipeline are optional, imported only when a policy turns `person` on: this module
imports nothing beyond the standard library, so the SDK and a collector without the extra are unaffected. The
pipeline is a package name (`en_core_web_sm`, the default) or a path, set by DRIFTLOOP_PII_NER_MODEL; it is
loaded once per process, with only its tokenizer-to-NER components.

Fail closed: when spaCy or the pipeline is missing, finding raises NerUnavailable, which ingestion treats like any
redactor failure (503 and nothing stored, or the text withheld, per DRIFTLOOP_PII_ON_ERROR) — never a raw store.
Measured on the presidio-research extract by `python bench/pii.py --ner` (BENCHMARKS.md): 62 texts/s on two
cores with one model call per text, some 300 times slower than the pattern detectors, hence off by default.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

DEFAULT_MODEL: Final = "en_core_web_sm"
# OntoNotes labels the English pipelines use for a person; addresses (FAC/GPE/LOC) were tried and left out: on the
# bench corpus they found 16% of street addresses at 31% precision, worse than nothing for a redaction default.
PERSON_LABELS: Final = frozenset({"PERSON"})


class NerUnavailable(RuntimeError):
    """spaCy or the configured pipeline cannot be loaded."""


class _Entity(Protocol):
    start_char: int
    end_char: int
    label_: str


class _Doc(Protocol):
    @property
    def ents(self) -> Sequence[_Entity]: ...


Pipeline = Callable[[str], _Doc]

_lock = threading.Lock()
_model = DEFAULT_MODEL
_loaded: dict[str, Pipeline] = {}


def use_model(name: str | None) -> None:
    """The pipeline the `person` detector loads (the collector passes DRIFTLOOP_PII_NER_MODEL); cheap to repeat."""
    global _model
    _model = name or DEFAULT_MODEL


def load(name: str) -> Pipeline:
    """spaCy's pipeline `name` with only what named entities need."""
    try:
        spacy: Any = importlib.import_module("spacy")
    except ImportError as exc:
        raise NerUnavailable("the `person` PII detector needs spaCy (3.8) and an English pipeline") \
            from exc
    try:
        nlp = spacy.load(name, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"])
    except OSError as exc:
        raise NerUnavailable(f"spaCy pipeline {name!r} is not installed (DRIFTLOOP_PII_NER_MODEL)") from exc
    if "ner" not in nlp.pipe_names:
        raise NerUnavailable(f"spaCy pipeline {name!r} has no `ner` component")
    return nlp


def pipeline() -> Pipeline:
    name = _model
    nlp = _loaded.get(name)
    if nlp is None:
        with _lock:
            nlp = _loaded.get(name)
            if nlp is None:
                nlp = _loaded[name] = load(name)
    return nlp


def person_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each person name the pipeline finds in `text`."""
    return [(e.start_char, e.end_char) for e in pipeline()(text).ents if e.label_ in PERSON_LABELS]
