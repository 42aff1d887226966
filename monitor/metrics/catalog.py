"""The catalog of every metric driftloop computes, by name: an explicit table, not a registry filled by
imports. Alert rules, the read API and dashboards refer to these names.

A metric row carries `value` (the headline number), and where it applies `p_value`, `threshold` and
`flagged` (the detector's own verdict), so a rule can test any of them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from monitor.pipeline.config import ProjectConfig

Kind = Literal["ops", "feedback", "drift", "safety", "bias", "eval"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    description: str
    unit: str = ""


EMBEDDING_FIELDS = ("prompt", "response")
SCALAR_SERIES = ("prompt_length", "response_length", "latency_ms", "completion_tokens")
SCALAR_METHODS = ("ks", "psi")  # the drift stage's detectors of scalar series
TOXICITY_FIELDS = ("prompt", "response")
BIAS_METRICS = ("toxicity_rate", "sentiment", "negative_feedback_rate")  # gaps the safety stage computes
PROBE_METRICS = ("sentiment", "toxicity_rate")  # gaps the counterfactual probe job computes, per axis
OPS_METRICS = (
    ("ops.volume", "Events in the window", "events"),
    ("ops.error_rate", "Share of events with an error", "ratio"),
    ("ops.latency_p50", "Median latency", "ms"),
    ("ops.latency_p95", "95th percentile latency", "ms"),
    ("ops.latency_p99", "99th percentile latency", "ms"),
    ("ops.prompt_tokens_mean", "Mean prompt tokens", "tokens"),
    ("ops.completion_tokens_mean", "Mean completion tokens", "tokens"),
    ("ops.tokens_total", "Prompt plus completion tokens", "tokens"),
)


# Per evaluator (monitor/pipeline/stages/evaluators.py). Evaluator names are the project's own, so these names are
# a family: `eval.<name>.<stat>` for any valid evaluator name; the catalog lists the built-in kinds' default names.
EVAL_STATS = (
    ("mean", "Mean score of evaluator {name} over the sampled events", "score"),
    ("rate", "Share of sampled events evaluator {name} labels (score at or above its threshold)", "ratio"),
    ("coverage", "Share of sampled events evaluator {name} scored (low when it fails or cannot score)", "ratio"),
    ("agreement", "ROC AUC of evaluator {name} against users' thumbs and corrections (flagged: dropped "
     "significantly vs its baseline)", "auc"),
)
_EVAL_NAME = re.compile(r"^eval\.([a-z][a-z0-9_]{0,47})\.([a-z_]+)$")


def eval_metric(name: str) -> MetricSpec | None:
    """The spec of `eval.<evaluator>.<stat>`, or None when `name` is not of that shape."""
    m = _EVAL_NAME.match(name)
    if not m:
        return None
    for stat, desc, unit in EVAL_STATS:
        if stat == m.group(2):
            return MetricSpec(name, "eval", desc.format(name=m.group(1)), unit)
    return None


def evaluator_kinds() -> list[str]:
    from monitor.evaluators.registry import BUILTINS

    return list(BUILTINS)


def drift_metric_name(series: str, method: str) -> str:
    return f"drift.{series}.{method}"


def _specs() -> list[MetricSpec]:
    # Built from the tables that decide what is computed: the drift detectors, the safety fields, the probe
    # set's axes. Imported here, on first use: the drift detectors pull in the numeric stack.
    from monitor.drift.registry import available
    from monitor.safety import load_probe_set

    specs = [MetricSpec(name, "ops", desc, unit) for name, desc, unit in OPS_METRICS]
    specs += [MetricSpec("feedback.positive_rate", "feedback", "Share of feedback that is positive", "ratio"),
              MetricSpec("feedback.count", "feedback", "Feedback items on the window's events", "items")]
    specs += [MetricSpec(drift_metric_name(f, m), "drift", f"{m} drift of {f} embeddings vs the reference",
                         "statistic") for f in EMBEDDING_FIELDS for m in available("embedding")]
    specs.append(MetricSpec(drift_metric_name("embeddings", "onset"), "drift", "knn drift of the embedded fields "
                            "(combined) vs the trailing hours (segment all; drift_onset_seconds): a sudden onset the "
                            "reference rows' daily-cycle λ hides", "score"))
    specs += [MetricSpec(drift_metric_name(s, m), "drift", f"{m} drift of {s} vs the reference", "statistic")
              for s in SCALAR_SERIES for m in SCALAR_METHODS]
    for f in TOXICITY_FIELDS:
        specs += [MetricSpec(f"safety.toxicity_rate.{f}", "safety",
                             f"Share of {f}s at or above the toxicity threshold", "ratio"),
                  MetricSpec(f"safety.toxicity_mean.{f}", "safety", f"Mean toxicity score of {f}s", "score"),
                  MetricSpec(f"safety.profanity_rate.{f}", "safety",
                             f"Share of {f}s the lexical abuse model flags (insults, profanity; identity terms "
                             "masked): rudeness the toxicity scorer leaves out", "ratio")]
    specs.append(MetricSpec("safety.sentiment_mean.response", "safety", "Mean VADER compound of responses", "score"))
    specs += [MetricSpec(f"bias.{m}.gap", "bias",
                         f"Largest gap in {m.replace('_', ' ')} between groups of the bias attribute", "gap")
              for m in BIAS_METRICS]
    specs += [MetricSpec(f"bias.probe.{axis}.{m}_gap", "bias",
                         f"Counterfactual probe gap in {m.replace('_', ' ')} across {axis} groups", "gap")
              for axis in load_probe_set().axis_names for m in PROBE_METRICS]
    specs += [spec for kind in evaluator_kinds() for stat, _, _ in EVAL_STATS
              if (spec := eval_metric(f"eval.{kind}.{stat}")) is not None]
    return specs


@functools.cache
def catalog() -> dict[str, MetricSpec]:
    """Every metric by name (built once per process)."""
    out: dict[str, MetricSpec] = {}
    for spec in _specs():
        if out.setdefault(spec.name, spec) != spec:
            raise ValueError(f"metric {spec.name!r} is defined twice, differently")
    return out


def get_metric(name: str) -> MetricSpec:
    try:
        return catalog()[name]
    except KeyError:
        spec = eval_metric(name)  # an evaluator the project named itself
        if spec is not None:
            return spec
        known = ", ".join(sorted(catalog())[:40])
        raise KeyError(f"unknown metric {name!r}; known metrics include: {known}") from None


def all_metrics() -> list[MetricSpec]:
    return sorted(catalog().values(), key=lambda s: s.name)


@dataclass(frozen=True)
class ProjectMetric:
    """A catalog entry as one project sees it: whether its configuration computes it, and why not."""

    spec: MetricSpec
    computed: bool
    note: str

    def as_dict(self) -> dict[str, object]:
        s = self.spec
        return {"name": s.name, "kind": s.kind, "description": s.description, "unit": s.unit,
                "computed": self.computed, "note": self.note}


def _why_not(name: str, cfg: ProjectConfig) -> str:
    """Empty when the project's configuration computes `name`; else what would make it computed.

    Mirrors the stages' own loops (monitor/pipeline/stages): drift over `drift_fields` x `drift_methods` and
    every scalar series with ks and psi; safety always; bias gaps with a `bias_attribute`; probe gaps from
    the probe job (scheduled with `probes`, or on demand with `driftloop bias probe`)."""
    parts = name.split(".")
    if parts[0] == "eval":
        named = {e.name: e for e in cfg.evaluators}
        if parts[1] not in named:
            return f"no evaluator named {parts[1]!r}: add one to `evaluators` (docs/evaluators.md)"
        if not named[parts[1]].enabled:
            return f"evaluator {parts[1]!r} is disabled"
    if parts[0] == "drift" and parts[1] == "embeddings" and cfg.drift_onset_seconds is None:
        return "drift_onset_seconds is null: set it (10800, 3 hours) to compute the onset row"
    if parts[0] == "drift" and parts[1] in EMBEDDING_FIELDS:
        if parts[1] not in cfg.drift_fields:
            return f"drift_fields is {cfg.drift_fields}: add {parts[1]!r} to compute it"
        if parts[2] not in cfg.drift_methods:
            return f"drift_methods is {cfg.drift_methods}: add {parts[2]!r} to compute it"
    if parts[0] == "bias" and parts[1] == "probe":
        if cfg.probes is None:
            return "counterfactual probes run on demand only (`driftloop bias probe`); set `probes` to schedule them"
        if cfg.probes.axes is not None and parts[2] not in cfg.probes.axes:
            return f"probes.axes is {cfg.probes.axes}: add {parts[2]!r} to compute it"
    elif parts[0] == "bias" and not cfg.bias_attribute:
        return "no bias_attribute set: name the metadata key whose groups are compared"
    return ""


def project_metrics(cfg: ProjectConfig) -> list[ProjectMetric]:
    """Every catalog metric with `computed` and a `note` for this project's configuration."""
    specs = all_metrics()
    listed = {s.name for s in specs}
    # The project's own evaluator names (the catalog lists only the built-in kinds' default names).
    specs += [spec for e in cfg.evaluators for stat, _, _ in EVAL_STATS
              if f"eval.{e.name}.{stat}" not in listed and (spec := eval_metric(f"eval.{e.name}.{stat}")) is not None]
    out = []
    for spec in specs:
        why = _why_not(spec.name, cfg)
        note = why or ("computed on demand (`driftloop bias probe`) and on the probe schedule"
                       if spec.name.startswith("bias.probe.") else "")
        out.append(ProjectMetric(spec, computed=not why, note=note))
    return out
