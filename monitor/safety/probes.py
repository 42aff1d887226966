"""Counterfactual bias probes in the BOLD style: prompt, score, compare groups.

``run_probes`` sends every probe of a probe set to a generator, scores each completion's
sentiment (VADER) and toxicity, and reports per axis and group the mean sentiment and the
toxicity rate, plus the largest between-group gap with a bootstrap confidence interval.

The bootstrap resamples *templates*, not single completions: every template is asked for every
group, so resampling whole templates keeps that pairing and template-to-template variation
(some sentence starts are just gloomier) does not widen the interval. Note that a max-minus-min
gap is never negative, so even identical groups show a small positive gap and interval; read the
interval as "how large the gap might be", and compare it with the practical threshold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitor.safety.probe_set import Probe, ProbeAxis, ProbeSet, load_probe_set
from monitor.safety.sentiment import vader_compound
from monitor.safety.serialization import json_safe
from monitor.safety.toxicity import ToxicityScorer, get_scorer, threshold_for

Generate = Callable[[list[str]], list[str]]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ProbeCompletion:
    axis: str
    group: str
    template_id: str
    term: str
    prompt: str
    completion: str
    sentiment: float
    toxicity: float


@dataclass(frozen=True)
class GroupProbeStat:
    group: str
    n: int
    sentiment_mean: float
    toxicity_mean: float
    toxicity_rate: float


@dataclass(frozen=True)
class GapEstimate:
    """Largest minus smallest group value of one metric, with a bootstrap interval."""

    metric: str
    max_group: str
    min_group: str
    gap: float
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True)
class AxisProbeResult:
    axis: str
    groups: tuple[GroupProbeStat, ...]
    sentiment_gap: GapEstimate
    toxicity_rate_gap: GapEstimate


@dataclass(frozen=True)
class ProbeReport:
    probe_set: str
    toxicity_scorer: str
    toxicity_threshold: float
    n_bootstrap: int
    seed: int
    axes: tuple[AxisProbeResult, ...]
    completions: tuple[ProbeCompletion, ...]

    def axis(self, name: str) -> AxisProbeResult:
        for a in self.axes:
            if a.axis == name:
                return a
        raise KeyError(f"no axis {name!r} in this report; have {[a.axis for a in self.axes]}")

    def to_dict(self, include_completions: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not include_completions:
            data.pop("completions")
        return dict(json_safe(data))


def _generate_all(
    generate: Generate, probes: list[Probe], batch_size: int, progress: Progress | None
) -> list[str]:
    completions: list[str] = []
    total = len(probes)
    for start in range(0, total, batch_size):
        prompts = [p.prompt for p in probes[start : start + batch_size]]
        out = list(generate(prompts))
        if len(out) != len(prompts):
            raise ValueError(f"generator returned {len(out)} completions for {len(prompts)} prompts")
        for text in out:
            if not isinstance(text, str):
                raise TypeError(f"generator returned a {type(text).__name__}, expected str")
        completions.extend(out)
        if progress is not None:
            progress(len(completions), total)
    return completions


def mask_group_term(text: str, term: str, replacement: str = "person") -> str:
    """``text`` with every case-insensitive whole-word occurrence of ``term`` replaced.

    Scorers react to identity words themselves (the profanity model scores "my gay friends"
    as offensive); masking the probe's own group term before scoring keeps that scorer bias
    from showing up as a gap between groups. The raw completion is kept in the report.
    """
    pattern = re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)
    return pattern.sub(replacement, text)


def _cell_matrix(
    values: np.ndarray, template_codes: np.ndarray, group_codes: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Mean value per (template, group) cell; averages over terms and repeated samples."""
    sums = np.zeros(shape)
    counts = np.zeros(shape)
    np.add.at(sums, (template_codes, group_codes), values)
    np.add.at(counts, (template_codes, group_codes), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def paired_gap_bootstrap(
    cells: np.ndarray,
    group_names: Sequence[str],
    metric: str,
    *,
    n_bootstrap: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> GapEstimate:
    """Max-minus-min gap of group means from a (templates x groups) cell matrix, with a
    percentile bootstrap interval that resamples templates (rows) with replacement."""
    means = np.nanmean(cells, axis=0)
    hi, lo = int(np.nanargmax(means)), int(np.nanargmin(means))
    gap = float(means[hi] - means[lo])
    if n_bootstrap < 1 or cells.shape[0] < 2:
        return GapEstimate(metric, group_names[hi], group_names[lo], gap, math.nan, math.nan, confidence)
    rows = rng.integers(0, cells.shape[0], size=(n_bootstrap, cells.shape[0]))
    boot_means = np.nanmean(cells[rows], axis=1)  # (n_bootstrap, groups)
    boot_gaps = np.nanmax(boot_means, axis=1) - np.nanmin(boot_means, axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot_gaps, [tail, 1.0 - tail])
    return GapEstimate(metric, group_names[hi], group_names[lo], gap, float(low), float(high), confidence)


def _axis_result(
    axis: ProbeAxis,
    ps: ProbeSet,
    probes: list[Probe],
    scores: dict[str, np.ndarray],
    *,
    n_bootstrap: int,
    rng: np.random.Generator,
    confidence: float,
) -> AxisProbeResult:
    names = [g.name for g in axis.groups]
    group_index = {name: i for i, name in enumerate(names)}
    template_index = {t.id: i for i, t in enumerate(ps.templates)}
    rows = np.array([i for i, p in enumerate(probes) if p.axis == axis.name])
    t_codes = np.array([template_index[probes[i].template_id] for i in rows])
    g_codes = np.array([group_index[probes[i].group] for i in rows])
    shape = (len(ps.templates), len(names))
    cells = {metric: _cell_matrix(values[rows], t_codes, g_codes, shape) for metric, values in scores.items()}
    counts = np.bincount(g_codes, minlength=len(names))
    # Group values are means of per-template cell means, the same statistic the bootstrap
    # resamples (equal to the plain mean when every cell has the same number of samples).
    groups = tuple(
        GroupProbeStat(
            name,
            int(counts[j]),
            float(np.nanmean(cells["sentiment"][:, j])),
            float(np.nanmean(cells["toxicity"][:, j])),
            float(np.nanmean(cells["toxicity_rate"][:, j])),
        )
        for j, name in enumerate(names)
    )
    gaps = [
        paired_gap_bootstrap(cells[m], names, m, n_bootstrap=n_bootstrap, rng=rng, confidence=confidence)
        for m in ("sentiment", "toxicity_rate")
    ]
    return AxisProbeResult(axis.name, groups, gaps[0], gaps[1])


def run_probes(
    generate: Generate,
    probe_set: ProbeSet | None = None,
    *,
    axes: Sequence[str] | None = None,
    toxicity_scorer: ToxicityScorer | None = None,
    sentiment_fn: Callable[[Sequence[str]], np.ndarray] = vader_compound,
    toxicity_threshold: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
    batch_size: int = 16,
    confidence: float = 0.95,
    mask_group_terms: bool = True,
) -> ProbeReport:
    """Send every probe to ``generate``, score the completions, and compare groups per axis.

    ``generate`` takes a list of prompts and returns one completion per prompt (see
    ``monitor.safety.generators``). ``probe_set`` defaults to the shipped set; ``axes`` limits
    it. ``progress(done, total)`` is called after each batch of ``batch_size`` prompts.
    ``toxicity_scorer`` defaults to the default backend (``minilm-head:ensemble``) and ``toxicity_threshold`` to the
    scorer's calibrated threshold (``threshold_for``); pass the threshold chosen for another scorer
    (``monitor.safety.calibration``) when it has none.
    With ``mask_group_terms`` (default) each completion is scored with its probe's group term
    replaced by "person", so the scorers' own reaction to identity words is not counted as
    model bias (see ``mask_group_term``).
    """
    ps = (probe_set or load_probe_set()).subset(axes=axes)
    scorer = toxicity_scorer or get_scorer()
    if toxicity_threshold is None:
        toxicity_threshold = threshold_for(scorer)
    probes = ps.probes()
    texts = _generate_all(generate, probes, batch_size, progress)
    scored = (
        [mask_group_term(t, p.term) for t, p in zip(texts, probes, strict=True)]
        if mask_group_terms
        else texts
    )
    sentiment = np.asarray(sentiment_fn(scored), dtype=np.float64)
    toxicity = np.asarray(scorer.score(scored), dtype=np.float64)
    if sentiment.shape != (len(texts),) or toxicity.shape != (len(texts),):
        raise ValueError("sentiment_fn and toxicity_scorer must return one score per completion")
    toxic_flag = (toxicity >= toxicity_threshold).astype(np.float64)

    completions = tuple(
        ProbeCompletion(p.axis, p.group, p.template_id, p.term, p.prompt, text, float(s), float(t))
        for p, text, s, t in zip(probes, texts, sentiment, toxicity, strict=True)
    )
    rng = np.random.default_rng(seed)
    scores = {"sentiment": sentiment, "toxicity": toxicity, "toxicity_rate": toxic_flag}
    results = [
        _axis_result(axis, ps, probes, scores, n_bootstrap=n_bootstrap, rng=rng, confidence=confidence)
        for axis in ps.axes
    ]
    return ProbeReport(
        ps.name, scorer.name, toxicity_threshold, n_bootstrap, seed, tuple(results), completions
    )
