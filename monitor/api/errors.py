"""One shape for every 422, and values the database cannot hold refused as 422 instead of failing as 500.

Every refusal of bad input is `{"detail": [{"field", "message", "type"}, ...]}` (FastAPI's own validation errors
are converted; input values are never echoed back). Ingestion checks NUL characters and unpaired surrogates
field by field; for every other route the database is the last line: Postgres refuses text with NUL and integers
beyond 64 bits, and UTF-8 cannot encode an unpaired surrogate. When that happens, the request's own path, query
and body are searched for the value responsible and the answer names it. If nothing in the request explains the
error, it is a bug, and it stays a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from monitor.api.body import field_problems

INT64 = (-(2**63), 2**63 - 1)


def problem(field: str, message: str, kind: str = "value_error") -> dict[str, str]:
    return {"field": field, "message": message, "type": kind}


def unstorable(value: Any) -> str | None:
    """Why the database cannot store this scalar, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character (\\u0000), which cannot be stored"
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "contains an unpaired UTF-16 surrogate, which is not valid Unicode and cannot be stored"
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return "is outside the 64-bit integer range"
    return None


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            child = f"{path}.{k}" if path else str(k)
            yield child, k  # keys are stored too (JSON columns)
            yield from _walk(v, child)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path or "body", value


def _int_or_str(raw: str) -> Any:
    try:
        return int(raw)
    except ValueError:
        return raw


async def _request_values(request: Request) -> Iterator[tuple[str, Any]]:
    values: list[tuple[str, Any]] = [(f"path.{k}", _int_or_str(str(v))) for k, v in request.path_params.items()]
    values += [(f"query.{k}", _int_or_str(v)) for k, v in request.query_params.multi_items()]
    try:
        raw = await request.body()
    except Exception:  # a route that streamed its body (ingestion) validated it itself
        raw = b""
    if raw:
        try:
            doc: Any = json.loads(raw)
        except ValueError:
            try:
                doc = yaml.safe_load(raw)
            except yaml.YAMLError:
                doc = raw.decode("utf-8", "surrogateescape")
        values += list(_walk(doc))
    return iter(values)


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" not in str(exc):
        raise exc
    for field, value in await _request_values(request):
        reason = unstorable(value)
        if reason:
            return JSONResponse({"detail": [problem(field, reason)]}, status_code=422)
    raise exc  # not the request's fault: a bug, reported as 500


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Body fields are named from the body's root (`threshold`, `events[0].prompt`), as ingestion names them;
    # parameters keep their location (`query.limit`, `path.delivery_id`, `header.x-driftloop-project`).
    errors = [{**e, "loc": tuple(e["loc"])[1:] if tuple(e["loc"])[:1] == ("body",) else e["loc"]}
              for e in exc.errors()]
    return JSONResponse({"detail": field_problems(errors)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(UnicodeEncodeError, _unstorable_value)


# The documented 422 body (monitor/api/openapi.py replaces FastAPI's default with it).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "FieldProblem",
    "properties": {"field": {"type": "string", "description": "Where: body.events[3].prompt, query.limit, ..."},
                   "message": {"type": "string", "description": "Why it was refused."},
                   "type": {"type": "string"}},
    "required": ["field", "message", "type"],
}
PROBLEMS_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "Problems",
    "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}},
    "required": ["detail"],
}
