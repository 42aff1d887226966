"""The bundled Grafana dashboards: finding them (a checkout or an installed wheel), and pushing them into an
existing Grafana through its HTTP API with grafana-client.

The JSON files reference one Postgres data source by uid (`driftloop-postgres`, what the provisioning in
`dashboards/provisioning/` creates). A Grafana whose data source has another uid gets the references rewritten
on the way (`--datasource-uid`), so the files themselves never need editing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import monitor

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "driftloop-postgres"
DEFAULT_FOLDER = "driftloop"


class DashboardError(Exception):
    """A problem a person can fix (wrong URL, token, folder or data source); the message says which."""


def dashboards_dir() -> Path:
    """Where the dashboard JSON lives: `monitor/_dashboards` in an installed wheel (pyproject force-includes
    it there), else `dashboards/` next to the `monitor` package in a checkout."""
    package = Path(monitor.__file__).resolve().parent
    for candidate in (package / "_dashboards", package.parent / "dashboards"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    raise DashboardError(f"no dashboard JSON found in {package / '_dashboards'} or {package.parent / 'dashboards'}")


def load_dashboards(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard by file stem (`overview`, `drift`, …), parsed; a file that is not a dashboard is an error."""
    directory = directory or dashboards_dir()
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DashboardError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not data.get("uid") or not data.get("title"):
            raise DashboardError(f"{path}: not a Grafana dashboard (needs a uid and a title)")
        out[path.stem] = data
    if not out:
        raise DashboardError(f"no dashboard JSON in {directory}")
    return out


def with_datasource(dashboard: dict[str, Any], uid: str) -> dict[str, Any]:
    """A copy whose every reference to the bundled Postgres data source points at `uid` instead."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == DATASOURCE_TYPE and node.get("uid") == DATASOURCE_UID and len(node) == 2:
                return {"type": DATASOURCE_TYPE, "uid": uid}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(copy.deepcopy(dashboard))
    return result


@dataclass(frozen=True)
class Pushed:
    name: str
    uid: str
    url: str
    version: int | None


def _client(url: str, token: str, timeout: float) -> Any:
    from grafana_client import GrafanaApi

    if not url.startswith(("http://", "https://")):
        raise DashboardError(f"--url must start with http:// or https://, got {url!r}")
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def _call(url: str, what: str, fn: Callable[[], Any]) -> Any:
    """One API call, its failures turned into sentences that say what to check."""
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    try:
        return fn()
    except GrafanaUnauthorizedError:
        raise DashboardError(f"Grafana at {url} refused the token (401) while {what}: check --token (a service "
                             "account token with the Editor role or more)") from None
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise DashboardError(f"Grafana at {url} denied {what} (403): the token's service account needs the "
                                 "Editor role (folders and dashboards)") from None
        raise DashboardError(f"Grafana at {url} rejected {what}: {exc.message}") from None
    except GrafanaException as exc:
        raise DashboardError(f"Grafana at {url} failed while {what}: {exc.message}") from None
    except OSError as exc:  # connection refused, DNS failure, TLS errors: the HTTP library's errors are OSErrors
        raise DashboardError(f"cannot reach Grafana at {url} ({type(exc).__name__}: {exc}); check --url") from None


def _check_datasource(api: Any, url: str, uid: str) -> None:
    """Refuse to upload dashboards whose panels would all fail: the data source must exist (when we may look)."""
    from grafana_client.client import GrafanaClientError

    try:
        api.datasource.get_datasource_by_uid(uid)
        return
    except GrafanaClientError as exc:
        if exc.status_code == 403:  # an Editor token may not read data sources; Grafana will say so in the panels
            return
        if exc.status_code != 404:
            raise
    postgres = [f"{d.get('name')} (uid {d.get('uid')})"
                for d in _call(url, "listing data sources", api.datasource.list_datasources)
                if d.get("type") in (DATASOURCE_TYPE, "postgres")]
    hint = f"Postgres data sources there: {', '.join(postgres)}" if postgres else "it has no Postgres data source"
    raise DashboardError(f"Grafana at {url} has no data source with uid {uid!r}; pass --datasource-uid with the uid "
                         f"of the data source that reads driftloop's database ({hint})")


def _folder_uid(api: Any, url: str, title: str) -> str:
    for folder in _call(url, "listing folders", api.folder.get_all_folders):
        if folder.get("title") == title:
            return str(folder["uid"])
    created = _call(url, f"creating folder {title!r}", lambda: api.folder.create_folder(title))
    return str(created["uid"])


def push_dashboards(
    url: str, token: str, *, folder: str = DEFAULT_FOLDER, datasource_uid: str = DATASOURCE_UID,
    directory: Path | None = None, timeout: float = 10.0,
) -> list[Pushed]:
    """Upload every bundled dashboard into `folder` (created when missing), overwriting earlier uploads of the
    same uid. Nothing is uploaded unless the Grafana answers, accepts the token and has the data source."""
    if not token.strip():
        raise DashboardError("--token is empty: create a service account token in Grafana (Administration → "
                             "Service accounts) and pass it")
    if not folder.strip():
        raise DashboardError("--folder is empty: name the folder the dashboards go into")
    dashboards = load_dashboards(directory)
    api = _client(url, token, timeout)
    _call(url, f"checking data source {datasource_uid!r}", lambda: _check_datasource(api, url, datasource_uid))
    folder_uid = _folder_uid(api, url, folder)
    pushed = []
    for name, dashboard in dashboards.items():
        body = with_datasource(dashboard, datasource_uid)
        body.pop("id", None)  # Grafana assigns ids; the uid identifies the dashboard across instances
        payload = {"dashboard": body, "folderUid": folder_uid, "overwrite": True,
                   "message": f"driftloop {monitor.__version__}"}
        answer = _call(url, f"uploading dashboard {name!r}", partial(api.dashboard.update_dashboard, payload))
        pushed.append(Pushed(name, str(answer.get("uid", body["uid"])), url.rstrip("/") + str(answer.get("url", "")),
                             answer.get("version")))
    return pushed
