"""A tiny stand-in for Grafana's HTTP API on a real socket (uvicorn in a thread): the few endpoints
`driftloop dashboards push` calls, with Grafana's status codes and shapes, recording what it receives."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from monitor.dashboards import DATASOURCE_TYPE
from tests.support.services import free_port
from tests.support.waiting import wait_for


@dataclass
class GrafanaStub:
    token: str = "glsa_good"
    datasources: list[dict[str, Any]] = field(default_factory=lambda: [
        {"id": 1, "uid": "driftloop-postgres", "name": "driftloop", "type": DATASOURCE_TYPE}])
    folders: list[dict[str, Any]] = field(default_factory=list)
    deny_datasource_reads: bool = False  # an Editor token: datasources:read is not granted
    uploads: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def auth(request: Request, call_next: Any) -> Any:
            self.calls.append(f"{request.method} {request.url.path}")
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"message": "invalid API key"}, status_code=401)
            return await call_next(request)

        @app.get("/api/folders")
        def folders() -> list[dict[str, Any]]:
            return self.folders

        @app.post("/api/folders")
        async def create_folder(request: Request) -> dict[str, Any]:
            body = await request.json()
            folder = {"id": len(self.folders) + 1, "uid": f"fold{len(self.folders) + 1}", "title": body["title"]}
            self.folders.append(folder)
            return folder

        @app.get("/api/datasources")
        def datasources() -> Any:
            if self.deny_datasource_reads:
                return JSONResponse({"message": "permission denied"}, status_code=403)
            return self.datasources

        @app.get("/api/datasources/uid/{uid}")
        def datasource(uid: str) -> Any:
            if self.deny_datasource_reads:
                return JSONResponse({"message": "permission denied"}, status_code=403)
            for d in self.datasources:
                if d["uid"] == uid:
                    return d
            return JSONResponse({"message": "Data source not found"}, status_code=404)

        @app.post("/api/dashboards/db")
        async def save(request: Request) -> Any:
            body = await request.json()
            dashboard = body.get("dashboard") or {}
            if not dashboard.get("title") or not dashboard.get("uid"):
                return JSONResponse({"message": "Dashboard title cannot be empty"}, status_code=400)
            if body.get("folderUid") not in {f["uid"] for f in self.folders}:
                return JSONResponse({"message": "folder not found"}, status_code=400)
            versions = [u for u in self.uploads if u["dashboard"]["uid"] == dashboard["uid"]]
            if versions and not body.get("overwrite"):
                return JSONResponse({"message": "A dashboard with the same uid already exists"}, status_code=412)
            self.uploads.append(body)
            slug = re.sub(r"[^a-z0-9]+", "-", dashboard["title"].lower()).strip("-")
            return {"id": len(self.uploads), "uid": dashboard["uid"], "url": f"/d/{dashboard['uid']}/{slug}",
                    "status": "success", "version": len(versions) + 1, "slug": slug}

        return app


@contextmanager
def running_grafana(stub: GrafanaStub) -> Iterator[GrafanaStub]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(stub.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "the Grafana stub to listen")
        stub.url = f"http://127.0.0.1:{port}"
        yield stub
    finally:
        server.should_exit = True
        thread.join(timeout=10)
