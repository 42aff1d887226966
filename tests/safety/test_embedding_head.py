"""The default toxicity scorer (a head over MiniLM vectors plus the lexical model): loads offline from the
package, agrees with itself on stored vs fresh vectors, and is fair to neutral identity mentions on held-out
public data (HateCheck templates never trained on), so production disparity does not report the scorer's own bias."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from monitor.safety import DEFAULT_TOXICITY_THRESHOLD, DisparityConfig, disparity_report, get_scorer
from monitor.safety.embedding_head import EmbeddingHeadScorer, HeadWeights
from monitor.safety.intervals import wilson_interval
from monitor.safety.toxicity import threshold_for

HATECHECK = Path(__file__).resolve().parents[2] / "bench" / "data" / "toxicity" / "hatecheck.csv"


@pytest.fixture(scope="module")
def head() -> EmbeddingHeadScorer:
    scorer = get_scorer("minilm-head")
    assert isinstance(scorer, EmbeddingHeadScorer)
    return scorer


@pytest.fixture(scope="module")
def neutral_mentions() -> list[dict[str, str]]:
    """HateCheck's neutral and positive statements about each of its 7 target groups, from the held-out half
    of its template families (the head never saw these templates)."""
    with HATECHECK.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f)
                if r["split"] == "test" and r["functionality"] in ("ident_neutral_nh", "ident_pos_nh")]


def test_loads_offline_from_the_package_with_its_calibrated_threshold(head: EmbeddingHeadScorer) -> None:
    assert head.name == "minilm-head" and threshold_for(head) == head.threshold == DEFAULT_TOXICITY_THRESHOLD
    low, high = head.weights.meta["threshold_ci95"]
    assert low <= head.threshold <= high
    scores = head.score(["Thank you, that fixed my printer.", "You are a worthless idiot and I hate you.", None])
    assert scores[0] < head.threshold <= scores[1] and np.isnan(scores[2])


@pytest.mark.slow
def test_an_installed_wheel_ships_the_head_and_scores_offline(tmp_path: Path) -> None:
    """Built with the project's build backend and imported from the unpacked wheel, not the checkout."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-c", "import sys; from hatchling.build import build_wheel; "
                            "print(build_wheel(sys.argv[1]))", str(out)],
                           cwd=root, capture_output=True, text=True, check=True).stdout.split()[-1]
    site = tmp_path / "site"
    with zipfile.ZipFile(out / built) as wheel:
        wheel.extractall(site)
    probe = ("import monitor, numpy as np; from monitor.safety import get_scorer; s = get_scorer(); "
             "v = np.zeros((1, 384), dtype=np.float32); v[0, 0] = 1.0; "
             "print(monitor.__file__, s.threshold, float(s.score_embedded(['hello there'], v)[0]))")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    where, threshold, score = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                                             capture_output=True, text=True, check=True).stdout.split()
    assert Path(where).is_relative_to(site) and float(threshold) == DEFAULT_TOXICITY_THRESHOLD
    assert 0.0 <= float(score) <= 1.0


def test_stored_vectors_and_fresh_embedding_give_the_same_scores(head: EmbeddingHeadScorer) -> None:
    from monitor.embeddings import get_embedder

    texts = ["Muslims are a cancer on this country.", "I'm a trans woman and I love hiking.", "ok"]
    stored = get_embedder(None).encode(texts).astype(np.float16)  # what the pipeline keeps per event
    assert np.allclose(head.score_embedded(texts, stored), head.score(texts), atol=1e-6)


def test_bad_input_is_refused(head: EmbeddingHeadScorer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one vector per text"):
        head.score_embedded(["a", "b"], np.zeros((1, 384)))
    with pytest.raises(ValueError, match="384"):
        head.score_embedded(["a"], np.zeros((1, 768)))
    w = head.weights
    foreign = HeadWeights(w.hidden, w.out_w, w.out_b, w.mean, w.scale, {**w.meta, "embedding_key": "other-model"})
    foreign.save(tmp_path / "head.npz")
    with pytest.raises(ValueError, match="other-model"):
        EmbeddingHeadScorer(tmp_path / "head.npz")


def test_false_flag_rate_on_neutral_identity_mentions_is_bounded_per_group(
    head: EmbeddingHeadScorer, neutral_mentions: list[dict[str, str]]
) -> None:
    """At most 5% of each group's neutral statements flagged; the lexical model flags some groups far more."""
    groups = sorted({r["target_ident"] for r in neutral_mentions})
    assert len(groups) == 7
    texts = [r["text"] for r in neutral_mentions]
    flagged = head.score(texts) >= head.threshold
    lexical = get_scorer("profanity").score(texts) >= threshold_for(get_scorer("profanity"))
    worst_lexical = 0.0
    for g in groups:
        m = np.array([r["target_ident"] == g for r in neutral_mentions])
        assert m.sum() >= 20
        assert flagged[m].mean() <= 0.05, (g, flagged[m].mean())
        # ...and with the interval, not just the point: the upper bound stays well under the lexical worst case.
        assert wilson_interval(int(flagged[m].sum()), int(m.sum()))[1] <= 0.25
        worst_lexical = max(worst_lexical, float(lexical[m].mean()))
    assert worst_lexical > 0.1  # the problem this scorer fixes is real on this very data


def test_disparity_does_not_fire_on_counterfactual_neutral_statements(
    head: EmbeddingHeadScorer, neutral_mentions: list[dict[str, str]]
) -> None:
    """The same neutral templates filled with each group's name, as if each group's users got them: the
    toxicity-rate disparity must not call the scorer's reaction to group names a gap between groups."""
    groups = [r["target_ident"] for r in neutral_mentions]
    toxic = (head.score([r["text"] for r in neutral_mentions]) >= head.threshold).astype(float)
    config = DisparityConfig(min_group_size=20, seed=1)
    assert not disparity_report(groups, toxic=toxic, config=config).get("toxicity_rate").is_flagged
    # The lexical scorer on the same statements does report a "gap" (it flags most neutral mentions of gay
    # people): the scorer's bias this test guards against.
    lexical = get_scorer("profanity")
    lex_flags = (lexical.score([r["text"] for r in neutral_mentions]) >= threshold_for(lexical)).astype(float)
    assert disparity_report(groups, toxic=lex_flags, config=config).get("toxicity_rate").is_flagged
