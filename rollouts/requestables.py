"""The release steps people ask approval for (releasecontrol.requestable), and the release's
side of a request's life:

- `release.start` `{"release"}`: every flag's state before and after the first stage, with
  the plan, the gates and the release's revision (an edit makes the approval drift);
- `release.advance` `{"release", "stage"}`: the states the next stage sets;
- `release.resume` `{"release"}`: the states the current stage sets again.

Opening a start request puts the release in `awaiting_approval` (its flags count as driven);
a start request rejected, expired or cancelled sends it back to `draft`; a closed go or
review request is no longer pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from flags.models import FlagState
from flags.rules import StateValue, reduces_exposure
from flags.writes import state_value
from releasecontrol import requestable
from releasecontrol.audit import audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize
from releasecontrol.requestable import VerifiedApproval

from . import actions, services
from .driving import (
    event_add,
    flags_live_set,
    release_lock,
    release_target,
    release_view,
    stage_of,
    step_of,
)
from .editing import release_definition
from .models import Release, ReleaseEventKind, ReleaseStatus


def _release_id(raw: Mapping[str, Any], errors: dict[str, str]) -> int:
    pk = raw.get("release")
    if (
        isinstance(pk, bool)
        or not isinstance(pk, int)
        or not Release.objects.filter(pk=pk).exists()
    ):
        errors["parameters.release"] = "the id of an existing release"
        return 0
    return pk


def _unknown(raw: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    return {
        f"parameters.{name}": f"unknown parameter (send only {', '.join(allowed)})"
        for name in raw
        if name not in allowed
    }


def release_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors = _unknown(raw, ("release",))
    pk = _release_id(raw, errors)
    if errors:
        raise ValidationError(errors)
    return {"release": pk}


def advance_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    errors = _unknown(raw, ("release", "stage"))
    pk = _release_id(raw, errors)
    stage = raw.get("stage")
    if isinstance(stage, bool) or not isinstance(stage, int) or stage < 1:
        errors["parameters.stage"] = "the index of the stage to enter (1 or more)"
    elif pk and not Release.objects.get(pk=pk).stages.filter(index=stage).exists():
        errors["parameters.stage"] = f"release {pk} has no stage {stage}"
    if errors:
        raise ValidationError(errors)
    return {"release": pk, "stage": stage}


def _preview(release: Release, stage_index: int) -> dict[str, Any]:
    stage = stage_of(release, stage_index)
    step = step_of(release, stage)
    after = StateValue.of(step.mode, step.percentage, step.allowlist)
    states = {
        s.flag_id: s
        for s in FlagState.objects.filter(
            environment=release.environment, flag__in=release.release_flags.values("flag")
        )
    }
    items: list[dict[str, Any]] = [
        {
            "type": "release",
            "id": str(release.pk),
            "name": str(release),
            "before": {"revision": release.revision, "stage_index": release.current_stage_index},
            "after": {"stage_index": stage_index, "stage": stage.name},
        }
    ]
    reduces = True
    for link in release.release_flags.select_related("flag").order_by("flag__key"):
        state = states.get(link.flag_id)
        before = state_value(state) if state else StateValue()
        version = state.version if state else 1
        reduces = reduces and reduces_exposure(before, after)
        items.append(
            {
                "type": "flag_state",
                "id": f"{link.flag.key}@{release.environment.slug}",
                "name": f"{link.flag.key} in {release.environment.slug}",
                "before": {**before.as_dict(), "version": version},
                "after": {**after.as_dict(), "version": version + int(after != before)},
            }
        )
    definition = release_definition(release)
    return {
        "items": items,
        "reduces_exposure": reduces,
        "plan": definition["stages"],
        "gates": definition["gates"],
        "revision": release.revision,
    }


def start_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    return _preview(_release_in(environment, parameters), 0)


def advance_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    return _preview(_release_in(environment, parameters), parameters["stage"])


def resume_preview(environment: Environment, parameters: dict[str, Any]) -> dict[str, Any]:
    release = _release_in(environment, parameters)
    return _preview(release, release.current_stage_index or 0)


def _release_in(environment: Environment, parameters: dict[str, Any]) -> Release:
    release = Release.objects.select_related("environment").get(pk=parameters["release"])
    if release.environment_id != environment.pk:
        raise ValidationError(
            {"parameters.release": f"release {release.pk} is in {release.environment.slug}"}
        )
    return release


def _summary(release: Release) -> dict[str, Any]:
    return release_view(release)


def start_execute(
    *,
    actor: User,
    environment: Environment,
    parameters: dict,
    approval: VerifiedApproval,
    reason: str,
) -> dict:
    release = _release_in(environment, parameters)
    return _summary(
        services.release_start(actor=actor, release=release, reason=reason, approval=approval)
    )


def advance_execute(
    *,
    actor: User,
    environment: Environment,
    parameters: dict,
    approval: VerifiedApproval,
    reason: str,
) -> dict:
    release = _release_in(environment, parameters)
    if (release.current_stage_index or 0) + 1 != parameters["stage"]:
        raise ValidationError(
            {"parameters.stage": f"release {release.pk} is at stage {release.current_stage_index}"}
        )
    return _summary(
        services.release_advance(actor=actor, release=release, reason=reason, approval=approval)
    )


def resume_execute(
    *,
    actor: User,
    environment: Environment,
    parameters: dict,
    approval: VerifiedApproval,
    reason: str,
) -> dict:
    release = _release_in(environment, parameters)
    return _summary(
        services.release_resume(actor=actor, release=release, reason=reason, approval=approval)
    )


# --- The release's side of a request's life ----------------------------------------------

RELEASE_ACTIONS = (
    actions.RELEASE_START.name,
    actions.RELEASE_ADVANCE.name,
    actions.RELEASE_RESUME.name,
)


@transaction.atomic
def release_request_changed(
    *,
    action: str,
    request_id: int,
    environment: Environment,
    parameters: dict,
    event: str,
    actor: User,
) -> None:
    """A start request opened: the release awaits its approval (and holds its flags). A start
    request closed unexecuted: back to draft. A go or review request closed: not pending."""
    if action not in RELEASE_ACTIONS or not isinstance(parameters.get("release"), int):
        return
    release = Release.objects.filter(pk=parameters["release"]).first()
    if release is None:
        return
    release = release_lock(release)
    if action != actions.RELEASE_START.name:
        if event != requestable.REQUEST_OPENED and release.pending_request_id == request_id:
            release.pending_request_id = None
            release.save(update_fields=["pending_request_id"])
        return
    if event == requestable.REQUEST_OPENED and release.status == ReleaseStatus.DRAFT:
        before = release_view(release)
        flags_live_set(release, True)
        release.status, release.pending_request_id = ReleaseStatus.AWAITING_APPROVAL, request_id
        release.save(update_fields=["status", "pending_request_id"])
        event_add(
            release, ReleaseEventKind.START_REQUESTED, actor=actor, reason=f"request #{request_id}"
        )
        _record(actor, actions.RELEASE_START, release, before, request_id, event)
    elif (
        event in requestable.REQUEST_CLOSED
        and release.status == ReleaseStatus.AWAITING_APPROVAL
        and release.pending_request_id == request_id
    ):
        system = User.system()
        why = f"start request #{request_id} {event}"
        authorize(
            system, actions.RELEASE_RETURN_TO_DRAFT, environment, target=release_target(release)
        )
        before = release_view(release)
        flags_live_set(release, False)
        release.status, release.pending_request_id = ReleaseStatus.DRAFT, None
        release.save(update_fields=["status", "pending_request_id"])
        event_add(release, ReleaseEventKind.RETURNED_TO_DRAFT, actor=system, reason=why)
        _record(system, actions.RELEASE_RETURN_TO_DRAFT, release, before, request_id, event)


def _record(actor, action, release, before, request_id, event) -> None:
    audit_record(
        actor=actor,
        action=action.name if action != actions.RELEASE_START else actions.START_REQUESTED,
        environment=release.environment,
        target=release_target(release),
        before=before,
        after={**release_view(release), "request": request_id, "request_event": event},
        reason=f"request #{request_id} {event}",
    )


def requestables_register() -> None:
    """Called from RolloutsConfig.ready()."""
    requestable.register(
        name=actions.RELEASE_START.name,
        parameters=release_parameters,
        preview=start_preview,
        executor=start_execute,
        schedulable=True,
    )
    requestable.register(
        name=actions.RELEASE_ADVANCE.name,
        parameters=advance_parameters,
        preview=advance_preview,
        executor=advance_execute,
        schedulable=True,
    )
    requestable.register(
        name=actions.RELEASE_RESUME.name,
        parameters=release_parameters,
        preview=resume_preview,
        executor=resume_execute,
        schedulable=True,
    )
    requestable.request_listener_add(release_request_changed)
