"""The monitor's automatic actions: each decision carried out in a transaction of its own,
through the release services as the system actor, with the evidence (the gate results as
dicts) in the audit event and a notification to the environment's emails and webhook through
the outbox, written in the same transaction.

A decision names the release as the monitor saw it (status, stage, pending request): it is
carried out only if the release is still so once locked again, so when two workers evaluated
the same release only the first acts, and a human's action in between wins."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import NoReverseMatch, reverse

from flags.services import KillSwitchEngaged
from releasecontrol.models import User
from releasecontrol.notifications.services import notification_enqueue

from . import services
from .models import Gate, GateEvaluation, OnFailure, Release, ReleaseStatus

if TYPE_CHECKING:
    from .monitor import TickReport

logger = logging.getLogger("rollouts.monitor")

ADVANCE = "advance"

# Notification events of the monitor's automatic actions.
EVENT_ROLLED_BACK = "release.rolled_back"
EVENT_HALVED = "release.halved"
EVENT_PAUSED = "release.paused"
EVENT_REVIEW = "release.review_requested"
EVENT_ADVANCED = "release.advanced"
EVENT_COMPLETED = "release.completed"
EVENT_GATE_ALERT = "release.gate_alert"

_SERVICES = {
    OnFailure.ROLLBACK: (services.release_rollback, EVENT_ROLLED_BACK, "rolled back"),
    OnFailure.HALVE: (services.release_halve, EVENT_HALVED, "halved and paused"),
    OnFailure.REVIEW: (services.release_review, EVENT_REVIEW, "paused for review"),
    OnFailure.PAUSE: (services.release_pause, EVENT_PAUSED, "paused"),
    ADVANCE: (services.release_advance, EVENT_ADVANCED, "advanced"),
}


def _fingerprint(release: Release) -> tuple:
    return (
        release.status,
        release.current_stage_index,
        release.stage_entered_at,
        release.pending_request_id,
    )


@dataclass(frozen=True)
class Decision:
    release_id: int
    fingerprint: tuple
    action: str  # an OnFailure value or "advance"
    reason: str
    evidence: list[dict[str, Any]]
    evaluations: list[GateEvaluation] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        release: Release,
        action: str,
        *,
        reason: str,
        evidence: list[dict[str, Any]],
        evaluations: list[GateEvaluation] = (),  # type: ignore[assignment]
    ) -> Decision:
        return cls(release.pk, _fingerprint(release), action, reason, evidence, list(evaluations))


def evidence_of(gate: Gate, result: Any) -> dict[str, Any]:
    """A gate result as the audit event and the notification carry it."""
    return {
        "gate": gate.name,
        "metric": gate.metric,
        "aggregate": gate.aggregate,
        "comparator": gate.comparator,
        "window_seconds": gate.window_seconds,
        "failures_to_act": gate.failures_to_act,
        "consecutive_failures": gate.consecutive_failures,
        "consecutive_errors": gate.consecutive_errors,
        "on_failure": gate.on_failure,
        "advisory": gate.advisory,
        **result.as_dict(),
    }


def release_link(release: Release) -> str:
    try:
        return reverse("rollouts:release_detail", args=[release.pk])
    except NoReverseMatch:
        return ""


def _notify(release: Release, event: str, headline: str, reason: str, evidence: list) -> None:
    environment = release.environment
    stage = release.current_stage_index
    lines = [
        f"Release {release} in {environment.name} {headline}.",
        "",
        "By: the gate monitor (the system actor), automatically.",
        f"Why: {reason}",
        f"Status: {release.get_status_display()}"
        + (f", stage {stage + 1}" if stage is not None else ""),
    ]
    for item in evidence:
        if item.get("detail"):
            lines.append(f"- {item.get('gate', 'evidence')}: {item['detail']}")
    notification_enqueue(
        environment=environment,
        event=event,
        subject=f"[{environment.slug}] Release {release} {headline}",
        text="\n".join(lines),
        payload={
            "release": {
                "id": release.pk,
                "name": release.name,
                "version": release.version,
                "environment": environment.slug,
                "status": release.status,
                "stage_index": stage,
            },
            "actor": User.system().username,
            "automatic": True,
            "reason": reason,
            "evidence": evidence,
        },
        link=release_link(release),
    )


def _carry_out(decision: Decision) -> str | None:
    """The action in one transaction, or None when the release changed since it was seen."""
    with transaction.atomic():
        release = (
            Release.objects.select_related("environment")
            .select_for_update(of=("self",))
            .get(pk=decision.release_id)
        )
        if _fingerprint(release) != decision.fingerprint:
            return None
        service, event, headline = _SERVICES[decision.action]
        stage_before = release.current_stage_index
        release = service(
            actor=User.system(),
            release=release,
            reason=decision.reason,
            evidence=decision.evidence,
        )
        if decision.action == ADVANCE:
            if release.status == ReleaseStatus.COMPLETED:
                event, headline = EVENT_COMPLETED, "completed"
            elif release.current_stage_index == stage_before:
                # The next stage needs a go: the service opened a release.advance request,
                # and the approvals app tells the approvers about it.
                return "advance requested"
        ids = [evaluation.pk for evaluation in decision.evaluations]
        if ids:
            GateEvaluation.objects.filter(pk__in=ids).update(action=decision.action)
        _notify(release, event, headline, decision.reason, decision.evidence)
    return decision.action


def decision_carry_out(decision: Decision, report: TickReport) -> None:
    """Carry a decision out; a refusal is reported, never raised, so one release cannot stop
    the monitor from acting on the others. An advance that an engaged kill switch or the
    policy refuses pauses the release instead (automation never pushes exposure up)."""
    try:
        done = _carry_out(decision)
    except (KillSwitchEngaged, PermissionDenied) as exc:
        report.failed.append((decision.release_id, decision.action, str(exc)))
        if decision.action != ADVANCE:
            logger.error("gate_monitor.action_refused", extra=_log(decision, exc))
            return
        paused = Decision(
            decision.release_id,
            decision.fingerprint,
            OnFailure.PAUSE,
            f"Could not advance: {exc}",
            decision.evidence,
        )
        try:
            done = _carry_out(paused)
        except Exception as again:
            logger.exception("gate_monitor.action_failed", extra=_log(paused, again))
            return
        if done:
            report.actions.append((decision.release_id, OnFailure.PAUSE))
        return
    except Exception as exc:
        report.failed.append((decision.release_id, decision.action, str(exc)))
        logger.exception("gate_monitor.action_failed", extra=_log(decision, exc))
        return
    if done is None:
        report.skipped.append(decision.release_id)
    else:
        report.actions.append((decision.release_id, done))


def _log(decision: Decision, exc: BaseException) -> dict[str, Any]:
    return {
        "event": "gate_monitor.action",
        "release": decision.release_id,
        "action": decision.action,
        "error": str(exc),
    }


def gate_alert_notify(gate: Gate, result: Any, evaluation: GateEvaluation | None) -> None:
    """An advisory gate's breach: told, recorded on its evaluation, never acted on."""
    release = gate.release
    if evaluation is not None:
        GateEvaluation.objects.filter(pk=evaluation.pk).update(action="advisory alert")
    evidence = [evidence_of(gate, result)]
    reason = f"Advisory gate {gate.name} failed: {result.detail}"
    _notify(release, EVENT_GATE_ALERT, "has a failing advisory gate", reason, evidence)
