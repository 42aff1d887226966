"""The settings page of a project (operators): one form per section of `projects.config`, validated by the
schema the pipeline reads, errors shown next to their field, each save audited like the CLI's and the API's
(`monitor.projects.config_service`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import RedirectResponse, Response

from monitor.alerts.rule_service import list_rules, rule_warnings
from monitor.api.deps import ReadSessionDep, SessionDep
from monitor.errors import FieldError, FieldErrors
from monitor.models import Project
from monitor.pipeline.config import ProjectConfig
from monitor.projects.config_service import change_config, change_view, effective, history
from monitor.ui.render import render
from monitor.ui.routes_pages import project_or_404
from monitor.ui.security import FormOperatorDep, OperatorDep, PageError

router = APIRouter(prefix="/ui", include_in_schema=False)
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
LISTS = {"segment_keys", "drift_methods", "drift_fields", "positive_labels"}
REFERENCE = ("reference.kind", "reference.n", "reference.model_version", "reference.start", "reference.end")


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    keys: tuple[str, ...]
    intro: str = ""


SECTIONS: tuple[Section, ...] = (
    Section("windows", "Windows and segments", ("window_seconds", "segment_keys", "max_segment_values", "min_samples")),
    Section("reference", "Reference", REFERENCE,
            "What each window is compared with. The default is the first 1,000 events of each segment, so early "
            "traffic is compared against a reference that contains it: pin a range of known-good traffic "
            "(kind range) once you have one."),
    Section("drift", "Drift", ("drift_methods", "drift_fields", "drift_alpha", "drift_min_effect",
                               "drift_calibration_blocks", "drift_min_samples", "drift_max_samples")),
    Section("safety", "Safety and bias", ("safety_max_samples", "bias_attribute", "bias_min_group_size", "bias_alpha")),
    Section("feedback", "Feedback", ("positive_feedback_threshold", "positive_labels")),
)
_BY_NAME = {s.name: s for s in SECTIONS}
# Settings without a form (nested ones: probes, retrain, privacy): derived from the schema, so a new one shows.
OTHER = tuple(k for k in ProjectConfig.model_fields if k not in {key.split(".")[0] for s in SECTIONS for key in s.keys})
REFERENCE_HELP = {
    "reference.kind": "first_n: the first N events (of a model version, if named); range: a pinned time range.",
    "reference.n": "first_n only: how many events (50 to 200,000).",
    "reference.model_version": "first_n only: count only this model version's events (empty: any).",
    "reference.start": "range only: ISO time, e.g. 2026-11-01T00:00:00Z.",
    "reference.end": "range only: ISO time after start.",
}


def _help(key: str) -> str:
    if key in REFERENCE_HELP:
        return REFERENCE_HELP[key]
    return ProjectConfig.model_fields[key].description or ""


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _fields(section: Section, stored: dict[str, Any], current: dict[str, Any], sent: dict[str, str] | None,
            errors: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for key in section.keys:
        parts = key.split(".")
        value: Any = current
        for p in parts:
            value = value.get(p) if isinstance(value, dict) else None
        is_set = parts[0] in stored and (len(parts) == 1 or parts[1] in (stored.get(parts[0]) or {}))
        out.append({"key": key, "id": "f-" + key.replace(".", "-"), "help": _help(key),
                    "value": sent[key] if sent is not None and key in sent else _shown(value),
                    "set": is_set, "error": errors.get(key)})
    return out


def _page(request: Request, session: SessionDep, operator: Any, project: Project, *, notice: str | None = None,
          failed: str | None = None, sent: dict[str, str] | None = None, errors: dict[str, str] | None = None,
          status_code: int = 200) -> Response:
    stored = dict(project.config or {})
    try:
        current = effective(stored)
    except FieldErrors:  # written by hand with psql: show what is stored, let a save fix it
        current = stored
    sections = [{"name": s.name, "title": s.title, "intro": s.intro,
                 "fields": _fields(s, stored, current, sent if failed == s.name else None,
                                   (errors or {}) if failed == s.name else {})} for s in SECTIONS]
    other = {k: current.get(k) for k in OTHER}
    return render(request, "settings.html", {
        "title": f"{project.slug}: settings", "project": project, "sections": sections, "other": other,
        "history": [change_view(r) for r in history(session, project.id, 10)], "notice": notice,
        "rule_warnings": rule_warnings(project, [r for r in list_rules(session, project.id) if r.enabled]),
        "error": "The section was not saved: see the fields marked below." if errors else None,
    }, operator=operator, status_code=status_code)


@router.get("/p/{slug}/settings")
def settings_page(slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep,
                  saved: str | None = None) -> Response:
    project = project_or_404(session, slug)
    return _page(request, session, operator, project, notice=saved)


def _parse(section: Section, form: dict[str, str], stored: dict[str, Any]) -> dict[str, Any]:
    """The stored config with this section's fields replaced by the form's. An empty field is the default; so
    is a field left showing its default that was never set (the form is filled with every effective value,
    and saving one section must not pin the others' defaults)."""
    new = dict(stored)
    defaults = effective({})
    if section.name == "reference":
        ref = {k.split(".")[1]: form.get(k, "").strip() for k in REFERENCE}
        kind = ref.pop("kind") or "first_n"
        keep = ("n", "model_version") if kind == "first_n" else ("start", "end")
        value: dict[str, Any] = {"kind": kind, **{k: ref[k] for k in keep if ref[k]}}
        unchanged_default = "reference" not in stored and _same(value, defaults["reference"], "reference")
        if value == {"kind": "first_n"} or unchanged_default:
            new.pop("reference", None)
        else:
            new["reference"] = value
        return new
    for key in section.keys:
        raw = form.get(key, "").strip()
        if not raw or (key not in stored and raw == _shown(defaults[key])):
            new.pop(key, None)
        elif key in LISTS:
            new[key] = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            new[key] = raw  # the schema converts text to numbers (and says so when it cannot)
    return new


def _same(value: dict[str, Any], default: Any, key: str) -> bool:
    try:
        return bool(effective({key: value})[key] == default)
    except FieldErrors:
        return False


async def _form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields. Awaited here (the body is capped at 64 KiB and Starlette keeps the parsed
    form), so that `save_section` can be a plain `def`: its database work and page rendering then run in a worker
    thread, not on the event loop (issue #18, finding 2)."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]


@router.post("/p/{slug}/settings/{section}")
def save_section(slug: Slug, section: str, request: Request, session: SessionDep, operator: FormOperatorDep,
                 form: FormFields) -> Response:
    project = project_or_404(session, slug)
    if section not in _BY_NAME:
        raise PageError(404, f"no settings section {section!r}")
    spec = _BY_NAME[section]
    try:
        new = _parse(spec, form, dict(project.config or {}))
        result = change_config(session, project, new, actor=f"ui operator {operator.username}", source="ui",
                               recompute=form.get("recompute") == "on")
    except (FieldErrors, FieldError) as exc:
        session.rollback()
        problems = exc.problems if isinstance(exc, FieldErrors) else [exc]
        errors: dict[str, str] = {}
        for p in problems:
            key = next((k for k in spec.keys if p.field == k or p.field.startswith(k + ".")), None)
            if key is None and section == "reference" and p.field == "reference":
                key = "reference.kind"
            errors[key or spec.keys[0]] = (p.message if key else f"{p.field}: {p.message}")
        return _page(request, session, operator, project, failed=section, sent=form, errors=errors,
                     status_code=422)
    session.commit()
    if not result.changes:
        notice = f"{spec.title}: nothing changed."
    elif result.recomputed:
        notice = f"{spec.title} saved. {result.recompute.describe(done=True)}."
    else:
        notice = f"{spec.title} saved; applies to windows computed from now on ({result.recompute.describe()})."
    return RedirectResponse(f"/ui/p/{project.slug}/settings?saved={notice}#{section}", status_code=303)
