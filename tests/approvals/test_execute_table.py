"""Who may execute an approved request, as a table written by hand from DESIGN.md
("Execution is a separate step").

Each row: the executor, the requester, the environment, the request's state -> the answer
and the request's status after; an executed request changed the flag, a refused one did not.
"""

import pytest
from django.core.exceptions import PermissionDenied

from approvals.execution import approval_execute
from approvals.models import PostReview
from releasecontrol.errors import Conflict

from .helpers import arrange, flag_state, fresh, last_event

OK, REFUSED, CONFLICT = "ok", 403, 409
P, S = "production", "staging"

TABLE = [
    # executor    requester  env state                         -> answer  status after
    ("rita", "dev", P, "approved", OK, "executed"),
    ("omar", "dev", P, "approved", OK, "executed"),  # on-call holds change_flags
    ("root", "dev", P, "approved", OK, "executed"),
    ("rhea", "dev", P, "approved", OK, "executed"),  # the approver may execute too
    # the requester may, once others approved, with the action's own permission there
    ("rita", "rita", P, "approved", OK, "executed"),
    ("dev", "dev", S, "approved", OK, "executed"),
    ("dev", "dev", P, "approved", REFUSED, "approved"),  # no change_flags in production
    # never an agent, in any environment, whatever role it holds
    ("ci-bot", "ci-bot", S, "approved", REFUSED, "approved"),
    ("ci-bot", "dev", P, "approved", REFUSED, "approved"),
    ("rogue-bot", "dev", P, "approved", REFUSED, "approved"),
    # without the action's permission
    ("audrey", "dev", P, "approved", REFUSED, "approved"),
    ("otto", "dev", P, "approved", REFUSED, "approved"),
    # the system actor only for a schedulable action inside its window (none here)
    ("system", "dev", P, "approved", CONFLICT, "approved"),
    # only an approved, unexpired request
    ("rita", "dev", P, "pending", CONFLICT, "pending"),
    ("rita", "dev", P, "incomplete", CONFLICT, "pending"),
    ("rita", "dev", P, "changes_requested", CONFLICT, "changes_requested"),
    ("rita", "dev", P, "rejected", CONFLICT, "rejected"),
    ("rita", "dev", P, "cancelled", CONFLICT, "cancelled"),
    ("rita", "dev", P, "expired", CONFLICT, "expired"),
    ("rita", "dev", P, "approved_then_time_passed", CONFLICT, "approved"),
    ("rita", "dev", P, "executed", CONFLICT, "executed"),
    # an emergency with its extra go executes, and opens a post-review
    ("rita", "dev", P, "emergency_approved", OK, "executed"),
    ("rita", "dev", P, "emergency_one_go", CONFLICT, "pending"),
]
ERRORS = {REFUSED: PermissionDenied, CONFLICT: Conflict}


@pytest.mark.parametrize(
    ("executor", "requester", "slug", "state", "answer", "status_after"),
    TABLE,
    ids=[f"{r[0]}-on-{r[1]}s-{r[3]}-{r[2]}" for r in TABLE],
)
def test_approval_execute__table__answers_and_status(
    world, clock, executor, requester, slug, state, answer, status_after
):
    people = world
    request = arrange(state, people, people[requester], slug, clock)
    state_before = flag_state(slug)

    def call():
        return approval_execute(actor=people[executor], request=fresh(request), reason="go time")

    if answer == OK:
        call()
        after = flag_state(slug)
        assert (after.mode, after.percentage, after.version) == (
            "percentage",
            10,
            state_before.version + 1,
        )
        event = last_event("approval.execute", outcome="ok")
        assert event.actor_name == executor
        assert event.after["approval"]["request"] == request.pk
        assert event.after["approval"]["approvers"] == [
            d.decider.username for d in fresh(request).decisions.filter(void=False)
        ]
        assert PostReview.objects.filter(request=request).exists() == (
            state == "emergency_approved"
        )
    else:
        with pytest.raises(ERRORS[answer]):
            call()
        assert flag_state(slug).version == state_before.version
    assert fresh(request).status == status_after
