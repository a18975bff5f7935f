"""Writes to approval requests: create, edit (a new revision), check items, cancel.

Deciding is in decisions.py, executing and the scheduled work in execution.py, blackout
windows in blackouts.py, checklist templates in checklists.py, what they share in
revisions.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol import requestable
from releasecontrol.audit import Target, audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize, decide

from . import actions
from .checklists import approval_settings_for
from .models import (
    OPEN_STATUSES,
    ApprovalRequest,
    ChecklistItem,
    ChecklistTemplate,
    Risk,
    Status,
    Urgency,
    validate_evidence,
)
from .notify import notify_requested
from .revisions import (
    RequestClosed,
    as_stored,
    ensure_open,
    expiry_of,
    lifecycle_tell,
    new_revision,
    refuse,
    request_lock,
    request_target,
    request_view,
    save_with_hash,
)

NO_CHECKLIST = "none"
TEXT_FIELDS = ("title", "impact", "mitigation", "rollback_plan")
CHOICE_FIELDS = {"urgency": Urgency, "risk": Risk}
WINDOW_FIELDS = (
    "window_start",
    "window_end",
    "alternative_window_start",
    "alternative_window_end",
)
EDITABLE_FIELDS = (*TEXT_FIELDS, *CHOICE_FIELDS, *WINDOW_FIELDS, "parameters")


def _clean_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Validate request fields before anything is authorized; errors name the fields."""
    unknown = values.keys() - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({f: "This field cannot be set on a request." for f in unknown})
    errors: dict[str, str] = {}
    for field in TEXT_FIELDS:
        if field in values:
            if not isinstance(values[field], str):
                errors[field] = "must be text"
            else:
                values[field] = values[field].strip()
    if "title" in values and not values.get("title"):
        errors["title"] = "A request needs a title."
    elif len(values.get("title") or "") > 200:
        errors["title"] = "A title is at most 200 characters."
    for field, choices in CHOICE_FIELDS.items():
        if field in values and values[field] not in choices.values:
            errors[field] = f"must be one of {', '.join(choices.values)}"
    for field in WINDOW_FIELDS:
        value = values.get(field)
        if value is not None and not (isinstance(value, dt.datetime) and timezone.is_aware(value)):
            errors[field] = "must be a time with its zone"
    if errors:
        raise ValidationError(errors)
    return values


def _check_windows(request: ApprovalRequest) -> None:
    for start, end, name in (
        (request.window_start, request.window_end, "window"),
        (request.alternative_window_start, request.alternative_window_end, "alternative_window"),
    ):
        if (start is None) != (end is None):
            raise ValidationError({name: "A window has a start and an end."})
        if start is not None and end <= start:
            raise ValidationError({name: "A window ends after it starts."})
    if request.alternative_window_start and not request.window_start:
        raise ValidationError({"alternative_window": "An alternative needs a preferred window."})


def _confirm_emergency(request: ApprovalRequest, actor: User) -> None:
    """Only a person declares an emergency; an agent's stays unconfirmed until a person's go."""
    if not request.is_emergency:
        request.emergency_confirmed_by = None
    elif actor.is_human and request.emergency_confirmed_by_id is None:
        request.emergency_confirmed_by = actor


def _template_for(environment: Environment, checklist: str | None) -> ChecklistTemplate | None:
    approval_settings = approval_settings_for(environment)
    if checklist == NO_CHECKLIST:
        if not approval_settings.checklist_optional:
            raise ValidationError(
                {"checklist": f"Requests in {environment.slug} need a checklist."}
            )
        return None
    if checklist is None:
        template = approval_settings.default_checklist
        if template is None and not approval_settings.checklist_optional:
            raise ValidationError(
                {"checklist": f"{environment.slug} has no default checklist: name one."}
            )
        return template
    template = ChecklistTemplate.objects.filter(slug=checklist).first()
    if template is None:
        raise ValidationError({"checklist": f"There is no checklist template {checklist!r}."})
    return template


# --- Services -------------------------------------------------------------------------------


def approval_request_create(*, actor: User, **fields: Any) -> ApprovalRequest:
    """Ask for a go: the preview is computed now and the checklist copied from its template.

    Fields: environment, action, parameters, title, urgency, risk, impact, mitigation,
    rollback_plan, window_start/_end, alternative_window_start/_end, checklist, reason."""
    return _request_create(actor=actor, policy_action=actions.APPROVAL_REQUEST_CREATE, **fields)


def approval_request_open(**fields: Any) -> ApprovalRequest:
    """Automation opens a request for people to decide (a release stage that needs a go, a
    review before a resume): recorded as the system's, never asking on anyone's behalf."""
    return _request_create(
        actor=User.system(), policy_action=actions.APPROVAL_REQUEST_OPEN, **fields
    )


@transaction.atomic
def _request_create(
    *,
    actor: User,
    policy_action: Any,
    environment: Environment,
    action: str,
    parameters: dict[str, Any],
    title: str,
    urgency: str = Urgency.ROUTINE,
    risk: str = Risk.MEDIUM,
    impact: str = "",
    mitigation: str = "",
    rollback_plan: str = "",
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
    alternative_window_start: dt.datetime | None = None,
    alternative_window_end: dt.datetime | None = None,
    checklist: str | None = None,
    reason: str = "",
) -> ApprovalRequest:
    fields = _clean_fields(
        {
            "title": title,
            "urgency": urgency,
            "risk": risk,
            "impact": impact,
            "mitigation": mitigation,
            "rollback_plan": rollback_plan,
            "window_start": window_start,
            "window_end": window_end,
            "alternative_window_start": alternative_window_start,
            "alternative_window_end": alternative_window_end,
        }
    )
    clean = requestable.parameters_clean(action, parameters)
    template = _template_for(environment, checklist)
    now = timezone.now()
    request = ApprovalRequest(
        environment=environment,
        action=action,
        parameters=as_stored(clean),
        checklist_template=template,
        requested_by=actor,
        created_at=now,
        updated_at=now,
        **fields,
    )
    _check_windows(request)
    authorize(
        actor,
        policy_action,
        environment,
        target=Target("approvalrequest", "", request.title),
        requested={"action": action, "parameters": request.parameters},
        reason=reason,
    )
    request.preview = as_stored(
        requestable.preview_compute(action, environment, request.parameters)
    )
    request.expires_at = expiry_of(request)
    _confirm_emergency(request, actor)
    items = [
        ChecklistItem(
            position=t.position,
            section=t.section,
            text=t.text,
            required=t.required,
            evidence_required=t.evidence_required,
        )
        for t in (template.items.all() if template else [])
    ]
    request.preview_hash = "0" * 64  # hashed below, once the checklist is stored
    request.save()
    for item in items:
        item.request = request
    ChecklistItem.objects.bulk_create(items)
    save_with_hash(request)
    audit_record(
        actor=actor,
        action=policy_action.name,
        environment=environment,
        target=request_target(request),
        after={**request_view(request), "preview": request.preview},
        reason=reason,
    )
    lifecycle_tell(request, requestable.REQUEST_OPENED, actor=actor)
    notify_requested(request, actor=actor)
    return request


@transaction.atomic
def approval_request_update(
    *, actor: User, request: ApprovalRequest, reason: str = "", **changes: Any
) -> ApprovalRequest:
    """Edit any field or the parameters: a new revision that voids earlier gos.

    With no change, the preview is refreshed all the same when the state moved under it
    (a new revision then too), which is how a drifted request is brought up to date.
    """
    changes = _clean_fields(dict(changes))
    if "parameters" in changes:
        changes["parameters"] = as_stored(
            requestable.parameters_clean(request.action, changes["parameters"])
        )
    authorize(
        actor,
        actions.APPROVAL_REQUEST_UPDATE,
        request.environment,
        target=request_target(request),
        requested={"request": request.pk, "changes": as_stored(changes)},
        reason=reason,
    )
    request = request_lock(request)
    now = timezone.now()
    ensure_open(request, now=now)
    before = request_view(request)
    changed = {f: v for f, v in changes.items() if getattr(request, f) != v}
    for field, value in changed.items():
        setattr(request, field, value)
    _check_windows(request)
    if not changed:
        current = requestable.preview_compute(
            request.action, request.environment, request.parameters
        )
        if as_stored(current) == request.preview:
            return request
    if "urgency" in changed:
        _confirm_emergency(request, actor)
    new_revision(request, actor=actor, now=now)
    audit_record(
        actor=actor,
        action=actions.APPROVAL_REQUEST_UPDATE.name,
        environment=request.environment,
        target=request_target(request),
        before=before,
        after={**request_view(request), "changed": sorted(changed), "preview": request.preview},
        reason=reason,
    )
    return request


@transaction.atomic
def checklist_item_set(
    *,
    actor: User,
    item: ChecklistItem,
    checked: bool | None = None,
    evidence: str | None = None,
    reason: str = "",
) -> ChecklistItem:
    """Check or uncheck one item, with evidence (text or an http(s) link): a new revision."""
    if checked is not None and not isinstance(checked, bool):
        raise ValidationError({"checked": "must be true or false"})
    if evidence is not None:
        if not isinstance(evidence, str):
            raise ValidationError({"evidence": "must be text or an http(s) link"})
        evidence = evidence.strip()
        try:
            validate_evidence(evidence)
        except ValidationError as error:
            raise ValidationError({"evidence": error.messages}) from None
    request = item.request
    authorize(
        actor,
        actions.APPROVAL_CHECKLIST_SET,
        request.environment,
        target=request_target(request),
        requested={"item": item.pk, "checked": checked, "evidence": evidence},
        reason=reason,
    )
    request = request_lock(request)
    now = timezone.now()
    ensure_open(request, now=now)
    item = ChecklistItem.objects.get(pk=item.pk, request=request)
    before = {"checked": item.checked, "evidence": item.evidence}
    if evidence is not None:
        item.evidence = evidence
    if checked is not None and checked != item.checked:
        item.checked = checked
        item.checked_by, item.checked_at = (actor, now) if checked else (None, None)
    if item.checked and item.evidence_required and not item.evidence:
        raise ValidationError({"evidence": f"“{item.text}” needs evidence: text or a link."})
    after = {"checked": item.checked, "evidence": item.evidence}
    if after == before:
        return item
    item.full_clean(exclude=["request", "checked_by"])
    item.save()
    new_revision(request, actor=actor, now=now)
    audit_record(
        actor=actor,
        action=actions.APPROVAL_CHECKLIST_SET.name,
        environment=request.environment,
        target=request_target(request),
        before={"item": item.pk, "text": item.text, **before},
        after={
            "item": item.pk,
            "text": item.text,
            **after,
            "revision": request.revision,
            "preview_hash": request.preview_hash,
        },
        reason=reason,
    )
    return item


@transaction.atomic
def approval_cancel(*, actor: User, request: ApprovalRequest, reason: str = "") -> ApprovalRequest:
    """The requester withdraws a request, or a release manager closes it."""
    authorize(
        actor,
        actions.APPROVAL_CANCEL,
        request.environment,
        target=request_target(request),
        requested={"request": request.pk},
        reason=reason,
    )
    request = request_lock(request)
    if (
        actor.pk != request.requested_by_id
        and not decide(actor, actions.APPROVAL_DECIDE, request.environment).allowed
    ):
        raise refuse(
            actor=actor,
            action=actions.APPROVAL_CANCEL.name,
            request=request,
            why="only the requester or a release manager cancels a request",
            reason=reason,
        )
    if request.status not in OPEN_STATUSES:
        raise RequestClosed(f"Request #{request.pk} is {request.get_status_display().lower()}.")
    before = request_view(request)
    request.status, request.closed_at = Status.CANCELLED, timezone.now()
    request.save(update_fields=["status", "closed_at"])
    audit_record(
        actor=actor,
        action=actions.APPROVAL_CANCEL.name,
        environment=request.environment,
        target=request_target(request),
        before=before,
        after=request_view(request),
        reason=reason,
    )
    lifecycle_tell(request, Status.CANCELLED, actor=actor)
    return request
