"""Who may decide a request, as a table written by hand from DESIGN.md ("Decisions").

Each row: the decider, the requester, the environment, the request's state before the
decision, the decision -> the answer (ok, 403 refused, 409 conflict, 400 bad input) and the
request's status after. Production requires one go (two for an emergency); staging and
development require none, and a request always waits for one.
"""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from approvals.decisions import approval_decide
from approvals.models import Decision
from approvals.services import checklist_item_set
from releasecontrol.errors import Conflict

from .helpers import arrange, fresh, last_event

OK, REFUSED, CONFLICT, INVALID = "ok", 403, 409, 400
P, S, D = "production", "staging", "development"

TABLE = [
    # decider     requester  env state                 decision  -> answer    status after
    ("rita", "dev", P, "pending", "go", OK, "approved"),
    ("rita", "dev", P, "pending", "adjust", OK, "changes_requested"),
    ("rita", "dev", P, "pending", "no_go", OK, "rejected"),
    ("rita", "ci-bot", P, "pending", "go", OK, "approved"),
    ("rita", "ci-bot", S, "pending", "go", OK, "approved"),
    ("rita", "dev", D, "pending", "go", OK, "approved"),
    ("root", "dev", P, "pending", "go", OK, "approved"),  # a superuser who neither asked nor edited
    # the requester never decides, superusers included
    ("rita", "rita", P, "pending", "go", REFUSED, "pending"),
    ("rita", "rita", P, "pending", "no_go", REFUSED, "pending"),
    ("root", "root", P, "pending", "go", REFUSED, "pending"),
    # nor anyone who edited it (here: checked an item), superusers included
    ("rita", "dev", P, "edited_by_decider", "go", REFUSED, "pending"),
    ("root", "dev", P, "edited_by_decider", "go", REFUSED, "pending"),
    # without approve_changes on the environment
    ("omar", "dev", P, "pending", "go", REFUSED, "pending"),
    ("audrey", "dev", P, "pending", "go", REFUSED, "pending"),
    ("dev", "ci-bot", S, "pending", "go", REFUSED, "pending"),
    ("otto", "dev", P, "pending", "go", REFUSED, "pending"),
    # agents never decide, whatever role they hold; nor does automation
    ("ci-bot", "dev", S, "pending", "go", REFUSED, "pending"),
    ("ci-bot", "dev", S, "pending", "no_go", REFUSED, "pending"),
    ("rogue-bot", "dev", P, "pending", "go", REFUSED, "pending"),
    ("system", "dev", P, "pending", "go", REFUSED, "pending"),
    # a go on an incomplete checklist is refused; adjust and no-go are not
    ("rita", "dev", P, "incomplete", "go", INVALID, "pending"),
    ("rita", "dev", P, "incomplete", "adjust", OK, "changes_requested"),
    # the hash of an earlier revision is stale
    ("rita", "dev", P, "stale", "go", CONFLICT, "pending"),
    # once per person per revision; distinct people reach the number required
    ("rhea", "dev", P, "one_go_of_two", "go", CONFLICT, "pending"),
    ("rita", "dev", P, "one_go_of_two", "go", OK, "approved"),
    # an emergency needs one more go
    ("rita", "dev", P, "emergency", "go", OK, "pending"),
    ("rita", "dev", P, "emergency_one_go", "go", OK, "approved"),
    # only a pending request is decided
    ("rita", "dev", P, "changes_requested", "go", CONFLICT, "changes_requested"),
    ("rita", "dev", P, "approved", "go", CONFLICT, "approved"),
    ("rita", "dev", P, "approved", "no_go", CONFLICT, "approved"),
    ("rita", "dev", P, "rejected", "go", CONFLICT, "rejected"),
    ("rita", "dev", P, "executed", "go", CONFLICT, "executed"),
    ("rita", "dev", P, "cancelled", "go", CONFLICT, "cancelled"),
    ("rita", "dev", P, "expired", "go", CONFLICT, "expired"),
]
ERRORS = {REFUSED: PermissionDenied, CONFLICT: Conflict, INVALID: ValidationError}


def rows(table):
    """The system actor exists outside the test's transaction, so its refusal would be
    written after that transaction ends and outlive the test: those rows run transactional."""
    for row in table:
        marks = [pytest.mark.django_db(transaction=True)] if row[0] == "system" else []
        yield pytest.param(
            *row, marks=marks, id=f"{row[0]}-{row[4]}-on-{row[1]}s-{row[3]}-{row[2]}"
        )


@pytest.mark.parametrize(
    ("decider", "requester", "slug", "state", "decision", "answer", "status_after"),
    list(rows(TABLE)),
)
def test_approval_decide__table__answers_and_status(
    world, clock, decider, requester, slug, state, decision, answer, status_after
):
    people = world
    request = arrange(state, people, people[requester], slug, clock)
    hash_seen = request.preview_hash
    if state == "edited_by_decider":
        optional = request.checklist.get(required=False)
        checklist_item_set(actor=people[decider], item=optional, checked=True)
    if state == "stale":
        checklist_item_set(
            actor=people[requester], item=request.checklist.get(required=False), checked=True
        )
    else:
        hash_seen = fresh(request).preview_hash
    decisions_before = Decision.objects.filter(request=request).count()

    def call():
        return approval_decide(
            actor=people[decider],
            request=fresh(request),
            decision=decision,
            preview_hash=hash_seen,
            comment="" if decision == "go" else "needs a smaller step",
        )

    if answer == OK:
        call()
        event = last_event("approval.decide", outcome="ok")
        assert (event.actor_name, event.after["decision"], event.after["status"]) == (
            decider,
            decision,
            status_after,
        )
        assert Decision.objects.filter(request=request).count() == decisions_before + 1
    else:
        with pytest.raises(ERRORS[answer]):
            call()
        assert Decision.objects.filter(request=request).count() == decisions_before
        if decider == "system":
            assert last_event("approval.decide", outcome="denied").actor_name == "system"
    assert fresh(request).status == status_after
