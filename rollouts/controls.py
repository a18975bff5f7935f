"""The controls on a release's page (start, advance, pause, resume, roll back), each saying
before it is pressed whether this person may press it and, if not, why and what to do
instead (ask for approval, open the pending request).

These are hints for the page, read from the same facts the services decide on (the release's
status, its plan, the policy, the environment's approvals); the services decide, and a
refusal they record comes back in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from flags.guards import may_request, request_to_make
from flags.models import FlagState
from flags.presenters import request_url_of, state_summary
from flags.writes import state_value
from releasecontrol.models import User
from releasecontrol.policy import Action, decide

from . import actions, services
from .models import LIVE_STATUSES, Release, ReleaseStatus, Stage
from .presenters import current_stage, stage_summary


@dataclass(frozen=True)
class ControlStep:
    name: str
    label: str
    action: Action
    service: Callable[..., Release]
    danger: bool = False


STEPS: dict[str, ControlStep] = {
    step.name: step
    for step in (
        ControlStep("start", "Start", actions.RELEASE_START, services.release_start),
        ControlStep("advance", "Advance", actions.RELEASE_ADVANCE, services.release_advance),
        ControlStep("pause", "Pause", actions.RELEASE_PAUSE, services.release_pause),
        ControlStep("resume", "Resume", actions.RELEASE_RESUME, services.release_resume),
        ControlStep(
            "rollback", "Roll back", actions.RELEASE_ROLLBACK, services.release_rollback, True
        ),
    )
}


@dataclass
class Control:
    step: ControlStep
    may: bool
    # What pressing does ("enters canary: percentage 5%"), or why not.
    says: str
    # Where to go instead: the prefilled approval request, or the pending request.
    link_url: str = ""
    link_text: str = ""
    turns_off: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def name(self) -> str:
        return self.step.name


def _next_stage(release: Release) -> Stage | None:
    index = (release.current_stage_index or 0) + 1
    return next((s for s in release.stages.all() if s.index == index), None)


def _state_refusal(step: str, release: Release) -> str:
    status = release.get_status_display().lower()
    needs = {
        "start": "a draft",
        "advance": "in progress",
        "pause": "in progress",
        "resume": "paused",
        "rollback": "live",
    }[step]
    return f"Not now: this release is {status}; {step} needs it {needs}."


def _approval_link(user: User, release: Release, action: str, parameters: dict) -> tuple:
    """(why, link url, link text) for a step that needs an approved request."""
    environment = release.environment
    why = (
        f"Needs an approved {action} request: {environment.name} asks for "
        f"{environment.approvals_required} go(s) from people other than the requester."
    )
    if release.pending_request_id:
        url = reverse("approvals:detail", args=[release.pending_request_id])
        return why, url, f"Open request #{release.pending_request_id}"
    if may_request(user, environment):
        return (
            why,
            request_url_of(request_to_make(action, environment, parameters)),
            ("Request approval"),
        )
    return why + " You may not ask for one here.", "", ""


def _turns_off(release: Release, states: dict[int, FlagState]) -> list[str]:
    """Exactly what a rollback turns off: each flag of the release, as it is now."""
    lines = []
    for link in release.release_flags.all():
        state = states.get(link.flag_id)
        now = state_summary(state_value(state)) if state else "off"
        lines.append(f"{link.flag.key} in {release.environment.slug}: {now} → off")
    return lines


def _what_it_does(step: str, release: Release) -> str:
    stage = current_stage(release)
    if step == "start":
        first = next(iter(release.stages.all()), None)
        return f"Enters {first.name}: {stage_summary(first)}." if first else "Starts the plan."
    if step == "advance":
        following = _next_stage(release)
        if following is None:
            return "Completes the release: its flags stay as the last stage set them."
        return f"Enters {following.name}: {stage_summary(following)}."
    if step == "pause":
        return "Holds the release where it is; its flags keep their state."
    if step == "resume":
        where = f" ({stage.name}: {stage_summary(stage)})" if stage else ""
        return f"Sets the current stage again{where} and restarts its hold."
    return "Turns every flag of the release off and ends it; it does not resume."


def control_of(
    user: User, release: Release, step: ControlStep, states: dict[int, FlagState]
) -> Control:
    status = release.status
    allowed_states = {
        "start": (ReleaseStatus.DRAFT, ReleaseStatus.AWAITING_APPROVAL),
        "advance": (ReleaseStatus.IN_PROGRESS,),
        "pause": (ReleaseStatus.IN_PROGRESS,),
        "resume": (ReleaseStatus.PAUSED,),
        "rollback": LIVE_STATUSES,
    }[step.name]
    control = Control(step, True, _what_it_does(step.name, release))
    if step.name == "rollback":
        control.turns_off = _turns_off(release, states)
    if status not in allowed_states:
        control.may, control.says = False, _state_refusal(step.name, release)
        return control
    decision = decide(user, step.action, release.environment)
    if not decision.allowed:
        control.may, control.says = False, f"You may not: {decision.why}."
    needs = services.needs_request(release)
    parameters: dict[str, Any] = {"release": release.pk}
    if step.name == "advance":
        following = _next_stage(release)
        needs = needs and following is not None and following.needs_go
        if following is not None:
            parameters["stage"] = following.index
    elif step.name not in ("start", "resume"):
        needs = False
    if needs:
        why, control.link_url, control.link_text = _approval_link(
            user, release, step.action.name, parameters
        )
        control.may, control.says = False, why
    return control


def controls_for(user: User, release: Release, states: dict[int, FlagState]) -> list[Control]:
    controls = []
    for step in STEPS.values():
        control = control_of(user, release, step, states)
        control.url = reverse("rollouts:control", args=[release.pk, step.name])
        controls.append(control)
    return controls
