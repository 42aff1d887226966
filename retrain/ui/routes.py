"""The model pages of the approval UI and the decisions taken on them.

Every decision is made by the signed-in operator (the audit log's actor), carries a comment or reason, and
goes through the registry functions the API and CLI use (`approve`, `reject`, `change_champion`). Overriding
failed gates needs a reason and the version's name typed as confirmation. Bad input or a refused decision
re-renders the page with the error and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import RedirectResponse, Response

from monitor import principals
from monitor.api.deps import ReadSessionDep, SessionDep
from monitor.errors import NotFoundError
from monitor.ui.accounts import CurrentOperator
from monitor.ui.render import render
from monitor.ui.routes_pages import Slug, project_or_404
from monitor.ui.security import FormOperatorDep, OperatorDep, settings_of
from retrain.registry.service import ConflictError, GateBlockedError, approve, get_version, list_versions, reject
from retrain.registry.swap import change_champion
from retrain.ui.pages import models_context, version_context

router = APIRouter(prefix="/ui", include_in_schema=False)
Version = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
Decision = Literal["approve", "reject", "promote", "rollback"]
MAX_REASON = 4000
NOTICES = {
    "approved": "Approved.",
    "promoted": "Promoted: this version is the champion now.",
    "approved_promoted": "Approved and promoted: this version is the champion now.",
    "rejected": "Rejected.",
    "rolled_back": "Rolled back: the previous champion is restored.",
    "hook_failed": "The champion changed, but the serving hook failed; see the audit log (serving_hook).",
}


class FormProblem(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")


@router.get("/p/{slug}/models")
def models_page(slug: Slug, request: Request, session: ReadSessionDep, operator: OperatorDep) -> Response:
    project = project_or_404(session, slug)
    versions = list_versions(session, project.id)
    return render(request, "retrain/models.html", {"title": f"{project.slug}: models", "project": project,
                                           **models_context(session, project.id, versions)}, operator=operator)


def _version_page(request: Request, session: SessionDep, operator: CurrentOperator, slug: str, version: str, *,
                  notice: str | None = None, error: str | None = None, status_code: int = 200,
                  form: dict[str, str] | None = None) -> Response:
    project = project_or_404(session, slug)
    v = get_version(session, project.id, version)
    context = version_context(session, project.id, v)
    return render(request, "retrain/model.html", {"title": f"{project.slug}: {v.name}", "project": project, **context,
                                          "notice": notice, "error": error, "form": form or {}},
                  operator=operator, status_code=status_code)


@router.get("/p/{slug}/models/{version}")
def version_page(slug: Slug, version: Version, request: Request, session: ReadSessionDep, operator: OperatorDep,
                 done: str | None = None) -> Response:
    return _version_page(request, session, operator, slug, version, notice=NOTICES.get(done or ""))


def _reason(text: str, field: str) -> str:
    text = text.strip()
    if not text:
        raise FormProblem(field, "required: say why (it is kept in the audit log)")
    if len(text) > MAX_REASON:
        raise FormProblem(field, f"at most {MAX_REASON} characters")
    return text


def _check_override(override: bool, confirm: str, name: str) -> None:
    if override and confirm.strip() != name:
        raise FormProblem("confirm", f"to override the failed gates, type the version name {name!r} exactly")
    if not override and confirm.strip():
        raise FormProblem("override", "tick 'override the failed gates' to use the confirmation")


@router.post("/p/{slug}/models/{version}/{decision}")
def decide(slug: Slug, version: Version, decision: Decision, request: Request, session: SessionDep,
           operator: FormOperatorDep, comment: Annotated[str, Form(max_length=MAX_REASON + 1000)] = "",
           override: Annotated[bool, Form()] = False, confirm: Annotated[str, Form(max_length=64)] = "",
           promote_now: Annotated[bool, Form()] = False) -> Response:
    project = project_or_404(session, slug)
    project_id, actor = project.id, operator.username
    who = principals.operator(operator.username)  # the signed-in operator is both the label and the principal
    form = {"decision": decision, "comment": comment, "confirm": confirm, "override": "1" if override else ""}
    name = version  # an alias ("challenger") may move during the decision: the page shows the name after
    try:
        v = get_version(session, project_id, version)
        name = v.name
        reason = _reason(comment, "comment" if decision == "approve" else "reason")
        _check_override(override, confirm, name)
        if decision == "reject":
            reject(session, project_id, name, actor=actor, reason=reason, principal=who)
            session.commit()
            return _done(slug, name, "rejected")
        if decision == "approve":
            approve(session, project_id, name, actor=actor, reason=reason, override=override, principal=who)
            session.commit()
            if not promote_now:
                return _done(slug, name, "approved")
        # The swap commits in units of its own (alias move, then the serving hook's audit entry); this
        # request's session holds no transaction meanwhile.
        session.rollback()
        action: Literal["promote", "rollback"] = "rollback" if decision == "rollback" else "promote"
        _, hook = change_champion(request.app.state.session_factory, project_id, action, name, actor=actor,
                                  reason=reason, override=override, settings=settings_of(request),
                                  principal=who)
    except (FormProblem, GateBlockedError, ConflictError) as exc:
        session.rollback()
        status_code = 422 if isinstance(exc, FormProblem) else 409
        prefix = "approved, but not promoted: " if decision == "approve" and promote_now and _approved(
            session, project_id, name) else ""
        return _version_page(request, session, operator, slug, name, error=prefix + str(exc),
                             status_code=status_code, form=form)
    if not hook.ok:
        return _done(slug, name, "hook_failed")
    done = {"rollback": "rolled_back", "approve": "approved_promoted"}.get(decision, "promoted")
    return _done(slug, name, done)


def _approved(session: SessionDep, project_id: int, version: str) -> bool:
    try:
        return get_version(session, project_id, version).status == "approved"
    except NotFoundError:
        return False


def _done(slug: str, name: str, done: str) -> Response:
    return RedirectResponse(f"/ui/p/{slug}/models/{name}?done={done}", status_code=303)
