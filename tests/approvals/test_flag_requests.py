"""The flags app's own requestable actions (flag.state.set, flag.accept) end to end through
the approvals services: the services take nothing but a verified approval, executing links
the request and its approvers, the scheduler runs them, and blackout windows hold direct
increases back."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from approvals.blackouts import blackout_window_create
from approvals.execution import approval_execute, approval_requests_run_scheduled
from approvals.services import approval_request_update
from flags.models import FlagState
from flags.services import ApprovalRequired, BlackoutOpen, flag_accept, flag_create, flag_state_set
from releasecontrol import requestable
from releasecontrol.errors import Conflict
from releasecontrol.models import AuditEvent
from releasecontrol.requestable import ApprovalDrifted, ApprovalInvalid
from releasecontrol.services import environment_configure

from .conftest import START
from .helpers import (
    TEN_PERCENT,
    complete_checklist,
    env,
    flag_state,
    fresh,
    go,
    last_event,
    request_change,
)

SET = "flag.state.set"
ACCEPT = "flag.accept"
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def flags_world(clock, people, flag, short_checklist):
    return people


def approved(people, *, requester="dev", action=SET, parameters=None, slug="production", **kw):
    request = request_change(
        people[requester], slug, action=action, parameters=parameters or TEN_PERCENT, **kw
    )
    return go(complete_checklist(request, people[requester]), people["rhea"])


def set_by_hand(people, percentage=50):
    flag_state_set(
        actor=people["rita"],
        flag=flag_state().flag,
        environment=env("production"),
        mode="percentage",
        percentage=percentage,
        reason="by hand",
    )


def ten_percent_with(approval, actor, slug="production", **overrides):
    fields = {"mode": "percentage", "percentage": 10, "allowlist": [], **overrides}
    return flag_state_set(
        actor=actor,
        flag=flag_state(slug).flag,
        environment=env(slug),
        reason="as approved",
        approval=approval,
        **fields,
    )


# --- Registered, with exact previews ---------------------------------------------------------


def test_flag_requestables__registered_by_flags__state_set_and_accept_schedulable(flags_world):
    by_name = {r.name: r for r in requestable.registered()}
    assert by_name[SET].schedulable is True
    assert by_name[ACCEPT].schedulable is True


def test_flag_state_set_preview__exact_before_and_after_with_versions(flags_world):
    set_by_hand(flags_world, percentage=50)

    preview = requestable.preview_compute(
        SET, env("production"), {**TEN_PERCENT, "allowlist": ["vip-1"]}
    )

    assert preview == {
        "items": [
            {
                "type": "flag_state",
                "id": "new-checkout@production",
                "name": "new-checkout in production",
                "before": {"mode": "percentage", "percentage": 50, "allowlist": [], "version": 2},
                "after": {
                    "mode": "percentage",
                    "percentage": 10,
                    "allowlist": ["vip-1"],
                    "version": 3,
                },
            }
        ],
        "reduces_exposure": False,  # vip-1 is a new key
    }


def test_flag_state_set_parameters__bad__validation_error_names_each_field(flags_world):
    with pytest.raises(ValidationError) as error:
        requestable.parameters_clean(
            SET,
            {"flag": "nope", "mode": "sideways", "percentage": 101, "allowlist": "x", "when": 1},
        )

    assert set(error.value.message_dict) == {
        "parameters.flag",
        "parameters.mode",
        "parameters.percentage",
        "parameters.allowlist",
        "parameters.when",
    }
    assert "no flag 'nope'" in error.value.message_dict["parameters.flag"][0]


def test_flag_state_set_parameters__omitted_percentage_and_allowlist__zero_and_empty(
    flags_world,
):
    clean = requestable.parameters_clean(SET, {"flag": "new-checkout", "mode": "full"})
    assert clean == {"flag": "new-checkout", "mode": "full", "percentage": 0, "allowlist": []}


# --- Executing approved requests --------------------------------------------------------------


def test_approval_execute__flag_state_set_request__changes_state_event_links_request_approvers(
    flags_world,
):
    request = approved(flags_world)

    approval_execute(actor=flags_world["omar"], request=fresh(request), reason="window open")

    state = flag_state()
    assert (state.mode, state.percentage, state.version) == ("percentage", 10, 2)
    event = last_event(SET, outcome="ok")
    assert (event.actor_name, event.environment_id) == ("omar", "production")
    assert event.after["approval"] == {
        "request": request.pk,
        "revision": request.revision,
        "approvers": ["rhea"],
        "urgency": "routine",
        "preview_hash": request.preview_hash,
    }
    assert event.before == {"mode": "off", "percentage": 0, "allowlist": [], "version": 1}
    assert fresh(request).result == {
        "flag": "new-checkout",
        "environment": "production",
        "mode": "percentage",
        "percentage": 10,
        "allowlist": [],
        "version": 2,
    }


def test_approval_requests_run_scheduled__flag_state_set__system_actor_executes_at_window(
    flags_world, clock
):
    request = approved(flags_world, window_start=START + HOUR, window_end=START + 2 * HOUR)
    assert approval_requests_run_scheduled() == []
    assert flag_state().mode == "off"

    clock.shift(HOUR)
    assert approval_requests_run_scheduled() == [request.pk]

    assert flag_state().percentage == 10
    event = last_event(SET, outcome="ok")
    assert (event.actor_kind, event.after["approval"]["approvers"]) == ("system", ["rhea"])
    assert fresh(request).executed_by.username == "system"


def test_approval_execute__flag_accept_request__values_served_event_links_request(flags_world):
    flag_create(
        actor=flags_world["dev"],
        key="checkout-copy",
        name="Checkout copy",
        type="string",
        on_value="Pay now",
        off_value="Buy",
    )
    parameters = {"flag": "checkout-copy"}
    preview = requestable.preview_compute(ACCEPT, env("production"), parameters)
    assert preview["items"][0]["before"] == {"accepted": None, "version": 1}
    assert preview["items"][0]["after"] == {
        "accepted": {"on_value": "Pay now", "off_value": "Buy"},
        "version": 2,
    }
    request = approved(flags_world, action=ACCEPT, parameters=parameters)

    approval_execute(actor=flags_world["rita"], request=fresh(request), reason="copy reviewed")

    state = FlagState.objects.get(flag__key="checkout-copy", environment__slug="production")
    assert state.accepted_values == ("Pay now", "Buy")
    event = last_event(ACCEPT, outcome="ok")
    assert event.after["approval"]["request"] == request.pk
    assert event.after["approval"]["approvers"] == ["rhea"]


@pytest.mark.django_db(transaction=True)
def test_flag_accept__release_manager_refused_409__the_request_named_approved_executed_by_them(
    flags_world,
):
    """Production rights do not accept values directly: the request the refusal names, made
    as it is, approved by someone else and executed by the requester, does."""
    rita = flags_world["rita"]
    flag = flag_create(
        actor=flags_world["dev"],
        key="copy",
        name="Copy",
        type="string",
        on_value="a",
        off_value="b",
    )
    with pytest.raises(ApprovalRequired) as refused:
        flag_accept(
            actor=rita,
            flag=flag,
            environment=env("production"),
            expected_version=1,
            reason="I have production rights",
        )
    denied = last_event(ACCEPT, outcome="denied")
    assert (denied.actor, denied.after["requested"]["on_value"]) == (rita, "a")
    named = refused.value.context["request"]
    assert named == {"action": ACCEPT, "environment": "production", "parameters": {"flag": "copy"}}

    request = approved(
        flags_world, requester="rita", action=named["action"], parameters=named["parameters"]
    )
    approval_execute(actor=rita, request=fresh(request), reason="as approved by rhea")

    state = FlagState.objects.get(flag=flag, environment__slug="production")
    assert (state.accepted_values, state.values_accepted_by) == (("a", "b"), rita)
    accepted = last_event(ACCEPT, outcome="ok")
    assert (accepted.actor, accepted.after["approval"]["approvers"]) == (rita, ["rhea"])


def test_approval_execute__requires_approval_for_increase__the_approved_request_goes_through(
    flags_world,
):
    environment_configure(
        actor=flags_world["root"],
        environment=env("production"),
        require_approval_for_increase=True,
        approvals_required=1,
        reason="every increase waits for a go",
    )
    with pytest.raises(ApprovalRequired):
        set_by_hand(flags_world)
    request = approved(flags_world, requester="rita")

    approval_execute(actor=flags_world["omar"], request=fresh(request), reason="go")

    assert flag_state().percentage == 10


# --- The services accept nothing but a verified approval -------------------------------------


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("pending", "not approved"),
        ("expired", "expired"),
        ("another_revision", "other parameters"),
        ("another_flag", "other parameters"),
        ("another_environment", "not flag.state.set in production"),
        ("drifted", "changed since"),
        ("executed", "executed"),
        ("missing", "no approval request"),
    ],
)
def test_flag_state_set__anything_but_an_approved_request_for_this_change__409_nothing_changed(
    flags_world, clock, case, match
):
    people = flags_world
    if case == "pending":
        request = request_change(people["dev"], action=SET)
    elif case == "another_flag":
        flag_create(actor=people["rita"], key="other", name="Other")
        request = approved(people, parameters={**TEN_PERCENT, "flag": "other"})
    elif case == "another_environment":
        request = approved(people, slug="staging")
    else:
        request = approved(people)
    if case == "expired":
        clock.shift(dt.timedelta(hours=73))
    elif case == "another_revision":
        request = approval_request_update(
            actor=people["dev"],
            request=fresh(request),
            parameters={**TEN_PERCENT, "percentage": 20},
        )
        request = go(request, people["rhea"])  # approved again, at 20%
    elif case == "drifted":
        set_by_hand(people, percentage=50)
    elif case == "executed":
        approval_execute(actor=people["omar"], request=fresh(request), reason="once")
    before = AuditEvent.objects.filter(action=SET, outcome="ok").count()
    state_before = FlagState.objects.get(pk=flag_state().pk)

    approval = request.pk + 1000 if case == "missing" else request.pk
    with pytest.raises(ApprovalInvalid, match=match) as error:
        ten_percent_with(approval, people["rita"])

    assert error.value.code in ("approval_invalid", "drifted")
    state = flag_state()
    assert (state.mode, state.percentage, state.version) == (
        state_before.mode,
        state_before.percentage,
        state_before.version,
    )
    assert AuditEvent.objects.filter(action=SET, outcome="ok").count() == before


def test_flag_state_set__drifted_approval__409_names_what_changed(flags_world):
    request = approved(flags_world)
    set_by_hand(flags_world, percentage=50)

    with pytest.raises(ApprovalDrifted) as error:
        ten_percent_with(request.pk, flags_world["rita"])

    assert "new-checkout in production" in error.value.detail
    assert "mode 'off' -> 'percentage'" in error.value.detail
    assert "version 1 -> 2" in error.value.detail


def test_flag_state_set__approved_request_in_a_developers_hands__still_refused_403(flags_world):
    """An approval is not a role: executing needs the action's own permission there."""
    request = approved(flags_world)

    with pytest.raises(PermissionDenied):
        ten_percent_with(request.pk, flags_world["dev"])

    assert flag_state().mode == "off"
    assert last_event(SET, outcome="denied").actor_name == "dev"


def test_flag_state_set__system_actor_with_an_approved_request__increases(flags_world):
    request = approved(flags_world)

    ten_percent_with(request.pk, flags_world["system"])

    assert flag_state().percentage == 10
    assert last_event(SET, outcome="ok").after["approval"]["approvers"] == ["rhea"]


def test_flag_state_set__system_actor_with_a_pending_request__refused(flags_world):
    request = request_change(flags_world["dev"], action=SET)

    with pytest.raises(ApprovalInvalid):
        ten_percent_with(request.pk, flags_world["system"])
    with pytest.raises(PermissionDenied, match="automation"):
        ten_percent_with(None, flags_world["system"])
    assert flag_state().mode == "off"


def test_flag_accept__approval_for_another_flag__409_values_not_served(flags_world):
    for key in ("copy-a", "copy-b"):
        flag_create(
            actor=flags_world["dev"], key=key, name=key, type="string", on_value="a", off_value="b"
        )
    request = approved(flags_world, action=ACCEPT, parameters={"flag": "copy-a"})
    copy_b = FlagState.objects.get(flag__key="copy-b", environment__slug="production")

    with pytest.raises(ApprovalInvalid, match="other parameters"):
        flag_accept(
            actor=flags_world["rita"],
            flag=copy_b.flag,
            environment=env("production"),
            expected_version=1,
            reason="approved, was it not?",
            approval=request.pk,
        )
    copy_b.refresh_from_db()
    assert copy_b.accepted_values is None


# --- Blackout windows hold direct increases back ---------------------------------------------


@pytest.fixture
def blackout_now(flags_world):
    return blackout_window_create(
        actor=flags_world["rita"],
        environment=env("production"),
        starts_at=START - HOUR,
        ends_at=START + 3 * HOUR,
        reason="Quarter-end close",
    )


def test_flag_state_set__inside_blackout__direct_increase_409_names_window_decrease_allowed(
    flags_world,
):
    set_by_hand(flags_world, percentage=50)
    blackout_window_create(
        actor=flags_world["rita"],
        environment=env("production"),
        starts_at=START - HOUR,
        ends_at=START + 3 * HOUR,
        reason="Quarter-end close",
    )

    with pytest.raises(BlackoutOpen) as error:
        set_by_hand(flags_world, percentage=60)

    assert error.value.code == "blackout"
    assert "Quarter-end close" in error.value.detail
    assert "13:00" in error.value.detail  # when it ends
    assert flag_state().percentage == 50

    flag_state_set(
        actor=flags_world["omar"],
        flag=flag_state().flag,
        environment=env("production"),
        mode="percentage",
        percentage=5,
        reason="errors up: less",
    )
    assert (flag_state().mode, flag_state().percentage) == ("percentage", 5)


def test_flag_state_set__inside_blackout__routine_approval_refused_emergency_goes_through(
    flags_world, clock
):
    routine = approved(flags_world)
    emergency = go(approved(flags_world, urgency="emergency"), flags_world["ravi"])
    blackout_window_create(
        actor=flags_world["rita"],
        environment=env("production"),
        starts_at=START,
        ends_at=START + 3 * HOUR,
        reason="Launch freeze",
    )

    with pytest.raises(BlackoutOpen):
        ten_percent_with(routine.pk, flags_world["system"])  # automation included
    with pytest.raises(BlackoutOpen):
        ten_percent_with(routine.pk, flags_world["rita"])
    assert flag_state().mode == "off"

    ten_percent_with(emergency.pk, flags_world["rita"])
    assert flag_state().percentage == 10
    assert last_event(SET, outcome="ok").after["approval"]["urgency"] == "emergency"


def test_flag_accept__inside_blackout__routine_request_held_back_emergency_accepts(
    flags_world, clock
):
    for key in ("copy-a", "copy-b"):
        flag_create(
            actor=flags_world["dev"], key=key, name=key, type="string", on_value="a", off_value="b"
        )
    routine = approved(flags_world, action=ACCEPT, parameters={"flag": "copy-a"})
    emergency = go(
        approved(flags_world, action=ACCEPT, parameters={"flag": "copy-b"}, urgency="emergency"),
        flags_world["ravi"],
    )
    blackout_window_create(
        actor=flags_world["rita"],
        environment=env("production"),
        starts_at=START,
        ends_at=START + 3 * HOUR,
        reason="Launch freeze",
    )

    with pytest.raises(Conflict) as held:
        approval_execute(actor=flags_world["rita"], request=fresh(routine), reason="go")
    approval_execute(actor=flags_world["rita"], request=fresh(emergency), reason="incident fix")

    assert held.value.code == "blackout"
    states = FlagState.objects.filter(environment__slug="production", flag__key__startswith="copy")
    accepted = {state.flag.key: state.accepted_values for state in states}
    assert accepted == {"copy-a": None, "copy-b": ("a", "b")}


def test_flag_accept__inside_blackout__direct_acceptance_409(flags_world, blackout_now):
    flag = flag_create(
        actor=flags_world["dev"],
        key="copy",
        name="Copy",
        type="string",
        on_value="a",
        off_value="b",
    )

    with pytest.raises(BlackoutOpen):
        flag_accept(
            actor=flags_world["rita"],
            flag=flag,
            environment=env("production"),
            expected_version=1,
            reason="looks right",
        )
    state = FlagState.objects.get(flag=flag, environment__slug="production")
    assert state.accepted_values is None
