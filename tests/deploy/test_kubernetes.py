"""deploy/kubernetes against the Kubernetes and KEDA schemas and against the code, the way test_compose.py checks
docker-compose.yml: no cluster runs here, so every object is validated offline (each stated Kubernetes release),
every container command is parsed by the real CLI (Celery's too), every DRIFTLOOP_ variable must build valid
Settings, probes hit the routes that exist, and the KEDA triggers watch the Redis lists Celery really fills."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from monitor.pipeline.cli import celery_beat_argv, celery_worker_argv
from monitor.settings import Settings
from tests.deploy.cli import celery_cli, driftloop
from tests.deploy.compose import load_compose
from tests.deploy.kubernetes import (
    KUBERNETES,
    KUSTOMIZATIONS,
    Doc,
    containers,
    keda_validator,
    kubernetes_versions,
    load_yaml_docs,
    object_id,
    pod_spec,
    render,
    validate,
)
from tests.support.services import repo_root

SECRET_EXAMPLE = KUBERNETES / "secret.example.yaml"
# The KEDA Redis scaler's parameters (pkg/scalers/redis_scaler.go, tests/deploy/schemas/keda/SOURCE.md); those
# read from the environment may also be given as <name>FromEnv. The CRD leaves `metadata` a free map.
REDIS_SCALER_PARAMS = {"address", "addresses", "username", "password", "sentinelUsername", "sentinelPassword",
                       "sentinelMaster", "host", "hosts", "port", "ports", "unsafeSsl", "listLength",
                       "activationListLength", "listName", "databaseIndex", "enableTLS"}
REDIS_SCALER_FROM_ENV = {"address", "addresses", "username", "password", "sentinelUsername", "sentinelPassword",
                         "sentinelMaster", "host", "hosts", "port", "ports"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {name: render(KUBERNETES / name) for name in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def secret() -> Doc:
    [doc] = load_yaml_docs(SECRET_EXAMPLE)
    return doc


def everything(rendered: dict[str, list[Doc]]) -> list[Doc]:
    """Every object any entry point applies, once (the overlays share the base; their gpu workers differ)."""
    distinct: dict[str, Doc] = {}
    for docs in rendered.values():
        for doc in docs:
            distinct.setdefault(json.dumps(doc, sort_keys=True), doc)
    return list(distinct.values())


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    """Objects of one kind by name (for names every entry point defines alike)."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_file_is_applied_by_an_entry_point() -> None:
    """Nothing under deploy/kubernetes escapes validation: each YAML file is a kustomization, reached from one of
    the entry points, or the example Secret."""
    reached: set[Path] = set()

    def walk(directory: Path) -> None:
        import yaml

        reached.add(directory / "kustomization.yaml")
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]:
            path = (directory / entry).resolve()
            walk(path) if path.is_dir() else reached.add(path)

    for name in KUSTOMIZATIONS:
        walk(KUBERNETES / name)
    files = {p.resolve() for p in KUBERNETES.rglob("*.yaml")}
    assert files - reached == {SECRET_EXAMPLE.resolve()}
    assert (KUBERNETES / "base/kustomization.yaml").resolve() in reached


def test_every_object_validates_against_the_kubernetes_and_keda_schemas(
        rendered: dict[str, list[Doc]], secret: Doc) -> None:
    objects = [*everything(rendered), secret]
    kinds = {d["kind"] for d in objects}
    assert {"Deployment", "Service", "Job", "ConfigMap", "Secret", "PersistentVolumeClaim",
            "HorizontalPodAutoscaler", "PodDisruptionBudget", "ScaledObject"} <= kinds
    for version in kubernetes_versions():
        for doc in objects:
            validate(doc, version)  # raises with the path of the first wrong field


def test_the_validators_reject_a_wrong_field(rendered: dict[str, list[Doc]]) -> None:
    """Strict validation: a misspelt field fails (the API server would drop it silently: a probe that never
    runs), so the test above can fail."""
    import copy

    objects = everything(rendered)
    collector = copy.deepcopy(of_kind(objects, "Deployment")["driftloop-collector"])
    container = collector["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(collector, kubernetes_versions()[0])
    scaled = copy.deepcopy(of_kind(objects, "ScaledObject")["driftloop-worker"])
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        keda_validator().validate(scaled)
    scaled["spec"]["minReplicaCount"] = scaled["spec"].pop("minReplicas")
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 20  # metadata values are strings
    with pytest.raises(jsonschema.ValidationError):
        keda_validator().validate(scaled)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed: nothing to compare with")
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_renderer_agrees_with_kubectl_kustomize(name: str) -> None:
    import yaml

    out = subprocess.run(["kubectl", "kustomize", str(KUBERNETES / name)], check=True, capture_output=True,
                         text=True).stdout
    theirs = sorted((d for d in yaml.safe_load_all(out) if d), key=object_id)
    assert sorted(render(KUBERNETES / name), key=object_id) == theirs


def workloads(docs: list[Doc]) -> list[tuple[str, Doc]]:
    return [(d["metadata"]["name"], d) for d in docs if pod_spec(d) is not None]


def test_every_container_command_is_a_real_cli_command(rendered: dict[str, list[Doc]]) -> None:
    seen: dict[str, str] = {}
    for name, doc in workloads(everything(rendered)):
        for container in containers(doc):
            command = [*container["command"], *container.get("args", [])]
            cmd, ctx = driftloop(command)  # an unknown command or option raises here
            assert ctx.args == [] or cmd.name in ("worker", "beat"), (name, command)
            seen[f"{name}/{container['name']}"] = cmd.name or ""
            if cmd.name == "worker":
                celery_cmd, celery_ctx = celery_cli(celery_worker_argv(ctx.params["queues"], ctx.args))
                assert celery_cmd.name == "worker" and celery_ctx.args == []
            elif cmd.name == "beat":
                _, celery_ctx = celery_cli(celery_beat_argv(ctx.args))
                assert celery_ctx.args == []
            elif cmd.name == "migrate":
                assert ctx.params["revision"] == "head" and ctx.params["down"] is False
                # Only the Job migrates; everything else waits for it.
                assert (ctx.params["wait"] is None) == (doc["kind"] == "Job"), name
            elif cmd.name == "serve":
                assert ctx.params["host"] == "0.0.0.0" and ctx.params["migrate_first"] is False
    assert sorted(set(seen.values())) == ["beat", "migrate", "serve", "serve-model", "worker"]
    for name, doc in workloads(everything(rendered)):
        if doc["kind"] == "Deployment" and name != "driftloop-collector":
            [init] = pod_spec(doc)["initContainers"]  # type: ignore[index]
            assert seen[f"{name}/{init['name']}"] == "migrate"


def container_env(container: Doc, objects: list[Doc], secret: Doc) -> dict[str, str]:
    """The environment a container gets: its ConfigMaps, then its own variables (Secret values from the example)."""
    config_maps, secrets = of_kind(objects, "ConfigMap"), {secret["metadata"]["name"]: secret}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, source  # secrets are named one by one, never imported whole
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
    return env


def test_secrets_come_from_the_secret_and_the_example_holds_placeholders_only(
        rendered: dict[str, list[Doc]], secret: Doc) -> None:
    objects = everything(rendered)
    used: set[str] = set()
    for _, doc in workloads(objects):
        for container in containers(doc):
            for var in container.get("env", []):
                assert "value" not in var or "SECRET" not in var["name"], var  # no literal secret
                if "valueFrom" in var:
                    ref = var["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] == var["name"]
                    used.add(ref["key"])
    assert used == set(secret["stringData"])
    assert all("REPLACE-ME" in v for v in secret["stringData"].values())
    for config_map in of_kind(objects, "ConfigMap").values():
        assert not set(config_map["data"]) & set(secret["stringData"]), config_map["metadata"]["name"]
    assert of_kind(objects, "Secret") == {}  # the kustomizations never ship one


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.startswith("DRIFTLOOP_"):
            monkeypatch.delenv(key)
    yield monkeypatch


def test_every_containers_environment_builds_valid_production_settings(
        rendered: dict[str, list[Doc]], secret: Doc, clean_env: pytest.MonkeyPatch) -> None:
    objects = everything(rendered)
    fields = {f"DRIFTLOOP_{f.upper()}" for f in Settings.model_fields}
    filled = {**secret, "stringData": {**secret["stringData"],
                                       "DRIFTLOOP_SECRET_KEY": "a-long-random-production-secret-0123456"}}
    for name, doc in workloads(objects):
        mounts = {m["name"]: m["mountPath"] for c in containers(doc, init=False) for m in c.get("volumeMounts", [])}
        for container in containers(doc):
            env = container_env(container, objects, filled)
            assert sorted(k for k in env if k.startswith("DRIFTLOOP_") and k not in fields) == [], name
            for key, value in env.items():
                clean_env.setenv(key, value)
            settings = Settings(_env_file=None)  # type: ignore[call-arg]
            assert (settings.mode, settings.runner, settings.device) == ("production", "celery", "auto")
            assert make_url(settings.database_url).drivername == "postgresql+psycopg"
            if container in list(containers(doc, init=False)) and doc["kind"] == "Deployment":
                # Adapters written by workers are read by the model server: one shared volume at the data dir.
                assert mounts["data"] == str(settings.data_dir), name
            clean_env.setenv("DRIFTLOOP_SECRET_KEY", secret["stringData"]["DRIFTLOOP_SECRET_KEY"])
            with pytest.raises(ValueError, match="DRIFTLOOP_SECRET_KEY"):  # the example's placeholder is refused
                Settings(_env_file=None)  # type: ignore[call-arg]
            for key in env:
                clean_env.delenv(key)
    claims = of_kind(objects, "PersistentVolumeClaim")
    assert claims["driftloop-data"]["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes


def named_port(container: Doc, port: str | int) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def test_collector_port_service_probes_and_readiness_gate(rendered: dict[str, list[Doc]], pg_url: str,
                                                          tmp_path: Path) -> None:
    objects = everything(rendered)
    collector = of_kind(objects, "Deployment")["driftloop-collector"]
    [container] = collector["spec"]["template"]["spec"]["containers"]
    _, ctx = driftloop(container["command"])
    port = ctx.params["port"]
    assert [p["containerPort"] for p in container["ports"]] == [port]
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert named_port(container, live["port"]) == named_port(container, ready["port"]) == port
    assert (live["path"], ready["path"]) == ("/healthz", "/readyz")
    service = of_kind(objects, "Service")["driftloop-collector"]
    [service_port] = service["spec"]["ports"]
    assert named_port(container, service_port["targetPort"]) == port
    # The same port and readiness path as docker-compose.yml's collector (which test_compose.py runs).
    compose = yaml_compose()
    assert driftloop(compose["collector"]["command"])[1].params["port"] == port
    assert compose["collector"]["healthcheck"]["test"][-1].endswith(ready["path"])
    from monitor.api.app import create_app

    # Migrated: live and ready. Unmigrated (the Job has not run yet): live, but not ready, so the Service sends it
    # nothing and the rollout waits, while its liveness keeps it from being restarted.
    with TestClient(create_app(Settings(database_url=pg_url))) as client:
        assert client.get(live["path"]).status_code == 200 and client.get(ready["path"]).status_code == 200
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))) as client:
        assert client.get(live["path"]).status_code == 200
        unready = client.get(ready["path"])
        assert unready.status_code == 503 and unready.json()["status"] == "unmigrated"


def test_model_server_port_service_and_probes_match_compose(rendered: dict[str, list[Doc]]) -> None:
    objects = everything(rendered)
    server = of_kind(objects, "Deployment")["driftloop-model-server"]
    [container] = server["spec"]["template"]["spec"]["containers"]
    cmd, ctx = driftloop(container["command"])
    port = ctx.params["port"]
    assert cmd.name == "serve-model" and ctx.params["host"] == "0.0.0.0"
    assert port == next(p.default for p in cmd.params if p.name == "port")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert named_port(container, get["port"]) == port and get["path"] == "/healthz", probe
    [service_port] = of_kind(objects, "Service")["driftloop-model-server"]["spec"]["ports"]
    assert named_port(container, service_port["targetPort"]) == port
    # The compose model server's health path is checked against the real app in test_compose.py.
    compose = yaml_compose()
    assert compose["model-server"]["healthcheck"]["test"][-1].endswith("/healthz")
    env = of_kind(objects, "ConfigMap")["driftloop-model-server"]["data"]
    collector = of_kind(objects, "Service")["driftloop-collector"]
    assert env["DRIFTLOOP_MODEL_SERVER_COLLECTOR_URL"] == (
        f"http://{collector['metadata']['name']}:{collector['spec']['ports'][0]['port']}")


def yaml_compose() -> dict[str, Any]:
    return load_compose(repo_root() / "docker-compose.yml", {
        "DRIFTLOOP_SECRET_KEY": "x" * 40, "POSTGRES_PASSWORD": "p", "GRAFANA_DB_PASSWORD": "p",
        "GRAFANA_ADMIN_PASSWORD": "p"})["services"]


def test_worker_probes_ping_their_own_node(rendered: dict[str, list[Doc]]) -> None:
    import shlex

    pinged = 0
    for name, doc in workloads(everything(rendered)):
        for container in containers(doc, init=False):
            cmd, ctx = driftloop(container["command"])
            if cmd.name != "worker":
                continue
            node = ctx.args[ctx.args.index("--hostname") + 1]
            probe = container["livenessProbe"]["exec"]["command"]
            assert probe[:2] == ["sh", "-c"], name  # $HOSTNAME needs a shell
            argv = shlex.split(probe[2])
            ping_cmd, ping = celery_cli(argv[argv.index("celery"):])
            assert ping_cmd.name == "inspect" and ping.params["command"] == "ping"
            # %h is the host name, which is $HOSTNAME (the pod's name) inside the container.
            assert ping.params["destination"] == [node.replace("%h", "$HOSTNAME")], name
            assert container["livenessProbe"]["timeoutSeconds"] > ping.params["timeout"], name
            pinged += 1
    assert pinged == 3  # default workers, and the gpu-queue workers of each overlay


def test_exactly_one_beat_and_its_probe_works(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    for name, docs in rendered.items():
        beats = [d for d in (d for _, d in workloads(docs)) for c in containers(d, init=False)
                 if driftloop(c["command"])[0].name == "beat"]
        if name.startswith("addons/"):
            assert beats == []
            continue
        [beat] = beats
        assert beat["kind"] == "Deployment" and beat["spec"]["replicas"] == 1
        assert beat["spec"]["strategy"] == {"type": "Recreate"}  # never two during a rollout
        targets = {d["spec"]["scaleTargetRef"]["name"] for d in docs
                   if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")}
        assert beat["metadata"]["name"] not in targets  # nothing scales it
    beat = of_kind(everything(rendered), "Deployment")["driftloop-beat"]
    [container] = beat["spec"]["template"]["spec"]["containers"]
    _, ctx = driftloop(container["command"])
    _, celery_ctx = celery_cli(celery_beat_argv(ctx.args))
    schedule = celery_ctx.params["schedule"]
    probe = container["livenessProbe"]["exec"]["command"]
    assert probe[:2] == ["python", "-c"] and f"{schedule}*" in probe[2]
    script = probe[2].replace(schedule, str(tmp_path / "celerybeat-schedule"))

    def probe_exit() -> int:
        return subprocess.run([sys.executable, "-c", script], check=False).returncode

    assert probe_exit() != 0  # no schedule file yet
    written = tmp_path / "celerybeat-schedule.db"
    written.write_bytes(b"x")
    assert probe_exit() == 0
    os.utime(written, (time.time() - 700, time.time() - 700))
    assert probe_exit() != 0  # beat stopped writing: restart it


def queues(docs: list[Doc]) -> dict[str, str]:
    """Deployment name → the one queue its workers consume."""
    out = {}
    for name, doc in workloads(docs):
        for container in containers(doc, init=False):
            cmd, ctx = driftloop(container["command"])
            if cmd.name == "worker":
                [queue] = ctx.params["queues"].split(",")  # one queue per Deployment: one list to scale on
                out[name] = queue
    return out


def test_every_queue_has_a_consumer_and_gpu_nodes_are_requested(rendered: dict[str, list[Doc]]) -> None:
    from monitor.pipeline.stages import stages
    from monitor.worker.app import celery_app

    needed = {"default"} | {s.queue for s in stages()} | {r["queue"] for r in celery_app.conf.task_routes.values()}
    assert "gpu" in needed
    for name in ("overlays/cpu", "overlays/nvidia"):
        assert set(queues(rendered[name]).values()) == needed, name
    gpu = dict(workloads(rendered["overlays/nvidia"]))["driftloop-gpu-worker"]["spec"]["template"]["spec"]
    [container] = gpu["containers"]
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] and {"key": "nvidia.com/gpu", "operator": "Exists",
                                    "effect": "NoSchedule"} in gpu["tolerations"]
    assert "nvidia.com/gpu" not in json.dumps(rendered["overlays/cpu"])  # schedulable on any node


def test_resources_disruption_budgets_and_selectors(rendered: dict[str, list[Doc]]) -> None:
    objects = everything(rendered)
    budgets = of_kind(objects, "PodDisruptionBudget")
    services = of_kind(objects, "Service")
    for name, doc in workloads(objects):
        for container in containers(doc):
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][part]), (name, container["name"], part)
            assert container["image"] == "driftloop:local", name  # one image, set once per entry point
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if doc["kind"] == "Deployment":
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
            if name != "driftloop-beat":  # one pod: a budget would block every drain
                selector = budgets[name]["spec"]["selector"]["matchLabels"]
                assert selector.items() <= labels.items() and "maxUnavailable" in budgets[name]["spec"], name
        if name in services:
            assert services[name]["spec"]["selector"].items() <= labels.items()
    # Replica counts owned by an autoscaler are left out, or every apply would reset them.
    autoscaled = {d["spec"]["scaleTargetRef"]["name"] for d in objects
                  if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")}
    assert autoscaled == {"driftloop-collector", "driftloop-worker", "driftloop-gpu-worker"}
    for name in autoscaled:
        assert "replicas" not in of_kind(objects, "Deployment")[name]["spec"], name
    hpa = of_kind(objects, "HorizontalPodAutoscaler")["driftloop-collector"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "driftloop-collector"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]


def test_keda_triggers_watch_the_lists_celery_fills(rendered: dict[str, list[Doc]], redis_url: str) -> None:
    from monitor.worker.app import make_celery

    objects = everything(rendered)
    settings_redis = make_url(of_kind(objects, "ConfigMap")["driftloop-settings"]["data"]["DRIFTLOOP_REDIS_URL"])
    consumers = {q for docs in rendered.values() for q in queues(docs).items()}
    watched = {}
    for name, scaled in of_kind(objects, "ScaledObject").items():
        [trigger] = scaled["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis"
        assert set(meta) <= REDIS_SCALER_PARAMS | {f"{p}FromEnv" for p in REDIS_SCALER_FROM_ENV}, set(meta)
        host, port = meta["address"].rsplit(":", 1)
        assert (host, int(port), meta["databaseIndex"]) == (
            settings_redis.host, settings_redis.port, settings_redis.database), name
        assert scaled["spec"]["minReplicaCount"] >= 1, name  # a busy worker leaves its list empty: never zero
        watched[scaled["spec"]["scaleTargetRef"]["name"]] = meta["listName"]
    assert set(watched.items()) == consumers
    # Send one task to each queue through Celery's Redis transport (a key prefix of our own keeps it apart) and
    # find it in the Redis list the trigger names.
    prefix = f"k8s-test-{uuid.uuid4().hex[:8]}:"
    app = make_celery()
    app.conf.update(broker_url=redis_url, broker_transport_options={"global_keyprefix": prefix})
    client = redis.Redis.from_url(redis_url)
    try:
        for list_name in set(watched.values()):
            app.send_task("driftloop.k8s_probe_never_consumed", queue=list_name)
            assert client.llen(prefix + list_name) == 1, list_name
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()
