"""What clients see of server paths: names relative to a known root, never an absolute path.

Job messages (an exception's text), job results (the dataset file), versions (adapter and dataset paths) are
shown to `read` keys, in the UI and in webhooks; absolute paths there map the server's file system for whoever
reads them. Paths under the data directory read `data:<relative path>`, under a model root `<root>:<relative
path>` (the same name a job may use as its base model); any other absolute path shows only its last component.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, overload

from monitor.settings import Settings, get_settings
from retrain.jobs.base_models import model_roots

# An absolute POSIX path inside free text: a `/` not preceded by a word character, `:` or `/` (so URLs and
# fractions such as 3/5 are left alone), up to whitespace, a quote or closing punctuation.
_ABSOLUTE = re.compile(r"(?<![\w:/.~])/[^\s'\"`,;()\[\]{}<>]+")


def _named_roots(settings: Settings) -> list[tuple[str, Path]]:
    return [("data", Path(settings.data_dir).resolve())] + [(r.name, r.path) for r in model_roots(settings)]


def public_path(path: str | Path | None, settings: Settings | None = None) -> str | None:
    """`path` as clients may see it (relative names pass unchanged)."""
    if path is None:
        return None
    text = str(path)
    if not text.startswith("/"):
        return text
    absolute = Path(text)
    settings = settings or get_settings()
    best: tuple[int, str] | None = None
    for name, root in _named_roots(settings):
        for candidate in {absolute, absolute.resolve()}:
            if candidate.is_relative_to(root):
                rel = candidate.relative_to(root).as_posix()
                depth = len(root.parts)  # the most specific root wins
                if best is None or depth > best[0]:
                    best = (depth, f"{name}:{rel}" if rel != "." else f"{name}:")
    return best[1] if best else f"<server path>/{absolute.name}"


@overload
def scrub_text(text: str, settings: Settings | None = None) -> str: ...
@overload
def scrub_text(text: None, settings: Settings | None = None) -> None: ...
def scrub_text(text: str | None, settings: Settings | None = None) -> str | None:
    """Every absolute path inside `text` replaced by its public form."""
    if not text or "/" not in text:
        return text
    settings = settings or get_settings()
    return _ABSOLUTE.sub(lambda m: public_path(m.group(0), settings) or "", text)


def scrub(value: Any, settings: Settings | None = None) -> Any:
    """`scrub_text` applied to every string of a JSON-like value (dict keys stay)."""
    settings = settings or get_settings()
    if isinstance(value, str):
        return scrub_text(value, settings)
    if isinstance(value, dict):
        return {k: scrub(v, settings) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, settings) for v in value]
    return value
