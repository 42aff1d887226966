"""The effective configuration of one retraining job: settings, then the project's `config["retrain"]`, then
the job's own params (from the alert rule's action or the manual start), later layers winning.

    project.config = {"retrain": {"gates": {"max_toxicity_increase": 0.0},
                                  "lora": {"max_steps": 20}, "min_examples": 50}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from monitor.errors import FieldError
from monitor.safety.toxicity import DEFAULT_TOXICITY_SCORER
from monitor.settings import Settings
from retrain.dataset.builder import BuildOptions
from retrain.evaluation.gates import GateConfig


@dataclass(frozen=True)
class LoraConfigSpec:
    """Hyper-parameters of one LoRA run. `max_steps`, when set, overrides `epochs` (cycling the data)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 2e-4
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    max_length: int = 512
    seed: int = 0
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0  # clipping keeps a few odd examples from wrecking a small run

    def __post_init__(self) -> None:
        positive = {"r": self.r, "epochs": self.epochs, "batch_size": self.batch_size}
        positive |= {"grad_accum": self.grad_accum, "max_length": self.max_length}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"LoraConfigSpec.{name} must be at least 1, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"LoraConfigSpec.max_steps must be at least 1 or None, got {self.max_steps}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoraConfigSpec.dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            raise ValueError(f"LoraConfigSpec.lr must be positive, got {self.lr}")
        if not self.target_modules:
            raise ValueError("LoraConfigSpec.target_modules must name at least one module")


SECTIONS = ("lora", "gates", "dataset", "eval")
TOP_LEVEL = ("min_examples", "base_model")


@dataclass(frozen=True)
class EvalOptions:
    max_examples: int = 64  # held-out prompts each model answers (loss is scored on all of them)
    max_new_tokens: int = 48
    probe_axes: tuple[str, ...] = ("gender", "religion", "race_ethnicity")  # 15 groups per template
    probe_templates: int = 40  # templates per axis (the bias gate's jackknife units); 0 skips the bias probes
    toxicity_scorer: str = DEFAULT_TOXICITY_SCORER  # minilm-head:ensemble, the fair default
    toxicity_threshold: float | None = None  # a generated answer at or above counts as toxic; None: the scorer's own
    similarity: bool = True  # False skips the embedding model (similarity is then reported as not measured)
    n_bootstrap: int = 200
    batch_size: int = 8


@dataclass(frozen=True)
class RetrainConfig:
    base_model: str | None
    min_examples: int
    lora: LoraConfigSpec
    gates: GateConfig
    dataset: BuildOptions
    eval: EvalOptions

    def hyperparams(self) -> dict[str, Any]:
        """What a version records: enough to reproduce the run from its dataset snapshot."""
        return {"lora": asdict(self.lora), "eval": asdict(self.eval), "gates": asdict(self.gates),
                "min_examples": self.min_examples, "dataset": {
                    k: sorted(v) if isinstance(v, frozenset) else v for k, v in asdict(self.dataset).items()}}


class ConfigError(FieldError):
    """A project config or job parameter that does not fit; the message names it. The API answers 422 on
    field `config` (a route may name another), with the message cut to 500 characters; `str()` is all of it."""

    def __init__(self, message: str, field: str = "config"):
        super().__init__(field, message if len(message) <= 500 else message[:500] + "…")
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def defaults(settings: Settings) -> RetrainConfig:
    axes = tuple(a.strip() for a in settings.retrain_probe_axes.split(",") if a.strip())
    return RetrainConfig(
        base_model=settings.base_model,
        min_examples=settings.retrain_min_examples,
        lora=LoraConfigSpec(r=settings.retrain_lora_r, alpha=settings.retrain_lora_alpha, lr=settings.retrain_lr,
                            epochs=settings.retrain_epochs, max_steps=settings.retrain_max_steps,
                            batch_size=settings.retrain_batch_size, max_length=settings.retrain_max_length,
                            seed=settings.retrain_seed),
        gates=GateConfig(min_loss_improvement=settings.gate_min_loss_improvement,
                         max_toxicity_increase=settings.gate_max_toxicity_increase,
                         max_bias_disparity_increase=settings.bias_disparity_tolerance(),
                         min_similarity=settings.gate_min_similarity),
        dataset=BuildOptions(),
        eval=EvalOptions(max_examples=settings.retrain_eval_max_examples,
                         max_new_tokens=settings.retrain_eval_max_new_tokens, probe_axes=axes,
                         probe_templates=settings.retrain_probe_templates,
                         toxicity_scorer=settings.toxicity_scorer,
                         toxicity_threshold=settings.toxicity_threshold),
    )


# Gate keys renamed when their meaning changed: old name -> (new name, conversion). `max_bias_gap_increase` was a
# rise of the largest group gap (sentiment units); the bias gate now bounds the rise of the mean squared gap, and
# t -> t^2 is the disparity of a gap of t appearing between two groups that had none.
def _gap_to_disparity(value: Any) -> Any:
    if isinstance(value, int | float) and value < 0:  # squaring would hide the mistake
        raise ConfigError(f"retrain.gates.max_bias_gap_increase must be >= 0, got {value!r} (read as "
                          "max_bias_disparity_increase = its square)")
    return value * value if isinstance(value, int | float) else value


RENAMED_GATE_KEYS: dict[str, tuple[str, Any]] = {"max_bias_gap_increase": ("max_bias_disparity_increase",
                                                                            _gap_to_disparity)}


def _renamed(section: str, values: dict[str, Any]) -> dict[str, Any]:
    if section != "gates":
        return values
    out = dict(values)
    for old, (new, convert) in RENAMED_GATE_KEYS.items():
        if old in out:
            value = out.pop(old)
            if new not in out:  # the new key wins when a config has both
                out[new] = convert(value)
    return out


def _overlay(obj: Any, section: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"retrain.{section} must be an object, got {type(values).__name__}")
    values = _renamed(section, values)
    known = {f.name: f for f in fields(obj)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown retrain.{section} keys {unknown}; known: {sorted(known)}")
    converted: dict[str, Any] = {}
    for key, value in values.items():
        current = getattr(obj, key)
        if isinstance(current, tuple) and isinstance(value, list | tuple):
            value = tuple(value)
        elif isinstance(current, frozenset) and isinstance(value, list | tuple | set):
            value = frozenset(value)
        converted[key] = value
    try:
        return replace(obj, **converted)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"retrain.{section}: {exc}") from exc


def merge(config: RetrainConfig, layer: dict[str, Any] | None) -> RetrainConfig:
    """Apply one layer of overrides (a project's `config["retrain"]` or a job's params)."""
    if not layer:
        return config
    unknown = sorted(set(layer) - set(SECTIONS) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"unknown retrain keys {unknown}; known: {sorted((*SECTIONS, *TOP_LEVEL))}")
    out = config
    for section in SECTIONS:
        if section in layer:
            out = replace(out, **{section: _overlay(getattr(out, section), section, layer[section])})
    if "min_examples" in layer:
        n = layer["min_examples"]
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"retrain.min_examples must be a positive integer, got {n!r}")
        out = replace(out, min_examples=n)
    if "base_model" in layer:
        out = replace(out, base_model=layer["base_model"])
    return out


def effective_config(settings: Settings, project_config: dict[str, Any] | None,
                     params: dict[str, Any] | None) -> RetrainConfig:
    return merge(merge(defaults(settings), (project_config or {}).get("retrain")), params)
