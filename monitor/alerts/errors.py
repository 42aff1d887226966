"""Errors the alert services raise; the API maps them to 404 / 409 / 422 and the CLI prints them."""

from __future__ import annotations

from monitor.services.projects import NotFoundError

__all__ = ["ConflictError", "FieldError", "NotFoundError"]


class ConflictError(Exception):
    """The request contradicts the current state (a name already taken, an endpoint still in use)."""


class FieldError(ValueError):
    """A value that is well-formed but not acceptable here; `field` names it (e.g. actions[0].endpoints[1])."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
