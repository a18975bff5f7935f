"""Who may take each release step, where, from which status: the whole table.

Outcomes: ok; 403 (the policy refuses: recorded as denied); 409 (the status does not allow
it); A (409 approval_required: the answer names the request to make; for one the policy
refuses, only where the status allows the step and they may ask for it there)."""

import pytest
from django.core.exceptions import PermissionDenied

from flags.guards import ApprovalRequired
from releasecontrol.models import AuditEvent, User
from rollouts import services
from rollouts.driving import ReleaseStateConflict
from rollouts.models import Release, ReleaseFlag

ACTORS = ("release_manager", "developer", "agent", "auditor", "system")
STEPS = {
    "start": services.release_start,
    "advance": services.release_advance,
    "pause": services.release_pause,
    "resume": services.release_resume,
    "rollback": services.release_rollback,
}
#   (step, environment, status):          rm     dev    agent  audit  system
TABLE = {
    ("start", "staging", "draft"): ("ok", "ok", "ok", "403", "403"),
    ("start", "staging", "in_progress"): ("409", "409", "409", "403", "403"),
    ("start", "staging", "paused"): ("409", "409", "409", "403", "403"),
    ("start", "production", "draft"): ("A", "A", "A", "403", "403"),
    ("start", "production", "in_progress"): ("409", "403", "403", "403", "403"),
    ("start", "production", "paused"): ("409", "403", "403", "403", "403"),
    # The system advances along the plan: as started (staging), as approved (production).
    ("advance", "staging", "draft"): ("409", "409", "409", "403", "403"),
    ("advance", "staging", "in_progress"): ("ok", "ok", "ok", "403", "ok"),
    ("advance", "staging", "paused"): ("409", "409", "409", "403", "409"),
    ("advance", "production", "draft"): ("409", "403", "403", "403", "403"),
    ("advance", "production", "in_progress"): ("ok", "A", "A", "403", "ok"),
    ("advance", "production", "paused"): ("409", "403", "403", "403", "409"),
    # Pausing and rolling back reduce exposure: automation always may.
    ("pause", "staging", "draft"): ("409", "409", "409", "403", "409"),
    ("pause", "staging", "in_progress"): ("ok", "ok", "ok", "403", "ok"),
    ("pause", "staging", "paused"): ("ok", "ok", "ok", "403", "ok"),
    ("pause", "production", "draft"): ("409", "403", "403", "403", "409"),
    ("pause", "production", "in_progress"): ("ok", "403", "403", "403", "ok"),
    ("pause", "production", "paused"): ("ok", "403", "403", "403", "ok"),
    # Resuming increases exposure again: people only; in production through a request.
    ("resume", "staging", "draft"): ("409", "409", "409", "403", "403"),
    ("resume", "staging", "in_progress"): ("409", "409", "409", "403", "403"),
    ("resume", "staging", "paused"): ("ok", "ok", "ok", "403", "403"),
    ("resume", "production", "draft"): ("409", "403", "403", "403", "403"),
    ("resume", "production", "in_progress"): ("409", "403", "403", "403", "403"),
    ("resume", "production", "paused"): ("A", "A", "A", "403", "403"),
    ("rollback", "staging", "draft"): ("409", "409", "409", "403", "409"),
    ("rollback", "staging", "in_progress"): ("ok", "ok", "ok", "403", "ok"),
    ("rollback", "staging", "paused"): ("ok", "ok", "ok", "403", "ok"),
    ("rollback", "production", "draft"): ("409", "403", "403", "403", "409"),
    ("rollback", "production", "in_progress"): ("ok", "403", "403", "403", "ok"),
    ("rollback", "production", "paused"): ("ok", "403", "403", "403", "ok"),
}


def _in_status(release: Release, status: str, *, started_by: User, approver: User) -> Release:
    """Put a prepared release in a status (rows written directly: the setup, not the test)."""
    if status != "draft":
        Release.objects.filter(pk=release.pk).update(
            status=status,
            current_stage_index=0,
            started_by=started_by,
            approved_by=approver if release.environment.is_production else None,
        )
        ReleaseFlag.objects.filter(release=release).update(live=True)
    return Release.objects.get(pk=release.pk)


def _outcome(step, actor, release) -> str:
    try:
        STEPS[step](actor=actor, release=release, reason="table")
    except ApprovalRequired:
        return "A"
    except ReleaseStateConflict:
        return "409"
    except PermissionDenied:
        return "403"
    return "ok"


@pytest.mark.parametrize(("step", "slug", "status"), list(TABLE))
def test_release_steps_table__every_actor__matches_the_table(
    request, step, slug, status, environments, make_release, release_manager, developer
):
    actors = {name: request.getfixturevalue(name) for name in ACTORS[:-1]}
    actors["system"] = User.system()
    wrong = []
    for column, name in enumerate(ACTORS):
        release = make_release(release_manager, environments[slug], name=f"r-{name}")
        release = _in_status(release, status, started_by=developer, approver=release_manager)
        denials = AuditEvent.objects.filter(outcome="denied").count()
        got = _outcome(step, actors[name], release)
        expected = TABLE[(step, slug, status)][column]
        if got != expected:
            wrong.append(f"{name}: expected {expected}, got {got}")
        if got in ("403", "A") and AuditEvent.objects.filter(outcome="denied").count() == denials:
            wrong.append(f"{name}: refused without a denied audit event")
        # Free the flag for the next actor's release.
        ReleaseFlag.objects.filter(release=release).update(live=False)
    assert wrong == []
