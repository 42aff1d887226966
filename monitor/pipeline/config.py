"""Per-project pipeline configuration, stored in `projects.config` and validated here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.models import Project
from monitor.privacy.redact import parse_actions
from monitor.timestamps import UtcTime


class RangeReference(BaseModel):
    """A pinned time range of known-good traffic."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["range"] = "range"
    start: UtcTime  # converted to UTC and range-checked: an extreme offset is a 422, not an overflow later
    end: UtcTime

    @model_validator(mode="after")
    def _ordered(self) -> RangeReference:
        if self.end <= self.start:
            raise ValueError("reference.end must be after reference.start")
        return self


class FirstNReference(BaseModel):
    """The first N events (of the segment being compared), optionally of one model version only.

    With `model_version` set to the version that was just promoted, this is "the first N events after the
    promotion"; the model registry sets it when it swaps the champion.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["first_n"] = "first_n"
    n: int = Field(1000, ge=50, le=200_000)
    model_version: str | None = None


Reference = Annotated[RangeReference | FirstNReference, Field(discriminator="kind")]


# A monitoring probe run uses the probe set's first 10 templates (the whole set before it grew to 40 for the
# retraining bias gate): 330 prompts over all axes instead of 1,320. The gate sets its own count.
DEFAULT_JOB_TEMPLATES = 10


class ProbeSchedule(BaseModel):
    """Counterfactual bias probes run on a schedule against the project's model endpoint."""

    model_config = ConfigDict(extra="forbid")
    generator: str = Field("local", description="local[:<model>] or openai:<base url>|<model name>.")
    axes: list[str] | None = None
    every_hours: int = Field(24, ge=1, le=24 * 30)
    max_new_tokens: int = Field(32, ge=4, le=512)
    n_bootstrap: int = Field(1000, ge=100, le=100_000)
    # The shipped set grew from 10 to 40 templates for the retraining bias gate (which keeps 40); a scheduled
    # run against the served model keeps the old cost unless a project asks for more.
    max_templates: int | None = Field(
        DEFAULT_JOB_TEMPLATES, ge=1,
        description="Probe templates per axis, the probe set's first N (10 = the original set; None: all 40).")


class PrivacyConfig(BaseModel):
    """This project's PII redaction, over the global DRIFTLOOP_PII_* settings (monitor/privacy/policy.py)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    actions: dict[str, str] | str | None = None
    on_error: Literal["refuse", "withhold"] | None = None
    budget_ms: float | None = Field(None, gt=0, le=60_000)

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: dict[str, str] | str | None) -> dict[str, str] | str | None:
        parse_actions(value)  # unknown detectors or actions: a ValueError naming them
        return value


class EvaluatorSpec(BaseModel):
    """One evaluator run on this project's windows (docs/evaluators.md): which kind, on what share of which
    segments' events, with which parameters."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=48, pattern=r"^$|^[a-z][a-z0-9_]*$",
                      description="Metric names are eval.<name>.*; defaults to the kind.")
    kind: str = Field(max_length=48, description="A built-in evaluator (monitor/evaluators/registry.py).")
    sample_share: float = Field(1.0, gt=0, le=1, description="Share of the window's events scored (hash-rank sample).")
    max_per_window: int = Field(2000, ge=1, le=200_000, description="At most this many events scored per segment.")
    segments: list[str] | None = Field(None, max_length=50, description="Only these segment labels; None: all.")
    params: dict[str, Any] = Field(default_factory=dict, description="Kind-specific settings (threshold, ...).")
    enabled: bool = True

    @model_validator(mode="after")
    def _known_kind(self) -> EvaluatorSpec:
        from monitor.evaluators.registry import check_params  # the built-ins' params models; no heavy imports

        check_params(self.kind, self.params)
        if not self.name:
            self.name = self.kind
        return self


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_seconds: int = Field(3600, ge=300, le=86_400, description="Tumbling window length (5 min to 1 day).")
    reference: Reference = Field(
        default_factory=FirstNReference, description="What windows are compared with: the first N events (of a "
        "model version, if named), or a pinned time range of known-good traffic.")
    segment_keys: list[str] = Field(
        default_factory=list, max_length=10, description="Metadata keys to segment by, besides model/template version."
    )
    max_segment_values: int = Field(20, ge=1, le=200, description="Per key, only the most frequent values get rows.")
    min_samples: int = Field(30, ge=1, description="Below this many events a window's ops metrics are insufficient.")
    drift_min_samples: int = Field(100, ge=20, description="Below this per side, drift is insufficient.")
    drift_methods: list[str] = Field(
        default_factory=lambda: ["mmd", "knn"], min_length=1,
        description="Embedding detectors run per segment and field "
        "(`mmd`, `knn`, `knn_strat`, `novelty`, `classifier`, `evidently_*`).")
    drift_fields: list[Literal["prompt", "response"]] = Field(
        default_factory=lambda: ["prompt", "response"],  # type: ignore[arg-type]
        description="Texts whose embeddings are compared.")
    drift_alpha: float = Field(
        0.01, gt=0, lt=0.5,
        description="False-page budget of a window: Benjamini-Hochberg level over its embedding-drift rows "
        "(segments x fields x methods) on the calibrated p-values; the raw p-value stays in the row.")
    drift_min_effect: float | None = Field(
        None, ge=0, le=1, description="None: mmd, knn, knn_strat, novelty and classifier are calibrated on the "
        "reference's own variation over time (docs/drift.md). A number skips the calibration and requires this "
        "effect size as well.")
    drift_calibration_blocks: int = Field(
        8, ge=3, le=50, description="Time segments the reference is cut into to calibrate; a reference with fewer "
        "than 30 rows per segment uses the conservative fallback (effect >= 0.05).")
    drift_max_samples: int = Field(
        20_000, ge=100, description="Larger sides are subsampled before anything is embedded: the reference in evenly "
        "spaced runs of consecutive events (the calibration needs window-like pieces), the window uniformly (seeded).")
    drift_onset_seconds: int | None = Field(
        10_800, ge=300, le=7 * 86_400, description="The onset row (`drift.embeddings.onset`, segment `all`): each "
        "window against a sample of this span of traffic just before it (rounded up to whole windows), `knn` per "
        "field, combined, in the window's false-page budget; catches a shift the reference rows' daily-cycle λ hides. "
        "None turns it off.")
    safety_max_samples: int = Field(
        20_000, ge=100, description="Per segment, a larger window scores a seeded uniform sample of this many events "
        "for toxicity, sentiment and bias (a model scorer cannot keep up with every event).")
    bias_attribute: str | None = Field(
        None, max_length=64, description="Metadata key whose values are the groups compared for disparity."
    )
    bias_min_group_size: int = Field(30, ge=5, description="Smaller groups are reported but never flagged.")
    bias_alpha: float = Field(0.01, gt=0, lt=0.5, description="Significance level of the disparity tests.")
    probes: ProbeSchedule | None = Field(None, description="Scheduled bias probes; None runs them on demand only.")
    positive_feedback_threshold: float = Field(
        0.5, description="A feedback score above this counts as positive (labels: see positive_labels)."
    )
    positive_labels: list[str] = Field(default_factory=lambda: ["thumbs_up", "positive", "good", "accepted"],
                                       description="Feedback labels that count as positive.")
    # The closed loop's per-project overrides; `retrain.jobs.config` validates them (the pipeline only carries them:
    # `monitor` does not know the loop's keys, and must not refuse a project config because of them).
    retrain: dict[str, Any] | None = Field(None, description="Retraining overrides (see retrain/jobs/config.py).")
    privacy: PrivacyConfig | None = Field(
        None, description="PII redaction overrides: enabled, actions, on_error, budget_ms (see docs/privacy.md).")
    evaluators: list[EvaluatorSpec] = Field(
        default_factory=list, max_length=20, description="Online evaluators scored per window (docs/evaluators.md).")
    evaluator_context_key: str = Field(
        "context", max_length=64, description="Event metadata key holding retrieved passages for evaluators.")

    @field_validator("evaluators")
    @classmethod
    def _unique_names(cls, specs: list[EvaluatorSpec]) -> list[EvaluatorSpec]:
        names = [s.name for s in specs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"evaluator name(s) used twice: {', '.join(twice)} (give each a distinct name)")
        return specs


def project_config(project: Project) -> ProjectConfig:
    return ProjectConfig.model_validate(project.config or {})
