"""docker-compose.yml against the code: no Docker engine runs here, so every service's command is parsed by the
real CLI (and, for Celery, by Celery's own CLI), every DRIFTLOOP_ variable must build valid Settings, ports match
the CLI, health checks hit routes that exist and answer, and Grafana gets the provisioning it needs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from monitor.pipeline.cli import celery_beat_argv, celery_worker_argv
from monitor.settings import DEFAULT_SECRET, Settings
from tests.deploy.cli import celery_cli, driftloop
from tests.deploy.compose import MissingVariable, load_compose
from tests.support.services import repo_root

ROOT = repo_root()
SECRETS = {"DRIFTLOOP_SECRET_KEY": "a-long-random-production-secret-0123456", "POSTGRES_PASSWORD": "pg-pass",
           "GRAFANA_DB_PASSWORD": "reader-pass", "GRAFANA_ADMIN_PASSWORD": "admin-pass"}
DRIFTLOOP_SERVICES = ("collector", "worker", "gpu-worker", "beat", "model-server")


def compose(**env: str) -> dict[str, Any]:
    return load_compose(ROOT / "docker-compose.yml", {**SECRETS, **env})


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def container_ports(service: dict[str, Any]) -> dict[int, str]:
    """Container port → host binding, from `[ip:]host:container` entries."""
    out = {}
    for entry in service.get("ports", []):
        *host, container = str(entry).split(":")
        out[int(container)] = ":".join(host)
    return out


def health_cmd(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return list(test[1:]) if test[0] == "CMD" else shlex.split(test[1])


def test_services_profiles_and_secrets(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", "redis", "collector", "worker", "gpu-worker", "beat", "model-server",
                             "grafana"}
    profiled = {name: s["profiles"] for name, s in services.items() if "profiles" in s}
    assert profiled == {"gpu-worker": ["gpu"], "model-server": ["model"]}
    for name in SECRETS:  # no default secret anywhere: compose refuses to start without each one
        with pytest.raises(MissingVariable, match=name):
            load_compose(ROOT / "docker-compose.yml", {k: v for k, v in SECRETS.items() if k != name})


@pytest.mark.parametrize("name", DRIFTLOOP_SERVICES)
def test_environment_builds_valid_settings(services: dict[str, dict[str, Any]], name: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    env = services[name]["environment"]
    fields = {f"DRIFTLOOP_{f.upper()}" for f in Settings.model_fields}
    assert sorted(k for k in env if k.startswith("DRIFTLOOP_") and k not in fields) == []
    for key in list(os.environ):
        if key.startswith("DRIFTLOOP_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mode == "production" and settings.runner == "celery"
    pg = services["postgres"]["environment"]
    db = make_url(settings.database_url)
    assert (db.drivername, db.host, db.port, db.username, db.password, db.database) == (
        "postgresql+psycopg", "postgres", 5432, pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    assert 5432 in container_ports(services["postgres"])
    redis = make_url(settings.redis_url)
    assert (redis.host, redis.port) == ("redis", 6379) and 6379 in container_ports(services["redis"])
    # Adapters written by workers are read by the model server: one shared volume at the data directory.
    assert f"driftloop-data:{settings.data_dir}" in services[name]["volumes"]
    monkeypatch.setenv("DRIFTLOOP_SECRET_KEY", DEFAULT_SECRET)
    with pytest.raises(ValueError, match="DRIFTLOOP_SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_collector_command_port_and_readiness(services: dict[str, dict[str, Any]], pg_url: str) -> None:
    collector = services["collector"]
    cmd, ctx = driftloop(collector["command"])
    assert cmd.name == "serve" and ctx.params["host"] == "0.0.0.0" and ctx.params["migrate_first"] is True
    port = ctx.params["port"]
    assert container_ports(collector) == {port: str(port)}
    probe = health_cmd(collector)
    assert probe[:2] == ["curl", "-fsS"]
    url = make_url_http(probe[-1])
    assert url == ("127.0.0.1", port, "/readyz")
    from monitor.api.app import create_app

    with TestClient(create_app(Settings(database_url=pg_url))) as client:  # a migrated database: ready
        assert client.get(url[2]).status_code == 200


def make_url_http(url: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"http://([^:/]+):(\d+)(/\S*)", url)
    assert m, url
    return m.group(1), int(m.group(2)), m.group(3)


@pytest.mark.parametrize("backend", ["postgres"])
def test_model_server_command_port_and_health(services: dict[str, dict[str, Any]], tmp_path: Path,
                                              session_maker: sessionmaker[Session], settings: Settings) -> None:
    from monitor.llm import load_causal_lm
    from monitor.projects.service import get_or_create_project
    from retrain.serving.server import create_model_server
    from tests.support.factories import unique_slug
    from tests.support.tiny_model import build_tiny_model_dir

    server = services["model-server"]
    cmd, ctx = driftloop(server["command"])
    assert cmd.name == "serve-model" and ctx.params["host"] == "0.0.0.0"
    port = ctx.params["port"]
    default_port = next(p.default for p in cmd.params if p.name == "port")
    assert port == default_port and container_ports(server) == {port: str(port)}
    env = server["environment"]
    assert make_url_http(env["DRIFTLOOP_MODEL_SERVER_COLLECTOR_URL"] + "/")[:2] == (
        "collector", driftloop(services["collector"]["command"])[1].params["port"])
    probe = health_cmd(server)
    host, probe_port, path = make_url_http(probe[-1])
    assert (host, probe_port) == ("127.0.0.1", port)
    with session_maker() as s:
        slug = get_or_create_project(s, unique_slug()).slug
        s.commit()
    lm = load_causal_lm(str(build_tiny_model_dir(tmp_path / "tiny")), device="cpu")
    with TestClient(create_model_server(settings, project=slug, factory=session_maker, lm=lm)) as client:
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("name", ["worker", "gpu-worker"])
def test_worker_commands_parse_with_celery(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    cmd, ctx = driftloop(service["command"])
    assert cmd.name == "worker"
    celery_cmd, celery_ctx = celery_cli(celery_worker_argv(ctx.params["queues"], ctx.args))
    assert celery_cmd.name == "worker" and celery_ctx.args == []
    node = next(a for a in ctx.args[ctx.args.index("--hostname") + 1:])
    assert node.endswith("@%h")
    probe = health_cmd(service)
    ping_cmd, ping = celery_cli(probe[probe.index("celery"):])
    assert ping_cmd.name == "inspect" and ping.params["command"] == "ping"
    # %h is the host name, which is $HOSTNAME inside a container.
    assert ping.params["destination"] == [node.replace("%h", "$HOSTNAME")]


def queues_of(services: dict[str, dict[str, Any]], *names: str) -> set[str]:
    return {q for n in names for q in driftloop(services[n]["command"])[1].params["queues"].split(",")}


def test_every_queue_has_a_consumer_with_and_without_the_gpu_profile(services: dict[str, dict[str, Any]]) -> None:
    from monitor.pipeline.stages import stages
    from monitor.worker.app import celery_app

    needed = {"default"} | {s.queue for s in stages()} | {r["queue"] for r in celery_app.conf.task_routes.values()}
    assert "gpu" in needed
    assert queues_of(services, "worker") >= needed  # the default stack: no profile, one worker
    with_gpu = compose(WORKER_QUEUES="default")["services"]
    assert "gpu" not in queues_of(with_gpu, "worker")
    assert queues_of(with_gpu, "worker", "gpu-worker") >= needed
    assert queues_of(with_gpu, "gpu-worker") == {"gpu"}
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert [(d["driver"], d["capabilities"]) for d in devices] == [("nvidia", ["gpu"])]
    assert services["gpu-worker"]["environment"]["DRIFTLOOP_DEVICE"] == "auto"


def test_beat_command_and_its_health_check(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    beat = services["beat"]
    cmd, ctx = driftloop(beat["command"])
    assert cmd.name == "beat"
    _, celery_ctx = celery_cli(celery_beat_argv(ctx.args))
    schedule = celery_ctx.params["schedule"]
    assert Path(schedule).parent == Path(beat["environment"]["DRIFTLOOP_DATA_DIR"])
    probe = health_cmd(beat)
    assert probe[:2] == ["python", "-c"] and f"{schedule}*" in probe[2]
    # Run the probe itself against a schedule file of our own: fresh passes, stale or missing fails.
    script = probe[2].replace(schedule, str(tmp_path / "celerybeat-schedule"))

    def probe_exit() -> int:
        return subprocess.run([sys.executable, "-c", script], check=False).returncode

    assert probe_exit() != 0
    written = tmp_path / "celerybeat-schedule.db"
    written.write_bytes(b"x")
    assert probe_exit() == 0
    os.utime(written, (time.time() - 700, time.time() - 700))
    assert probe_exit() != 0


def test_store_and_grafana_health_checks(services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    probe = health_cmd(pg)
    assert probe[0] == "pg_isready"
    assert probe[probe.index("-U") + 1] == pg["environment"]["POSTGRES_USER"]
    assert probe[probe.index("-d") + 1] == pg["environment"]["POSTGRES_DB"]
    assert health_cmd(services["redis"]) == ["redis-cli", "ping"]
    grafana = services["grafana"]
    probe = health_cmd(grafana)
    assert make_url_http(probe[probe.index("-O") + 2]) == ("127.0.0.1", 3000, "/api/health")
    assert container_ports(grafana) == {3000: "3000"}
    # The stores are published on loopback only (the host's CLI and tests), never on every interface.
    assert container_ports(pg) == {5432: "127.0.0.1:5432"}
    assert container_ports(services["redis"]) == {6379: "127.0.0.1:6379"}


def test_dependencies_wait_for_health_and_everything_restarts(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name
        assert "healthcheck" in service, name
        for dep, spec in service.get("depends_on", {}).items():
            assert spec == {"condition": "service_healthy"}, (name, dep)
            assert "healthcheck" in services[dep], dep
    for name in DRIFTLOOP_SERVICES:
        if name != "collector":  # the collector migrates the schema; the others wait until it is ready
            assert "collector" in services[name]["depends_on"], name


def test_grafana_mounts_the_provisioning_and_its_variables_resolve(services: dict[str, dict[str, Any]]) -> None:
    grafana, pg = services["grafana"], services["postgres"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in grafana["volumes"])}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    provider = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards/driftloop.yaml").read_text())
    [files] = provider["providers"]
    assert mounts[files["options"]["path"]] == "./dashboards"
    env = grafana["environment"]
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (ROOT / "dashboards" / home.relative_to(files["options"]["path"])).is_file()
    datasource = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/driftloop.yaml").read_text())
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(datasource)))
    assert used and used <= set(env), used - set(env)
    assert env["GRAFANA_DB_HOST"] == f"postgres:{next(iter(container_ports(pg)))}"
    assert env["GRAFANA_DB_NAME"] == pg["environment"]["POSTGRES_DB"]
    assert env["GRAFANA_DB_USER"] == pg["environment"]["GRAFANA_DB_USER"]
    assert env["GRAFANA_DB_PASSWORD"] == pg["environment"]["GRAFANA_DB_PASSWORD"]
    pg_mounts = {target: source for source, target, *_ in (v.split(":") for v in pg["volumes"])}
    init = ROOT / pg_mounts["/docker-entrypoint-initdb.d"]
    assert (init / "10-grafana-reader.sh").is_file() and os.access(init / "10-grafana-reader.sh", os.X_OK)


@pytest.fixture(scope="module")
def dockerfile() -> Iterator[list[tuple[str, str]]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    yield [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln.strip() else "")
           for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_one_dockerfile_serves_every_driftloop_service(services: dict[str, dict[str, Any]],
                                                       dockerfile: list[tuple[str, str]]) -> None:
    for name in DRIFTLOOP_SERVICES:
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert services[name]["image"] == services["collector"]["image"]
    for instruction, args in dockerfile:
        if instruction == "COPY":
            *sources, _ = args.split()
            assert all((ROOT / s).exists() for s in sources), args
    exposed = {int(p) for i, a in dockerfile if i == "EXPOSE" for p in a.split()}
    published = {p for n in ("collector", "model-server") for p in container_ports(services[n])}
    assert published <= exposed
    run = " ".join(a for i, a in dockerfile if i == "RUN")
    assert "curl" in run  # the HTTP health checks use it
    env = " ".join(a for i, a in dockerfile if i == "ENV")
    assert "DRIFTLOOP_DATA_DIR=/data" in env
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'driftloop = "monitor.cli:main"' in pyproject
