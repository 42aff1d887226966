"""What the model pages show, read from the registry: a version with its trigger, training data, loss curve,
evaluation beside the champion's, gates, answers of both models and audit trail; the project's versions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from monitor.ui.charts import line_chart, moving_average
from retrain.dataset.builder import Example, read_snapshot
from retrain.models import AuditEntry, ModelVersion
from retrain.public_paths import public_path, scrub_text
from retrain.registry.service import alias_target, aliases_of, audit_entries, version_names
from retrain.registry.views import audit_dict

PENDING = ("candidate", "approved")
DATA_EXAMPLES = 5
# (key in the evaluation scores, label, True when lower is better)
SCORE_ROWS = (
    ("eval_nll", "held-out loss (nats/token)", True),
    ("perplexity", "perplexity", True),
    ("toxicity_rate", "toxic answers", True),
    ("bias_disparity", "bias-probe disparity (mean squared group gap)", True),
    ("bias_gap", "bias-probe largest sentiment gap", True),
    ("similarity", "similarity to corrected answers", False),
    ("n_generated", "answers generated", None),
    ("eval_tokens", "tokens scored", None),
)


@dataclass(frozen=True)
class DatasetView:
    path: str | None
    hash: str | None
    stats: dict[str, Any]
    examples: list[Example]
    problem: str | None  # why no examples are shown (file missing, hash mismatch)


def dataset_view(v: ModelVersion) -> DatasetView:
    examples: list[Example] = []
    problem = None
    if not v.dataset_path:
        problem = "this version has no training data (the base model)"
    elif not Path(v.dataset_path).is_file():
        problem = f"the dataset file is not on this host ({public_path(v.dataset_path)})"
    else:
        try:
            snapshot = read_snapshot(Path(v.dataset_path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = scrub_text(f"the dataset file could not be read: {exc}")
        else:
            if snapshot.content_hash != v.dataset_hash:
                problem = (f"the dataset file's content hash {snapshot.content_hash[:12]}… does not match the "
                           f"recorded {str(v.dataset_hash)[:12]}…: it was changed after training")
            examples = list(snapshot.train[:DATA_EXAMPLES])
    return DatasetView(public_path(v.dataset_path), v.dataset_hash, dict(v.dataset_stats or {}), examples, problem)


def loss_chart(losses: list[float]) -> Markup | None:
    if not losses:
        return None
    window = max(1, min(20, len(losses) // 10))
    series: dict[str, list[float | None]] = {"loss": list(losses)}
    if window > 1:
        series[f"mean of {window}"] = moving_average(losses, window)
    return line_chart(series, x_label="training step", y_label="loss", title="training loss per step")


def score_rows(eval_results: dict[str, Any]) -> list[dict[str, Any]]:
    champion, challenger = eval_results.get("champion") or {}, eval_results.get("challenger") or {}
    rows = []
    for key, label, lower_better in SCORE_ROWS:
        a, b = champion.get(key), challenger.get(key)
        better = None
        if lower_better is not None and isinstance(a, int | float) and isinstance(b, int | float) and a != b:
            better = (b < a) if lower_better else (b > a)
        rows.append({"key": key, "label": label, "champion": a, "challenger": b, "better": better})
    return rows


SENTENCE_END = re.compile(r"[.!?…)\"'»]\s*$")
LAST_SENTENCE = re.compile(r"^(.*[.!?])\s")


def tidy_answer(text: str | None) -> dict[str, Any]:
    """An answer as shown: generation stops at a token limit, often mid-sentence. Such an answer is cut back
    to its last complete sentence (when it has one) and marked as cut, so a reader never takes a broken
    sentence for the model's whole reply."""
    if text is None:
        return {"text": None, "cut": False}
    stripped = text.rstrip()
    if not stripped or SENTENCE_END.search(stripped):
        return {"text": stripped, "cut": False}
    whole = LAST_SENTENCE.match(stripped + " ")
    return {"text": whole.group(1) if whole else stripped, "cut": True}


def evaluator_rows(eval_results: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's evaluators on both models' answers to the held-out prompts (retrain/evaluation/scoring.py)."""
    def of(who: str) -> dict[str, Any]:
        return dict(((eval_results.get(who) or {}).get("details") or {}).get("evaluators") or {})

    champion, challenger = of("champion"), of("challenger")
    rows = []
    for name in sorted(set(champion) | set(challenger)):
        a, b = champion.get(name, {}), challenger.get(name, {})
        better = None
        direction = b.get("good_when_high", a.get("good_when_high"))
        ma, mb = a.get("mean"), b.get("mean")
        if direction is not None and isinstance(ma, int | float) and isinstance(mb, int | float) and ma != mb:
            better = (mb > ma) if direction else (mb < ma)
        rows.append({"name": name, "champion": a, "challenger": b, "better": better,
                     "error": b.get("error") or a.get("error")})
    return rows


def answer_pairs(eval_results: dict[str, Any]) -> list[dict[str, Any]]:
    """Held-out prompts answered by both models (evaluation keeps the first few of each)."""
    def samples(who: str) -> list[dict[str, Any]]:
        details = (eval_results.get(who) or {}).get("details") or {}
        return list(details.get("samples") or [])

    theirs = {s.get("prompt"): s for s in samples("champion")}
    pairs = []
    for s in samples("challenger"):
        other = theirs.get(s.get("prompt"), {})
        pairs.append({"prompt": s.get("prompt"), "reference": s.get("reference"), "challenger": s.get("answer"),
                      "challenger_toxicity": s.get("toxicity"), "champion": other.get("answer"),
                      "champion_toxicity": other.get("toxicity"), "event_id": s.get("event_id"),
                      "challenger_shown": tidy_answer(s.get("answer")),
                      "champion_shown": tidy_answer(other.get("answer"))})
    return pairs


def version_audit(session: Session, project_id: int, v: ModelVersion) -> list[dict[str, Any]]:
    """Entries about this version: its own, and those that moved the champion away from or back to it."""
    names = version_names(session, project_id)
    mine: list[AuditEntry] = [e for e in audit_entries(session, project_id, limit=1000)
                              if e.version_id == v.id or (e.details or {}).get("from_version_id") == v.id]
    return [audit_dict(e, names) for e in mine]


def available_actions(v: ModelVersion, was_promoted_over: bool) -> list[str]:
    if v.status == "candidate":
        return ["approve", "reject"]
    if v.status == "approved":
        return ["promote", "reject"]
    if v.status == "archived":
        return ["promote"]
    if v.status == "champion" and was_promoted_over:
        return ["rollback"]
    return []


def version_context(session: Session, project_id: int, v: ModelVersion) -> dict[str, Any]:
    aliases = aliases_of(session, project_id)
    names = version_names(session, project_id)
    audit = version_audit(session, project_id, v)
    promoted_over = any(e["action"] in ("promote", "promote_override") and e["version"] == v.name
                        and (e["details"] or {}).get("from_version_id") for e in audit)
    trigger = dict(v.trigger or {})
    return {
        "v": v, "base_model": public_path(v.base_model), "adapter": public_path(v.adapter_path),
        "aliases": sorted(a for a, n in aliases.items() if n == v.name), "champion": aliases.get("champion"),
        "parent": names.get(v.parent_version_id) if v.parent_version_id else None,
        "trigger": trigger, "explanation": trigger.get("drift_explanation"),
        "dataset": dataset_view(v), "loss_chart": loss_chart(list(v.train_losses or [])),
        "n_losses": len(v.train_losses or []),
        "scores": score_rows(v.eval_results or {}), "eval": v.eval_results or {},
        "gates": list(v.gate_results or []), "failed_gates": [g["name"] for g in v.gate_results or []
                                                              if not g.get("passed", True)],
        "pairs": answer_pairs(v.eval_results or {}), "audit": audit,
        "evaluator_rows": evaluator_rows(v.eval_results or {}),
        "actions": available_actions(v, promoted_over),
    }


def models_context(session: Session, project_id: int, versions: list[ModelVersion]) -> dict[str, Any]:
    names = version_names(session, project_id)
    return {"versions": versions, "aliases": aliases_of(session, project_id),
            "audit": [audit_dict(e, names) for e in audit_entries(session, project_id, limit=50)]}


def overview_context(session: Session, project_id: int, versions: list[ModelVersion]) -> dict[str, Any]:
    champion = alias_target(session, project_id, "champion")
    return {"champion": champion, "champion_base": public_path(champion.base_model) if champion else None,
            "pending": [v for v in versions if v.status in PENDING],
            "challenger": aliases_of(session, project_id).get("challenger")}
