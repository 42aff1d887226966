"""YAML from untrusted callers: no aliases or anchors, bounded nesting, bounded size.

`yaml.safe_load` is safe against code execution but not against cost: an "alias bomb" (a few hundred
bytes of `&a [*b, *b, ...]` nested seven deep) expands into billions of nodes when the loaded value is
walked or serialised, and one such request stalled every tenant of the collector (issue #18, finding 2).
Rule files and probe sets never need aliases, so they are refused outright (not merely bounded) with a
message that says so, as is nesting deeper than `MAX_DEPTH`. The check runs over libyaml's event stream
(C speed, nothing composed), then the document is loaded with the C loader.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 32
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLInputError(ValueError):
    """The document is not acceptable: not YAML, uses aliases/anchors, or nests too deep. `where` names the
    line and column when known."""

    def __init__(self, message: str, where: str = "file"):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "file"


def check_events(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise `YAMLInputError` at the first alias, anchor, or collection nested deeper than `max_depth`."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise YAMLInputError("aliases (*name) are not accepted; write the value out in full",
                                     _where(event.start_mark))
            if getattr(event, "anchor", None) is not None:
                raise YAMLInputError("anchors (&name) are not accepted; write the value out in full",
                                     _where(event.start_mark))
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    raise YAMLInputError(f"nested deeper than {max_depth} levels", _where(event.start_mark))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise YAMLInputError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                             _where(getattr(exc, "problem_mark", None))) from None


def load_untrusted(text: str | bytes, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """The document's value (plain dicts, lists, scalars), or `YAMLInputError` naming what is refused."""
    if max_bytes is not None and len(text) > max_bytes:
        raise YAMLInputError(f"larger than {max_bytes} bytes")
    check_events(text, max_depth=max_depth)
    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        raise YAMLInputError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                             _where(getattr(exc, "problem_mark", None))) from None
