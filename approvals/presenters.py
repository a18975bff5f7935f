"""What the approvals pages show: the preview as a readable diff, what each action would do
and whether this person may take it now (asked of the services' own checks), revisions and
history rows from the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from releasecontrol import selectors as core_selectors
from releasecontrol.errors import Conflict
from releasecontrol.models import AuditEvent, User
from releasecontrol.policy import decide

from . import actions
from .blackouts import blackout_open
from .decisions import approval_decide_refusal, valid_gos
from .execution import approval_execute_refusal
from .models import ApprovalRequest, ChecklistItem, DecisionKind
from .revisions import ensure_open
from .selectors import approval_awaiting_count_for_user

NAV_CACHE_SECONDS = 60

# --- Who may decide where (the nav badge and the inbox) ------------------------------------


def decide_environment_ids(user: User) -> frozenset[int]:
    """The environments where the policy lets this person decide requests. Cached a minute
    (as the Audit link is): a role change shows in the badge within a minute; the pages and
    services check for real."""
    if not user.is_authenticated or not user.is_human:
        return frozenset()
    key = f"approvals-decide:{user.pk}:{user.date_joined.timestamp()}"
    ids = cache.get(key)
    if ids is None:
        ids = frozenset(
            env.pk
            for env in core_selectors.environment_list()
            if decide(user, actions.APPROVAL_DECIDE, env).allowed
        )
        cache.set(key, ids, NAV_CACHE_SECONDS)
    return ids


def awaiting_count(request: HttpRequest) -> int:
    """The badge's number: one query (none for who decides nowhere), once per request."""
    cached = getattr(request, "_approvals_awaiting", None)
    if cached is None:
        user = request.user
        ids = decide_environment_ids(user)
        cached = approval_awaiting_count_for_user(user, decide_environment_ids=ids) if ids else 0
        request._approvals_awaiting = cached
    return cached


# --- The preview as a diff ------------------------------------------------------------------


def value_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {value_text(v)}" for k, v in sorted(value.items()))
    return str(value)


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: str
    after: str
    changed: bool


@dataclass(frozen=True)
class PreviewItem:
    kind: str
    name: str
    version: Any
    fields: list[FieldChange]

    @property
    def changes(self) -> list[FieldChange]:
        return [f for f in self.fields if f.changed]

    @property
    def summary(self) -> str:
        """`new-checkout: mode off → percentage, percentage 0 → 10`"""
        changes = ", ".join(f"{f.name} {f.before} → {f.after}" for f in self.changes)
        return f"{self.name}: {changes or 'no change'}"


def preview_items(preview: dict[str, Any]) -> list[PreviewItem]:
    items = []
    for item in preview.get("items", []):
        before = dict(item.get("before") or {})
        after = dict(item.get("after") or {})
        version = before.pop("version", None)
        after.pop("version", None)
        names = sorted({*before, *after})  # stored as jsonb: its key order is not ours
        items.append(
            PreviewItem(
                kind=str(item.get("type", "")).replace("_", " "),
                name=str(item.get("name") or item.get("id")),
                version=version,
                fields=[
                    FieldChange(
                        name,
                        value_text(before.get(name)),
                        value_text(after.get(name)),
                        before.get(name) != after.get(name),
                    )
                    for name in names
                ],
            )
        )
    return items


# --- What each action would do, and whether this person may take it now ----------------------


@dataclass
class Choice:
    """One of go / adjust / no-go / execute: allowed or why not, and what it would do."""

    name: str
    label: str
    allowed: bool
    why: str
    confirm: str
    button: str
    danger: bool = False


def _exposure(preview: dict[str, Any]) -> str:
    if preview.get("reduces_exposure"):
        return "This reduces exposure."
    return "This increases exposure."


def decision_choices(
    user: User, request: ApprovalRequest, items: list[PreviewItem], *, now: dt.datetime
) -> list[Choice]:
    what = f"{request.action} in {request.environment.name}"
    changes = "; ".join(i.summary for i in items) or "nothing"
    gos = len(valid_gos(request))
    needed = request.approvals_required
    if gos + 1 >= needed:
        after_go = "the request is then approved and may be executed"
    else:
        after_go = f"{needed - gos - 1} more needed after yours"
    texts = {
        DecisionKind.GO: (
            "yes: go",
            f"Your go on request #{request.pk}, revision {request.revision}: {what}, changing "
            f"{changes}. Go {gos + 1} of {needed}: {after_go}. Nothing changes until someone "
            "executes it.",
            "Confirm go",
            False,
        ),
        DecisionKind.ADJUST: (
            "adjust",
            f"Send request #{request.pk} back to {request.requested_by.username} with your "
            f"comment: it becomes “changes requested”, and every go on it stays as it is "
            "until the next revision voids them.",
            "Ask for changes",
            False,
        ),
        DecisionKind.NO_GO: (
            "no: no-go",
            f"Reject request #{request.pk} ({what}, changing {changes}): it is closed and "
            "will never be executed. This is final.",
            "Reject request",
            True,
        ),
    }
    choices = []
    for kind, (label, confirm, button, danger) in texts.items():
        why = approval_decide_refusal(actor=user, request=request, decision=kind, now=now)
        choices.append(Choice(kind, label, why is None, why or "", confirm, button, danger))
    return choices


def execute_choice(
    user: User, request: ApprovalRequest, items: list[PreviewItem], *, now: dt.datetime
) -> Choice:
    why = approval_execute_refusal(actor=user, request=request, now=now)
    changes = "; ".join(i.summary for i in items) or "nothing"
    confirm = (
        f"Execute request #{request.pk}: {request.action} in {request.environment.name} now, "
        f"changing {changes}. {_exposure(request.preview)}"
    )
    return Choice(
        "execute",
        "Execute",
        why is None,
        why or "",
        confirm,
        f"Execute in {request.environment.name}",
        danger=request.environment.is_production,
    )


def checklist_refusal(user: User, request: ApprovalRequest, *, now: dt.datetime) -> str:
    """Why this person may not check items (the policy, then the request's state), or ""."""
    verdict = decide(user, actions.APPROVAL_CHECKLIST_SET, request.environment)
    if not verdict.allowed:
        return f"Refused: {verdict.why}."
    try:
        ensure_open(request, now=now)
    except Conflict as closed:
        return closed.detail
    return ""


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    required_missing: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def checklist_progress(items: Iterable[ChecklistItem]) -> Progress:
    items = list(items)
    return Progress(
        sum(1 for i in items if i.checked),
        len(items),
        sum(1 for i in items if i.required and not i.checked),
    )


# --- Revisions and history ------------------------------------------------------------------


@dataclass
class RevisionRow:
    revision: int
    at: dt.datetime
    actor: str
    actor_kind: str
    what: str
    preview_hash: str = ""


@dataclass
class HistoryRow:
    event: AuditEvent
    summary: str
    refused: str = ""
    extra: list[str] = field(default_factory=list)


def _event_summary(event: AuditEvent) -> str:
    after = event.after if isinstance(event.after, dict) else {}
    action = event.action
    if action == actions.APPROVAL_REQUEST_CREATE.name:
        return "asked for approval (revision 1)"
    if action == actions.APPROVAL_REQUEST_UPDATE.name:
        changed = ", ".join(after.get("changed") or []) or "the preview, refreshed"
        return f"edited {changed} (revision {after.get('revision')})"
    if action == actions.APPROVAL_CHECKLIST_SET.name:
        state = "checked" if after.get("checked") else "unchecked"
        evidence = f" with evidence “{after['evidence']}”" if after.get("evidence") else ""
        return f"{state} “{after.get('text', '')}”{evidence} (revision {after.get('revision')})"
    if action == actions.APPROVAL_DECIDE.name and "decision" in after:
        label = DecisionKind(after["decision"]).label if after["decision"] in DecisionKind else ""
        return (
            f"{label or after['decision']} on revision {after.get('revision')}: now "
            f"{after.get('status')}, {after.get('approvals')} of "
            f"{after.get('approvals_required')} gos"
        )
    if action == actions.APPROVAL_EXECUTE:
        return "executed"
    if action == actions.APPROVAL_CANCEL.name:
        return "cancelled"
    if action == actions.APPROVAL_EXPIRE.name:
        return "expired"
    if action == actions.APPROVAL_SUSPEND.name:
        return f"suspended: {after.get('suspended_reason', '')}"
    return action


def history_rows(events: Iterable[AuditEvent]) -> list[HistoryRow]:
    rows = []
    for event in events:
        after = event.after if isinstance(event.after, dict) else {}
        refused = str(after.get("refused") or "") if event.outcome == "denied" else ""
        summary = f"refused {event.action}" if refused else _event_summary(event)
        rows.append(HistoryRow(event, summary, refused))
    return rows


REVISING = {
    actions.APPROVAL_REQUEST_CREATE.name,
    actions.APPROVAL_REQUEST_UPDATE.name,
    actions.APPROVAL_CHECKLIST_SET.name,
}


def revision_rows(events: Iterable[AuditEvent]) -> list[RevisionRow]:
    """Each revision, newest first: who made it, when and what it changed."""
    rows = []
    for event in events:
        if event.outcome != "ok" or event.action not in REVISING:
            continue
        after = event.after if isinstance(event.after, dict) else {}
        rows.append(
            RevisionRow(
                revision=int(after.get("revision") or 1),
                at=event.created_at,
                actor=event.actor_name,
                actor_kind=event.actor_kind,
                what=_event_summary(event),
                preview_hash=str(after.get("preview_hash") or ""),
            )
        )
    return rows


# --- Service answers as notices -------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    kind: str  # ok | refused | conflict | error
    title: str
    text: str = ""


def refusal_notice(exc: Exception) -> tuple[Notice, int]:
    """A service's refusal as a notice and its status: 403 refused, 409 conflict, 400."""
    if isinstance(exc, PermissionDenied):
        return Notice("refused", str(exc), "The refusal is recorded in the audit trail."), 403
    if isinstance(exc, Conflict):
        return Notice("conflict", "Not possible right now", exc.detail), 409
    assert isinstance(exc, ValidationError)
    return Notice("error", "Check the form", " ".join(exc.messages)), 400


def blackout_note(request: ApprovalRequest, *, now: dt.datetime) -> str:
    window = blackout_open(request.environment, now)
    return f"{window} ({window.reason})" if window is not None else ""
