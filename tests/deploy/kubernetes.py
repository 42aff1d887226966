"""Rendering deploy/kubernetes the way `kubectl kustomize` does, and validating what comes out offline: the
Kubernetes objects against the API's own JSON schemas (kubernetes-validate ships them for each release), KEDA's
ScaledObject against its CRD schema (tests/deploy/schemas/keda, Apache-2.0).

The renderer covers what the kustomizations here use (resources, namespace, images) and refuses anything else,
so a kustomization that grows a feature it does not know fails loudly instead of rendering wrong; where kubectl
is installed, a test compares the two renderings."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.support.services import repo_root

KUBERNETES = repo_root() / "deploy" / "kubernetes"
KEDA_SCHEMA = Path(__file__).parent / "schemas" / "keda" / "scaledobject-v1alpha1.json"
# The Kubernetes releases every manifest must be valid for: the oldest one supported here, and the newest whose
# schemas the installed kubernetes-validate ships (both stated in docs/kubernetes.md).
OLDEST_KUBERNETES = "1.30.0"
# Entry points: what a user applies (docs/kubernetes.md). The base alone leaves the `gpu` queue without consumers.
KUSTOMIZATIONS = ("overlays/cpu", "overlays/nvidia", "addons/model-server")
SUPPORTED_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
                  "CustomResourceDefinition", "PriorityClass"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

Doc = dict[str, Any]


def kubernetes_versions() -> tuple[str, ...]:
    return OLDEST_KUBERNETES, kubernetes_validate.latest_version()


def load_yaml_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render(directory: Path) -> list[Doc]:
    """The objects `kubectl kustomize directory` prints (in file order, not kustomize's kind order)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise ValueError(f"{directory}: the test renderer does not support {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        docs.extend(render(path) if path.is_dir() else load_yaml_docs(path))
    namespace = spec.get("namespace")
    for doc in docs:
        if namespace and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        for image in spec.get("images", []):
            for container in containers(doc):
                container["image"] = _retag(container["image"], image)
    ids = [object_id(d) for d in docs]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"{directory}: objects defined twice: {sorted(duplicated)}")
    return docs


def _retag(current: str, rule: dict[str, str]) -> str:
    name, _, tag = current.partition(":")
    if name != rule["name"]:
        return current
    new_name = rule.get("newName", name)
    new_tag = rule.get("newTag", tag)
    return f"{new_name}:{new_tag}" if new_tag else new_name


def object_id(doc: Doc) -> tuple[str, str, str, str]:
    meta = doc["metadata"]
    return doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"]


def pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] not in WORKLOADS:
        return None
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def containers(doc: Doc, *, init: bool = True) -> Iterator[Doc]:
    spec = pod_spec(doc)
    if spec is None:
        return
    yield from spec.get("initContainers", []) if init else []
    yield from spec["containers"]


def validate_kubernetes(doc: Doc, version: str) -> None:
    """kubernetes_validate.ValidationError unless `doc` is valid for that release; strict: unknown fields fail."""
    kubernetes_validate.validate(doc, version, strict=True)


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields made errors (the API server would prune them silently: a typo'd field
    would be dropped without a word), except where the CRD keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def keda_validator() -> jsonschema.protocols.Validator:
    crd = json.loads(KEDA_SCHEMA.read_text())
    schema = _strict(copy.deepcopy(crd["openAPIV3Schema"]))
    schema["properties"]["apiVersion"]["enum"] = [f"{crd['group']}/{crd['version']}"]
    schema["properties"]["kind"]["enum"] = [crd["kind"]]
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return jsonschema.Draft7Validator(schema)


def validate(doc: Doc, version: str) -> None:
    """Validate one object: KEDA's ScaledObject against the CRD schema, everything else against Kubernetes."""
    if doc["apiVersion"].startswith("keda.sh/"):
        keda_validator().validate(doc)
        assert doc["metadata"].get("name"), doc
    else:
        validate_kubernetes(doc, version)
