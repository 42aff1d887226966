"""The collector's OpenAPI document: hand-parsed bodies, the Bearer scheme, the scope each operation needs, and
the answers every authenticated route can give (so clients and schema fuzzers know them)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from monitor.api.deps import require_project, scope_of
from monitor.api.errors import PROBLEM_SCHEMA, PROBLEMS_SCHEMA
from monitor.schemas import EventBatch, FeedbackBatch

BEARER = "projectKey"
_AUTH_RESPONSES: dict[str, str] = {
    "401": "Missing, malformed, unknown or revoked API key.",
    "403": "The key lacks the scope the operation needs (`x-driftloop-scope`), or belongs to another project "
           "than `X-Driftloop-Project` names. Nothing changed.",
    "429": "Rate limited (per API key); nothing stored, retry after `Retry-After` seconds.",
    "503": "Database unavailable; nothing stored, retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
_ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}},
    "required": ["detail"],
}
_PROBLEMS_REF = {"$ref": "#/components/schemas/HTTPValidationError"}


def uses_dependency(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or uses_dependency(d, call) for d in dependant.dependencies)


def required_scope(dependant: Dependant) -> str | None:
    """The API key scope a route needs (`ingest`, `read`, `admin`), found in its dependencies; None if none."""
    for d in dependant.dependencies:
        scope = scope_of(d.call) or required_scope(d)
        if scope is not None:
            return scope
    return None


def api_routes(app: FastAPI) -> list[RouteContext]:
    """Every API route, flattened through included routers (with their prefixes and dependencies)."""
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def authenticated_routes(app: FastAPI) -> list[RouteContext]:
    """Routes that need a project key (every route that depends on `require_project`, however deeply)."""
    return [c for c in api_routes(app) if c.dependant is not None and uses_dependency(c.dependant, require_project)]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (EventBatch, FeedbackBatch):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    # Every 422 is a list of {field, message, type} (monitor/api/errors.py), not FastAPI's default shape.
    schemas["HTTPValidationError"], schemas["ValidationError"] = PROBLEMS_SCHEMA, PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "A project API key (`driftloop keys create PROJECT --scope ingest|read|admin`). Each "
                       "operation names the scope it needs in `x-driftloop-scope`; `admin` includes `read`.",
    }
    for route in authenticated_routes(app):
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format or "", {}).get(method.lower())
            if operation is None:
                continue
            operation["security"] = [{BEARER: []}]
            _document_scope(operation, route)
            responses = operation.setdefault("responses", {})
            responses.setdefault("422", {"description": "A field is invalid; nothing changed."}).setdefault(
                "content", {"application/json": {"schema": _PROBLEMS_REF}})
            for code, description in _AUTH_RESPONSES.items():
                answer = responses.setdefault(code, {"description": description})
                answer.setdefault("content", {"application/json": {"schema": _ERROR_BODY}})
                if code in ("429", "503"):
                    answer.setdefault("headers", _RETRY_AFTER)
    return schema


def _document_scope(operation: dict[str, Any], route: RouteContext) -> None:
    scope = required_scope(route.dependant) if route.dependant is not None else None
    if scope is None:
        return
    operation["x-driftloop-scope"] = scope
    needs = f"Needs an API key with the `{scope}` scope" + (" (or `admin`)." if scope == "read" else ".")
    operation["description"] = f"{operation['description']}\n\n{needs}" if operation.get("description") else needs
