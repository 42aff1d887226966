from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.drift.explain import explain_drift


def _blobs(rng: np.random.Generator, centres: np.ndarray, counts: list[int]) -> np.ndarray:
    parts = [
        c + 0.05 * rng.standard_normal((k, centres.shape[1])) for c, k in zip(centres, counts, strict=True)
    ]
    return np.concatenate(parts).astype(np.float32)


def test_new_cluster_is_found_with_examples_from_it() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(5, 16, dtype=np.float32) * 3.0
    ref = _blobs(rng, centres[:4], [100, 100, 100, 100])
    cur = _blobs(rng, centres, [70, 70, 70, 70, 120])  # 30% from a fifth, new blob (rows 280-399)
    explanation = explain_drift(ref, cur, n_clusters=5, seed=0)
    top = explanation.clusters[0]
    assert top.share_reference == 0.0
    assert top.share_current == pytest.approx(0.3)
    assert top.n_current == 120 and top.lift > 100
    assert top.growth == pytest.approx(0.3)
    assert len(top.example_indices) == 5
    assert all(280 <= i < 400 for i in top.example_indices)
    assert explanation.total_variation == pytest.approx(0.3, abs=0.01)
    assert all(c.growth > 0 for c in explanation.clusters)
    json.dumps(explanation.to_dict())


def test_a_cluster_that_grew_by_chance_is_not_reported_beside_the_real_shift() -> None:
    rng = np.random.default_rng(4)
    centres = np.eye(5, 16, dtype=np.float32) * 3.0
    ref = _blobs(rng, centres[:4], [100, 100, 100, 100])
    # The fourth blob grows from 25% to 27.5% (z ~ 0.8, noise); the fifth is new (30%).
    cur = _blobs(rng, centres, [50, 60, 60, 110, 120])
    explanation = explain_drift(ref, cur, n_clusters=5, seed=0)
    assert [c.n_current for c in explanation.clusters] == [120]
    # With the noise filter off, the chance grower is listed second.
    loose = explain_drift(ref, cur, n_clusters=5, seed=0, min_z=float("-inf"))
    assert [c.n_current for c in loose.clusters] == [120, 110]


def test_examples_are_closest_to_the_centre_first() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(3, 8, dtype=np.float32) * 3.0
    ref = _blobs(rng, centres[:2], [200, 200])
    cur = _blobs(rng, centres, [100, 100, 100])
    explanation = explain_drift(ref, cur, n_clusters=3, seed=0, n_examples=10)
    idx = np.array(explanation.clusters[0].example_indices)
    centre = cur[200:300].mean(axis=0)
    dists = np.linalg.norm(cur[idx] - centre, axis=1)
    assert np.all(np.diff(dists) >= -0.02)  # sorted by distance (k-means centre ~ blob mean)


def test_deterministic_and_quiet_data_moves_little() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    first = explain_drift(ref, cur, seed=3)
    assert first == explain_drift(ref, cur, seed=3)
    assert first.total_variation < 0.15
    assert first.n_clusters == 12


def test_small_windows_get_fewer_clusters_and_bad_input_is_refused() -> None:
    rng = np.random.default_rng(3)
    small = explain_drift(rng.standard_normal((30, 4)), rng.standard_normal((30, 4)) + 2, seed=0)
    assert small.n_clusters == 6
    with pytest.raises(ValueError, match="n_clusters"):
        explain_drift(rng.standard_normal((30, 4)), rng.standard_normal((30, 4)), n_clusters=1)


def test_examples_of_a_mixed_cluster_come_from_its_new_part_and_are_distinct() -> None:
    rng = np.random.default_rng(5)
    known, far = np.eye(3, 16, dtype=np.float32)[0] * 3.0, np.eye(3, 16, dtype=np.float32)[1] * 3.0
    new = known + np.eye(3, 16, dtype=np.float32)[2] * 0.4  # beside the known topic: one k-means cluster with it
    ref = _blobs(rng, np.stack([known, far]), [200, 200])
    cur = _blobs(rng, np.stack([known, far, new]), [100, 100, 100])  # rows 200-299: the new topic
    cur[201] = cur[200]  # an exact repeat is shown once
    explanation = explain_drift(ref, cur, n_clusters=2, seed=0)
    top = explanation.clusters[0]
    assert top.n_reference == 200 and top.n_current == 200  # the known topic and the new one, together
    # The centroid sits nearer the known topic (300 of its rows against 100), yet every example is new.
    assert len(top.example_indices) == 5 and all(200 <= i < 300 for i in top.example_indices)
    assert not {200, 201} <= set(top.example_indices)
    centre = np.concatenate([ref[:200], cur[:100], cur[200:]]).mean(axis=0)
    nearest_old_rule = np.argsort(np.linalg.norm(cur[:100] - centre, axis=1))[:1]
    nearest_new = np.min(np.linalg.norm(cur[200:300] - centre, axis=1))
    assert np.linalg.norm(cur[nearest_old_rule[0]] - centre) < nearest_new  # the old rule would show known rows
