"""Reads of approvals: valid gos counted in the query, a fixed number of queries."""

from approvals.selectors import (
    approval_request_detail,
    approval_requests,
    approval_requests_awaiting_decision_for_user,
)
from approvals.services import approval_request_update

from .helpers import complete_checklist, fresh, go, request_change


def test_approval_requests__many__one_query_with_valid_gos_counted(
    world, django_assert_num_queries
):
    for n in range(5):
        request = complete_checklist(request_change(world["dev"], title=f"step {n}"), world["dev"])
        go(request, world["rhea"])
    voided = approval_request_update(actor=world["dev"], request=fresh(request), title="again")

    with django_assert_num_queries(1):
        rows = [
            (r.title, r.requested_by.username, r.environment.slug, r.valid_gos)
            for r in approval_requests(environment="production")
        ]

    assert rows[0] == ("again", "dev", "production", 0)  # its go was voided by the edit
    assert {r[3] for r in rows[1:]} == {1}
    assert voided.decisions.get().void


def test_approval_request_detail__checklist_decisions_editors__fixed_queries(
    world, django_assert_num_queries
):
    request = go(complete_checklist(request_change(world["dev"]), world["dev"]), world["rhea"])

    with django_assert_num_queries(5):
        detail = approval_request_detail(request.pk)
        checked_by = [i.checked_by.username for i in detail.checklist.all() if i.checked]
        deciders = [d.decider.username for d in detail.decisions.all()]
        editors = list(detail.editors.all())

    assert (checked_by, deciders, editors) == (["dev"], ["rhea"], [])


def test_approval_requests_awaiting_decision_for_user__excludes_own_edited_and_decided(world):
    mine = request_change(world["rita"], title="mine")
    edited = approval_request_update(
        actor=world["rita"], request=request_change(world["dev"], title="edited"), impact="x"
    )
    decided = complete_checklist(request_change(world["dev"], title="decided"), world["dev"])
    from releasecontrol.services import environment_configure

    from .helpers import env

    environment_configure(
        actor=world["root"], environment=env("production"), approvals_required=2, reason="two"
    )
    go(decided, world["rita"])
    waiting = request_change(world["dev"], title="waiting")

    titles = {r.title for r in approval_requests_awaiting_decision_for_user(world["rita"])}

    assert titles == {"waiting"}
    assert {mine.pk, edited.pk, decided.pk}.isdisjoint(
        r.pk for r in approval_requests_awaiting_decision_for_user(world["rita"])
    )
    assert waiting.pk in {r.pk for r in approval_requests_awaiting_decision_for_user(world["rhea"])}
