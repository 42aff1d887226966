"""The error vocabulary of driftloop's services, one module for every domain.

Services raise these; the API maps them to HTTP answers in one exception handler (`monitor.api.errors`):
`NotFoundError` 404, `ConflictError` 409, `FieldError`/`FieldErrors` 422 naming the field(s) in the shape of
every other 422 (`{"detail": [{"field", "message", "type"}]}`). The CLI prints their message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["ConflictError", "FieldError", "FieldErrors", "NotFoundError", "Problem"]


class NotFoundError(LookupError):
    """No such thing in this project (another project's row is as good as missing)."""


class ConflictError(Exception):
    """The request contradicts the current state (a name already taken, an endpoint still in use, a version
    already champion)."""


class FieldError(ValueError):
    """A value that is well-formed but not acceptable here; `field` names it (e.g. actions[0].endpoints[1])."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class Problem(Protocol):
    @property
    def field(self) -> str: ...

    @property
    def message(self) -> str: ...


class FieldErrors(ValueError):
    """Several refused values at once (a rule file: every problem found), each naming its field."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems: Sequence[Problem] = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
