from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from monitor.drift import DriftResult, available, get_detector, get_spec, registry
from monitor.drift.registry import register


def _result(**overrides: object) -> DriftResult:
    fields: dict[str, object] = {
        "method": "x",
        "statistic": 0.5,
        "p_value": 0.01,
        "threshold": 0.05,
        "is_drift": True,
        "effect_size": 0.2,
        "n_reference": 10,
        "n_current": 12,
        "details": {},
    }
    fields.update(overrides)
    return DriftResult(**fields)  # type: ignore[arg-type]


def test_result_is_frozen() -> None:
    result = _result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.is_drift = False  # type: ignore[misc]


def test_to_dict_is_plain_json_with_numpy_and_nonfinite_values() -> None:
    result = _result(
        statistic=np.float32(0.25),
        p_value=None,
        effect_size=float("nan"),
        details={"arr": np.array([1.0, 2.0]), "n": np.int64(3), "inf": float("inf"), "t": (1, 2)},
    )
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict)) == {
        "method": "x",
        "statistic": 0.25,
        "p_value": None,
        "threshold": 0.05,
        "is_drift": True,
        "effect_size": None,
        "n_reference": 10,
        "n_current": 12,
        "details": {"arr": [1.0, 2.0], "n": 3, "inf": None, "t": [1, 2]},
    }


def test_available_lists_builtins_by_kind() -> None:
    assert available("scalar") == ("ks", "psi")
    embedding = available("embedding")
    for name in (
        "mmd",
        "classifier",
        "evidently_model",
        "evidently_ratio",
        "evidently_distance",
        "evidently_mmd",
    ):
        assert name in embedding
    assert set(available()) == set(embedding) | {"ks", "psi"}
    assert get_spec("mmd").kind == "embedding" and get_spec("ks").kind == "scalar"


def test_unknown_detector_error_lists_known_names() -> None:
    with pytest.raises(KeyError) as info:
        get_detector("wasserstein-ish")
    message = str(info.value)
    assert "wasserstein-ish" in message and "mmd" in message and "psi" in message


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        available("image")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        register("x", kind="image")  # type: ignore[arg-type]


def test_register_and_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    available()  # the built-ins are imported on first lookup: load them before copying the table
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("always_quiet", kind="scalar")
    def always_quiet(
        reference: np.ndarray, current: np.ndarray, *, alpha: float = 0.01, seed: int | None = None
    ) -> DriftResult:
        """Never drifts (test double)."""
        return _result(method="always_quiet", is_drift=False)

    assert get_detector("always_quiet") is always_quiet
    assert get_spec("always_quiet").description == "Never drifts (test double)."
    assert "always_quiet" in available("scalar")
    register("always_quiet", kind="scalar")(always_quiet)  # same function again: allowed

    def impostor(reference: np.ndarray, current: np.ndarray, **_: object) -> DriftResult:
        return _result()

    with pytest.raises(ValueError, match="already registered"):
        register("always_quiet", kind="scalar")(impostor)


@pytest.mark.parametrize("name", ["mmd", "classifier"])
def test_embedding_detectors_share_the_common_signature(name: str) -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((40, 8)).astype(np.float32)
    cur = rng.standard_normal((50, 8)).astype(np.float32) + 3.0
    result = get_detector(name)(ref, cur, alpha=0.05, seed=1)
    assert isinstance(result, DriftResult)
    assert result.method == name
    assert (result.n_reference, result.n_current) == (40, 50)
    assert result.threshold == 0.05
    assert result.is_drift


@pytest.mark.parametrize("name", ["ks", "psi"])
def test_scalar_detectors_share_the_common_signature(name: str) -> None:
    rng = np.random.default_rng(0)
    result = get_detector(name)(rng.normal(size=300), rng.normal(3.0, size=400), alpha=0.05, seed=1)
    assert result.method == name
    assert (result.n_reference, result.n_current) == (300, 400)
    assert result.is_drift
