"""One shape for every 422, and values the database cannot hold refused as 422 instead of failing as 500.

Every refusal of bad input is `{"detail": [{"field", "message", "type"}, ...]}` (FastAPI's own validation errors
are converted; input values are never echoed back). NUL is refused before anything is stored, the same on both
backends: ingestion checks NUL characters and unpaired surrogates field by field, the other bodies' models refuse
NUL (`NulFreeModel`), and an app-wide dependency refuses it in path and query parameters and form fields;
pydantic refuses unpaired surrogates in every other body. For what is left the database is the last line:
Postgres refuses integers beyond 64 bits (and text with NUL, should a path be missed). When that happens, the
request's own path, query and body are searched for the value responsible and the answer names it. If nothing in
the request explains the error, it is a bug, and it stays a 500.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool

from monitor.api.body import field_problems, printable, unstorable, walk
from monitor.errors import ConflictError, FieldError, FieldErrors, NotFoundError
from monitor.schemas import NUL_MESSAGE
from monitor.yaml_input import YAMLInputError, load_untrusted


def problem(field: str, message: str, kind: str = "value_error") -> dict[str, str]:
    return {"field": printable(field), "message": printable(message), "type": kind}


def _int_or_str(raw: str) -> Any:
    try:
        return int(raw)
    except ValueError:
        return raw


async def _request_values(request: Request) -> Iterator[tuple[str, Any]]:
    values: list[tuple[str, Any]] = [(f"path.{k}", _int_or_str(str(v))) for k, v in request.path_params.items()]
    values += [(f"query.{k}", _int_or_str(v)) for k, v in request.query_params.multi_items()]
    # Never read the stream here: a route that streamed its body has consumed it (reading again would wait
    # for a message that never comes). Streamed bodies are kept by `read_body`; parsed ones by Starlette.
    raw = getattr(request.state, "raw_body", None) or getattr(request, "_body", b"")
    if raw:
        # Parsed again off the event loop (a body can be megabytes), and YAML without aliases (issue #18).
        def named_values() -> list[tuple[str, Any]]:
            with contextlib.suppress(RecursionError):  # nested past Python's limit: nothing here can be named
                return list(walk(_document(raw)))
            return []

        values += await run_in_threadpool(named_values)
    return iter(values)


def _document(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        try:
            return load_untrusted(raw)
        except YAMLInputError:
            return raw.decode("utf-8", "surrogateescape")


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    for field, value in await _request_values(request):
        reason = unstorable(value)
        if reason:
            return JSONResponse({"detail": [problem(field, reason)]}, status_code=422)
    raise exc  # not the request's fault: a bug, reported as 500


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


async def refuse_nul_in_parameters(request: Request) -> None:
    """An app-wide dependency: a NUL in a path or query parameter, or in a form field, is a 422 naming it, on
    every backend (bodies are checked by their models: `NulFreeModel`, ingestion's own checks). Without it,
    Postgres refuses the value at the query and SQLite quietly compares or stores it."""
    values: list[tuple[tuple[str, ...], Any]] = [(("path", k), v) for k, v in request.path_params.items()]
    values += [(("query", k), v) for k, v in request.query_params.multi_items()]
    if request.headers.get("content-type", "").split(";")[0].strip().lower() in _FORMS:
        # Parsed once per request: Starlette keeps the form, so the route's own Form() parameters reuse it.
        values += [(("body", k), v) for k, v in (await request.form()).multi_items()]
    problems = [{"loc": loc, "msg": NUL_MESSAGE, "type": "value_error"}
                for loc, v in values if isinstance(v, str) and "\x00" in v]
    if problems:
        raise RequestValidationError(problems)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Body fields are named from the body's root (`threshold`, `events[0].prompt`), as ingestion names them;
    # parameters keep their location (`query.limit`, `path.delivery_id`, `header.x-driftloop-project`).
    errors = [{**e, "loc": tuple(e["loc"])[1:] if tuple(e["loc"])[:1] == ("body",) else e["loc"]}
              for e in exc.errors()]
    return JSONResponse({"detail": field_problems(errors)}, status_code=422)


def service_status(exc: Exception) -> int:
    """The HTTP status of an error of the services' vocabulary: 404 missing, 409 conflicting, 422 refused."""
    return 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 422


async def _service_error(request: Request, exc: Exception) -> Response:
    """The services' error vocabulary (`monitor.errors`) as HTTP: 404 missing, 409 conflicting, 422 naming the
    field(s). Routes let these through instead of catching them one by one. Under /ui/ the answer is the UI's
    error page (`app.state.error_page`, set when the UI is mounted) with the same status."""
    error_page = getattr(request.app.state, "error_page", None)
    if error_page is not None and request.url.path.startswith("/ui/"):
        return cast(Response, error_page(request, service_status(exc), str(exc)))
    if isinstance(exc, FieldError):
        return JSONResponse({"detail": [problem(exc.field, exc.message)]}, status_code=422)
    if isinstance(exc, FieldErrors):
        return JSONResponse({"detail": [problem(p.field, p.message) for p in exc.problems]}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=service_status(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _unstorable_value)
    for error in (NotFoundError, ConflictError, FieldError, FieldErrors):
        app.add_exception_handler(error, _service_error)


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
