"""Refusals the approvals services make beyond the policy (the requester, an editor, an
agent executing) leave a committed `denied` event, like the policy's own."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied

from approvals.execution import approval_execute
from approvals.services import approval_request_update
from releasecontrol.models import AuditEvent

from .helpers import complete_checklist, fresh, go, request_change

pytestmark = pytest.mark.django_db(transaction=True)


def denied(action):
    return list(
        AuditEvent.objects.filter(action=action, outcome="denied").values_list(
            "actor_name", "target_id", "after__refused"
        )
    )


def test_approval_decide__requester_editor_and_agent__each_refusal_recorded(world):
    request = complete_checklist(request_change(world["rita"]), world["rita"])
    approval_request_update(actor=world["ravi"], request=fresh(request), impact="Checkout")

    for who in ("rita", "ravi", "ci-bot"):
        with pytest.raises(PermissionDenied):
            go(request, world[who])

    refusals = {name: (target, why) for name, target, why in denied("approval.decide")}
    assert sorted(refusals) == ["ci-bot", "ravi", "rita"]
    assert {target for target, _ in refusals.values()} == {str(request.pk)}
    assert "requester" in refusals["rita"][1]
    assert "edited" in refusals["ravi"][1]
    assert "never approve" in refusals["ci-bot"][1]
    assert fresh(request).status == "pending"


def test_approval_execute__agent__refusal_recorded(world):
    request = go(complete_checklist(request_change(world["dev"]), world["dev"]), world["rhea"])

    with pytest.raises(PermissionDenied):
        approval_execute(actor=world["ci-bot"], request=fresh(request), reason="ship it")

    assert denied("approval.execute") == [
        ("ci-bot", str(request.pk), "agent accounts never execute a request; a person does")
    ]
    assert fresh(request).status == "approved"


def test_system_actor__decides_creates_blackouts_runs_unschedulable__each_refusal_recorded(world):
    from approvals.blackouts import blackout_window_create

    from .conftest import START
    from .requestables import FLAG_CHANGE_MANUAL

    system = world["system"]
    manual = go(
        complete_checklist(
            request_change(
                world["dev"],
                action=FLAG_CHANGE_MANUAL,
                window_start=START,
                window_end=START + dt.timedelta(hours=1),
            ),
            world["dev"],
        ),
        world["rhea"],
    )

    with pytest.raises(PermissionDenied):
        request_change(system)
    with pytest.raises(PermissionDenied):
        blackout_window_create(
            actor=system,
            environment=manual.environment,
            starts_at=START,
            ends_at=START + dt.timedelta(days=1),
            reason="automation",
        )
    with pytest.raises(PermissionDenied, match="never on a schedule"):
        approval_execute(actor=system, request=fresh(manual), reason="cron")

    assert denied("approval.request.create")[0][0] == "system"
    assert denied("blackout.create")[0][0] == "system"
    assert denied("approval.execute") == [
        (
            "system",
            str(manual.pk),
            f"{FLAG_CHANGE_MANUAL} is executed by a person, never on a schedule",
        )
    ]
    assert fresh(manual).status == "approved"
