"""The reference model server: an OpenAI-compatible `/v1/chat/completions` for a project's champion.

- The base model is loaded once; versions are LoRA adapters attached to it by directory (no base reload).
- The `champion`/`challenger` aliases are re-read from the database at most every
  `DRIFTLOOP_MODEL_SERVER_RELOAD_SECONDS` (and at once on `POST /admin/reload`), so a promotion or rollback is
  picked up without a restart.
- `DRIFTLOOP_CANARY_SHARE` of requests go to the challenger (when there is one); a request may also name
  `champion`, `challenger` or the version itself as its `model`.
- Every answer carries the version as `model` and in the `x-driftloop-model-version` header, and, when a
  collector is configured, is logged through the SDK with that version, so the online metrics of champion
  and challenger can be compared per version.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import make_engine, session_factory
from monitor.llm import DEFAULT_MODEL_ALIAS, LoadedLM, attach_adapter, encode_prompt, generate_chat
from monitor.projects.service import get_project
from monitor.settings import Settings, get_settings
from retrain.registry.service import alias_target, ensure_champion
from retrain.serving.lm_cache import get_lm

log = logging.getLogger(__name__)
VERSION_HEADER = "x-driftloop-model-version"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=100_000)]


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat request this server honours; other fields (top_p, user, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    stream: bool = False
    n: int = 1
    seed: int | None = None


@dataclass(frozen=True)
class Served:
    name: str
    adapter_path: str | None
    base_model: str


@dataclass(frozen=True)
class Routes:
    champion: Served
    challenger: Served | None


class InvalidRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def _error(message: str, *, param: str | None = None, status: int = 400,
           kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                        status_code=status)


class ServingState:
    """The aliases as last read, refreshed at most every `reload_seconds`; picks a version per request."""

    def __init__(self, lm: LoadedLM, factory: sessionmaker[Session], project_id: int, base_name: str, *,
                 reload_seconds: float, canary_share: float, seed: int | None = None) -> None:
        self.lm, self.factory, self.project_id, self.base_name = lm, factory, project_id, base_name
        self.reload_seconds, self.canary_share = reload_seconds, canary_share
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._routes: Routes | None = None
        self._loaded_at = 0.0

    def _read(self) -> Routes:
        with self.factory() as session:
            champion = ensure_champion(session, self.project_id, self.base_name, actor="model-server")
            challenger = alias_target(session, self.project_id, "challenger")
            session.commit()
            routes = Routes(Served(champion.name, champion.adapter_path, champion.base_model),
                            None if challenger is None else Served(challenger.name, challenger.adapter_path,
                                                                   challenger.base_model))
        for served in (routes.champion, routes.challenger):
            if served is not None and served.adapter_path is not None:
                attach_adapter(self.lm, served.adapter_path)  # now, so a bad adapter fails the reload, not a user
        return routes

    def routes(self, *, force: bool = False) -> Routes:
        with self._lock:
            due = time.monotonic() - self._loaded_at >= self.reload_seconds
            if self._routes is None or force or due:
                self._routes = self._read()
                self._loaded_at = time.monotonic()
            return self._routes

    def pick(self, requested: str | None) -> tuple[Served, str]:
        routes = self.routes()
        challenger = routes.challenger
        if requested in ("champion", routes.champion.name):
            return routes.champion, "champion"
        if challenger is not None and requested in ("challenger", challenger.name):
            return challenger, "challenger"
        if challenger is not None and challenger.name != routes.champion.name and self.canary_share > 0:
            with self._lock:
                draw = self._rng.random()
            if draw < self.canary_share:
                return challenger, "canary"
        return routes.champion, "champion"


def _validate(req: ChatRequest, max_tokens_bound: int) -> int:
    if req.stream:
        raise InvalidRequest("stream=true is not supported by the driftloop model server; send stream=false",
                             "stream")
    if req.n != 1:
        raise InvalidRequest(f"n={req.n} is not supported; this server returns exactly one choice (n=1)", "n")
    if all(m.role == "system" for m in req.messages):
        raise InvalidRequest("messages needs at least one user or assistant message", "messages")
    wanted = req.max_completion_tokens or req.max_tokens or min(256, max_tokens_bound)
    if wanted > max_tokens_bound:
        raise InvalidRequest(f"max_tokens={wanted} exceeds this server's limit of {max_tokens_bound} "
                             "(DRIFTLOOP_MODEL_SERVER_MAX_TOKENS)", "max_tokens")
    return wanted


def _sdk_client(settings: Settings) -> Any:
    if not (settings.model_server_collector_url and settings.model_server_api_key):
        return None
    from monitor.sdk import Client

    return Client(settings.model_server_collector_url, settings.model_server_api_key)


def create_model_server(settings: Settings | None = None, *, project: str | None = None,
                        factory: sessionmaker[Session] | None = None, lm: LoadedLM | None = None,
                        sdk_client: Any = None, seed: int | None = None) -> FastAPI:
    """The app for `project` (default: DRIFTLOOP_MODEL_SERVER_PROJECT). Loads the base model now."""
    settings = settings or get_settings()
    slug = project or settings.model_server_project
    if not slug:
        raise ValueError("which project's model to serve? pass --project or set DRIFTLOOP_MODEL_SERVER_PROJECT")
    factory = factory or session_factory(make_engine(settings.database_url))
    with factory() as session:
        project_id = get_project(session, slug).id
    lm = lm or get_lm(settings.base_model, settings)
    state = ServingState(lm, factory, project_id, settings.base_model or DEFAULT_MODEL_ALIAS,
                         reload_seconds=settings.model_server_reload_seconds, canary_share=settings.canary_share,
                         seed=seed)
    logger = sdk_client if sdk_client is not None else _sdk_client(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if logger is not None and sdk_client is None:
            logger.close()

    app = FastAPI(title="driftloop model server", lifespan=lifespan,
                  description=f"OpenAI-compatible chat completions for project {slug!r}'s champion.")
    app.state.serving = state
    state.routes()  # fail at start, not on the first request, when the champion's adapter cannot be loaded

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return _error(f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}", param=where)

    @app.exception_handler(InvalidRequest)
    async def _refused(_: Request, exc: InvalidRequest) -> JSONResponse:
        return _error(exc.message, param=exc.param, status=exc.status)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        routes = state.routes()
        return {"status": "ok", "champion": routes.champion.name,
                "challenger": routes.challenger.name if routes.challenger else None}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        routes = state.routes()
        rows = [("champion", routes.champion), ("challenger", routes.challenger)]
        return {"object": "list", "data": [
            {"id": s.name, "object": "model", "owned_by": "driftloop", "alias": alias, "base_model": s.base_model}
            for alias, s in rows if s is not None]}

    @app.post("/admin/reload")
    def reload() -> dict[str, Any]:
        routes = state.routes(force=True)
        return {"champion": routes.champion.name, "challenger": routes.challenger.name if routes.challenger else None}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> JSONResponse:
        max_tokens = _validate(req, settings.model_server_max_tokens)
        served, route = state.pick(req.model)
        messages = [m.model_dump() for m in req.messages]
        started = time.perf_counter()
        [reply] = generate_chat(lm, [messages], max_new_tokens=max_tokens, temperature=req.temperature,
                                adapter=served.adapter_path, seed=req.seed, batch_size=1)
        latency_ms = (time.perf_counter() - started) * 1000
        prompt_tokens = len(encode_prompt(lm, messages))
        # `generate_chat` returns text only: the reply is re-tokenized, which can differ from what was sampled
        # by a token or two after whitespace stripping (never more than the budget, hence the clamp).
        completion_tokens = min(len(lm.tokenizer(reply, add_special_tokens=False)["input_ids"]), max_tokens)
        last_user = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
        event_id = None
        if logger is not None:
            event_id = logger.log(last_user, reply, model=served.base_model, model_version=served.name,
                                  latency_ms=latency_ms, prompt_tokens=prompt_tokens,
                                  completion_tokens=completion_tokens, metadata={"route": route, "server": "driftloop"})
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": served.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                         "finish_reason": "length" if completion_tokens >= max_tokens else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "driftloop": {"version": served.name, "route": route, "base_model": served.base_model,
                          "event_id": event_id},
        }
        return JSONResponse(body, headers={VERSION_HEADER: served.name})

    return app
