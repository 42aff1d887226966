"""Scoring one model (the base plus an optional adapter) for the gate: the numbers `retrain.evaluation.gates` compares.

- loss / perplexity: mean response-token NLL of the accepted answers of the held-out split;
- toxicity rate: share of the model's own answers scored toxic, over the held-out prompts and the bias probes,
  with the per-prompt flags the gate pairs across models;
- bias: the BOLD-style probes' per-template sentiment cells (templates x groups per axis; all ten templates of
  the gender, religion and race/ethnicity axes by default) that the bias gate compares, their disparity (the
  unbiased mean squared between-group gap, `gate_stats.disparity`) and, for reading, the largest gap;
- similarity: mean embedding cosine between its answers and the corrected answers users supplied;
- the project's own evaluators that read answers (refusal, relevance, degenerate, ...: monitor/evaluators), run
  on its answers to the held-out prompts: shown beside the gates, not gated on.

Champion and challenger go through the same function with the same inputs, so their numbers compare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.evaluators.base import EvalItem, Evaluator
from monitor.llm import LoadedLM, generate_chat, sequence_nll
from monitor.safety.probe_set import ProbeSet, load_probe_set
from monitor.safety.probes import ProbeReport
from monitor.safety.toxicity import ToxicityScorer, get_scorer, threshold_for
from retrain.dataset.builder import Example
from retrain.evaluation.gate_stats import disparity
from retrain.evaluation.gates import ModelScores
from retrain.jobs.config import EvalOptions

Embed = Callable[[list[str]], np.ndarray]  # L2-normalised rows
Progress = Callable[[str, int, int], None]  # (part, done, total)


@dataclass(frozen=True)
class Evaluators:
    toxicity: ToxicityScorer
    toxicity_threshold: float
    embed: Embed | None
    probe_set: ProbeSet | None  # None: no bias probes
    quality: tuple[Evaluator, ...] = ()  # the project's evaluators of answers (`quality_evaluators`)


@dataclass(frozen=True)
class ModelEvaluation:
    scores: ModelScores
    details: dict[str, Any] = field(default_factory=dict)


def probe_subset(options: EvalOptions) -> ProbeSet | None:
    """The gate's probe set: the configured axes, first N templates (None when probes are switched off)."""
    if not options.probe_axes or options.probe_templates < 1:
        return None
    full = load_probe_set()
    ids = [t.id for t in full.templates][: options.probe_templates]
    return full.subset(axes=list(options.probe_axes), templates=ids)


def default_evaluators(options: EvalOptions, *, embedding_model: str | None = None, device: str = "auto",
                       quality: tuple[Evaluator, ...] = ()) -> Evaluators:
    from monitor.embeddings import get_embedder

    def embed(texts: list[str]) -> np.ndarray:
        return get_embedder(embedding_model, device=device).encode(texts)

    scorer = get_scorer(options.toxicity_scorer)
    threshold = threshold_for(scorer) if options.toxicity_threshold is None else options.toxicity_threshold
    return Evaluators(scorer, threshold,
                      embed if options.similarity else None,
                      probe_subset(options), quality)


def quality_evaluators(project_config: dict[str, Any] | None, settings: Any) -> tuple[Evaluator, ...]:
    """The project's enabled evaluators that score answers, built as its window stage builds them. The LLM judge
    is left out (it spends the project's token budget and needs its endpoint), as are evaluators of prompts
    only (both models answer the same prompts); a spec that cannot be built is left out too."""
    from monitor.evaluators.registry import build
    from monitor.pipeline.config import EvaluatorSpec

    out: list[Evaluator] = []
    for raw in (project_config or {}).get("evaluators") or []:
        try:
            spec = EvaluatorSpec.model_validate(raw)
            if not spec.enabled or spec.kind == "judge":
                continue
            evaluator = build(spec, settings)
        except ValueError:  # pydantic's ValidationError included
            continue
        if "response" in evaluator.fields:
            out.append(evaluator)
    return tuple(out)


def score_answers(evaluators: Sequence[Evaluator], prompts: Sequence[str], answers: Sequence[str],
                  references: Sequence[str | None]) -> dict[str, dict[str, Any]]:
    """Each evaluator's mean score and flagged share over one model's answers (an evaluator that fails says
    why instead; it never fails the job)."""
    items = [EvalItem(event_id=i, prompt=p, response=a, context=None, reference=r, prompt_vec=None,
                      response_vec=None) for i, (p, a, r) in enumerate(zip(prompts, answers, references, strict=True))]
    out: dict[str, dict[str, Any]] = {}
    for ev in evaluators:
        try:
            results = ev.evaluate(items) if items else []
        except Exception as exc:  # a broken evaluator is a missing row on the page, not a failed retraining
            out[ev.name] = {"version": ev.version, "error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        values = [r.value for r in results if r.value is not None]
        labels = [bool(r.label) for r in results if r.label is not None]
        out[ev.name] = {"version": ev.version, "n": len(values), "good_when_high": ev.good_when_high,
                        "mean": float(np.mean(values)) if values else None,
                        "rate": float(np.mean(labels)) if labels else None}
    return out


def _mean_nll(lm: LoadedLM, examples: Sequence[Example], adapter: str | Path | None, options: EvalOptions,
              max_length: int) -> tuple[float | None, int]:
    if not examples:
        return None, 0
    scored = sequence_nll(lm, [(e.prompt, e.response) for e in examples], adapter=adapter,
                          batch_size=options.batch_size, max_length=max_length)
    tokens = sum(n for _, n in scored)
    return (sum(s for s, _ in scored) / tokens if tokens else None), tokens


def _similarity(embed: Embed | None, answers: Sequence[str], references: Sequence[str]) -> float | None:
    if embed is None or not answers:
        return None
    a, b = embed(list(answers)), embed(list(references))
    return float(np.mean(np.sum(a * b, axis=1)))


def sentiment_cells(report: ProbeReport, probe_set: ProbeSet) -> dict[str, list[list[float]]]:
    """Per axis, a templates x groups matrix of mean completion sentiment (the bias gate's paired units)."""
    t_index = {t.id: i for i, t in enumerate(probe_set.templates)}
    out: dict[str, list[list[float]]] = {}
    for axis in probe_set.axes:
        g_index = {g.name: j for j, g in enumerate(axis.groups)}
        sums = np.zeros((len(t_index), len(g_index)))
        counts = np.zeros_like(sums)
        for c in report.completions:
            if c.axis == axis.name:
                sums[t_index[c.template_id], g_index[c.group]] += c.sentiment
                counts[t_index[c.template_id], g_index[c.group]] += 1
        out[axis.name] = np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0).tolist()
    return out


def _axis_disparity(matrix: list[list[float]]) -> float | None:
    m = np.asarray(matrix, dtype=np.float64)
    m = m[np.isfinite(m).all(axis=1)] if m.ndim == 2 else m
    return disparity(m) if m.ndim == 2 and m.shape[0] >= 2 and m.shape[1] >= 2 else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _bias(lm: LoadedLM, adapter: str | Path | None, evaluators: Evaluators,
          options: EvalOptions, seed: int) -> tuple[float | None, dict[str, list[list[float]]] | None, list[int],
                                                    dict[str, Any]]:
    """(max sentiment gap, per-template cells, one toxic flag per probe completion, details)."""
    if evaluators.probe_set is None:
        return None, None, [], {}
    from monitor.safety.probes import run_probes

    def generate(prompts: list[str]) -> list[str]:
        return generate_chat(lm, prompts, max_new_tokens=options.max_new_tokens, adapter=adapter,
                             batch_size=options.batch_size)

    report = run_probes(generate, evaluators.probe_set, toxicity_scorer=evaluators.toxicity,
                        toxicity_threshold=evaluators.toxicity_threshold, n_bootstrap=options.n_bootstrap,
                        seed=seed, batch_size=options.batch_size)
    axes = {a.axis: {"sentiment_gap": a.sentiment_gap.gap, "sentiment_gap_ci": [a.sentiment_gap.ci_low,
                                                                                  a.sentiment_gap.ci_high],
                     "toxicity_rate_gap": a.toxicity_rate_gap.gap,
                     "max_group": a.sentiment_gap.max_group, "min_group": a.sentiment_gap.min_group}
            for a in report.axes}
    gap = max((a.sentiment_gap.gap for a in report.axes), default=None)
    cells = sentiment_cells(report, evaluators.probe_set)
    disparities = {axis: _axis_disparity(m) for axis, m in cells.items()}
    for axis, value in disparities.items():
        axes[axis]["disparity"] = value
    flags = [int(c.toxicity >= evaluators.toxicity_threshold) for c in report.completions]
    return gap, cells, flags, {"disparity": _mean([v for v in disparities.values() if v is not None]),
                               "probe_set": report.probe_set, "n_probes": len(report.completions),
                               "n_templates": len(evaluators.probe_set.templates), "axes": axes}


def evaluate_model(
    lm: LoadedLM, adapter: str | Path | None, held_out: Sequence[Example], options: EvalOptions,
    evaluators: Evaluators, *, max_length: int = 512, seed: int = 0, progress: Progress | None = None,
) -> ModelEvaluation:
    """Every number of one model on the held-out split and the probes (see the module docstring)."""
    def step(part: str, done: int) -> None:
        if progress is not None:
            progress(part, done, 4)

    nll, tokens = _mean_nll(lm, held_out, adapter, options, max_length)
    step("loss", 1)
    asked = list(held_out[: options.max_examples])
    answers = (generate_chat(lm, [e.prompt for e in asked], max_new_tokens=options.max_new_tokens,
                             adapter=adapter, batch_size=options.batch_size) if asked else [])
    toxic = np.asarray(evaluators.toxicity.score(answers), dtype=float) if answers else np.zeros(0)
    step("answers", 2)
    corrected = [(a, e.response) for a, e in zip(answers, asked, strict=True) if e.source == "corrected"]
    similarity = _similarity(evaluators.embed, [a for a, _ in corrected], [r for _, r in corrected])
    similarity_all = _similarity(evaluators.embed, answers, [e.response for e in asked])
    step("similarity", 3)
    quality = score_answers(evaluators.quality, [e.prompt for e in asked], answers,
                            [e.response if e.source == "corrected" else None for e in asked])
    bias_gap, cells, probe_flags, bias = _bias(lm, adapter, evaluators, options, seed)
    step("bias", 4)
    # The toxicity gate's paired units: every prompt both models answer, held-out prompts then probes (the
    # same list in the same order for champion and challenger), so a few held-out prompts still give it power.
    flags = [int(t >= evaluators.toxicity_threshold) for t in toxic] + probe_flags
    scores = ModelScores(eval_nll=nll, eval_tokens=tokens, toxicity_rate=float(np.mean(flags)) if flags else None,
                         n_generated=len(flags), bias_gap=bias_gap, similarity=similarity,
                         n_similarity=len(corrected), toxic_flags=tuple(flags) if flags else None, bias_cells=cells,
                         bias_disparity=bias.get("disparity"))
    samples = [{"prompt": e.prompt, "reference": e.response, "answer": a, "toxicity": float(t),
                "event_id": getattr(e, "event_id", None)}
               for e, a, t in list(zip(asked, answers, toxic, strict=True))[:5]]
    return ModelEvaluation(scores, {"similarity_to_accepted": similarity_all, "bias": bias, "samples": samples,
                                    "toxicity_threshold": evaluators.toxicity_threshold, "evaluators": quality})
