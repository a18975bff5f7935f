"""Blackout windows: when one is open (weekly across daylight saving time, one-off), who
manages them, and what they hold back."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from approvals.blackouts import (
    blackout_open,
    blackout_window_create,
    blackout_window_delete,
    window_contains,
)
from approvals.execution import approval_execute, post_review_close
from approvals.models import BlackoutWindow, PostReview
from releasecontrol.errors import Conflict

from .helpers import (
    TEN_PERCENT,
    arrange,
    complete_checklist,
    env,
    flag_state,
    fresh,
    go,
    last_event,
    request_change,
)

UTC = dt.UTC


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


@pytest.fixture
def weekend(people, production):
    """Friday 15:00 to Monday 08:00, Europe/Berlin."""
    return blackout_window_create(
        actor=people["rita"],
        environment=production,
        weekly={"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        time_zone="Europe/Berlin",
        reason="No changes over the weekend",
    )


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        # An ordinary weekend in winter (CET, UTC+1): Fri 14:00 UTC to Mon 07:00 UTC.
        (utc(2026, 3, 20, 13, 59), False),
        (utc(2026, 3, 20, 14, 0), True),
        (utc(2026, 3, 23, 6, 59), True),
        (utc(2026, 3, 23, 7, 0), False),
        # Spring forward on Sunday 29 March: begins at 14:00 UTC (CET), ends Monday 08:00
        # CEST = 06:00 UTC, so 64 hours, not 65.
        (utc(2026, 3, 27, 14, 0), True),
        (utc(2026, 3, 29, 1, 30), True),  # the skipped hour
        (utc(2026, 3, 30, 5, 59), True),
        (utc(2026, 3, 30, 6, 0), False),
        (utc(2026, 3, 30, 6, 30), False),
        # Fall back on Sunday 25 October: begins Friday 15:00 CEST = 13:00 UTC, ends Monday
        # 08:00 CET = 07:00 UTC, so 66 hours.
        (utc(2026, 10, 23, 12, 59), False),
        (utc(2026, 10, 23, 13, 0), True),
        (utc(2026, 10, 25, 0, 30), True),  # 02:30 CEST, the first pass of the repeated hour
        (utc(2026, 10, 25, 1, 30), True),  # 02:30 CET, the second
        (utc(2026, 10, 26, 6, 59), True),
        (utc(2026, 10, 26, 7, 0), False),
        # Midweek.
        (utc(2026, 3, 25, 12, 0), False),
    ],
)
def test_window_contains__weekly_friday_to_monday_berlin__follows_wall_clock_across_dst(at, open_):
    weekend = BlackoutWindow(
        kind="weekly",
        day=4,
        start_time=dt.time(15, 0),
        end_day=0,
        end_time=dt.time(8, 0),
        time_zone="Europe/Berlin",
    )
    assert window_contains(weekend, at) is open_


def test_blackout_open__weekly_window_created_by_release_manager__open_over_the_weekend(
    weekend, production, staging
):
    assert blackout_open(production, utc(2026, 3, 27, 14, 0)) == weekend
    assert blackout_open(production, utc(2026, 3, 30, 6, 0)) is None
    assert blackout_open(staging, utc(2026, 3, 28, 12, 0)) is None
    event = last_event("blackout.create")
    assert (event.actor_name, event.after["weekly"], event.after["time_zone"]) == (
        "rita",
        {"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
        "Europe/Berlin",
    )


def test_blackout_open__same_day_and_week_long_windows__open_only_inside(people, staging):
    tuesday_morning = blackout_window_create(
        actor=people["rita"],
        environment=staging,
        weekly={"day": "tue", "start": "10:00", "end_day": "tue", "end": "12:00"},
        time_zone="UTC",
        reason="Weekly maintenance",
    )

    assert blackout_open(staging, utc(2026, 3, 3, 9, 59)) is None
    assert blackout_open(staging, utc(2026, 3, 3, 10, 0)) == tuesday_morning
    assert blackout_open(staging, utc(2026, 3, 3, 12, 0)) is None
    assert blackout_open(staging, utc(2026, 3, 5, 11, 0)) is None


def test_blackout_open__one_off__open_from_start_until_end_and_not_in_other_environments(
    people, production, staging
):
    freeze = blackout_window_create(
        actor=people["rita"],
        environment=production,
        starts_at=utc(2026, 12, 20),
        ends_at=utc(2027, 1, 4),
        reason="Year-end freeze",
    )

    assert blackout_open(production, utc(2026, 12, 19, 23, 59)) is None
    assert blackout_open(production, utc(2026, 12, 20)) == freeze
    assert blackout_open(production, utc(2027, 1, 4)) is None
    assert blackout_open(staging, utc(2026, 12, 25)) is None
    event = last_event("blackout.create")
    assert (event.actor_name, event.environment_id, event.after["reason"]) == (
        "rita",
        "production",
        "Year-end freeze",
    )


def test_blackout_window_delete__release_manager__closes_it_and_is_audited(
    weekend, people, production
):
    blackout_window_delete(actor=people["rhea"], window=weekend, reason="Launch weekend")

    assert blackout_open(production, utc(2026, 3, 21, 12, 0)) is None
    assert BlackoutWindow.objects.get(pk=weekend.pk).deleted_by == people["rhea"]
    event = last_event("blackout.delete")
    assert (event.actor_name, event.before["weekly"]["day"], event.after) == (
        "rhea",
        "fri",
        {"deleted": True},
    )


@pytest.mark.parametrize("who", ["omar", "dev", "ci-bot", "rogue-bot"])
def test_blackout_window_create__not_a_release_manager__refused(people, production, who):
    with pytest.raises(PermissionDenied):
        blackout_window_create(
            actor=people[who],
            environment=production,
            starts_at=utc(2026, 12, 20),
            ends_at=utc(2027, 1, 4),
            reason="mine",
        )
    assert not BlackoutWindow.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"starts_at": utc(2026, 1, 2), "ends_at": utc(2026, 1, 1)}, "ends_at"),
        ({"starts_at": utc(2026, 1, 2)}, "starts_at"),
        ({"weekly": {"day": "fry", "start": "15:00", "end": "16:00"}}, "weekly.day"),
        ({"weekly": {"day": "fri", "start": "25:00", "end": "16:00"}}, "weekly.start"),
        (
            {
                "weekly": {"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"},
                "time_zone": "Mars/Olympus",
            },
            "time_zone",
        ),
    ],
)
def test_blackout_window_create__bad_input__names_the_field(people, production, fields, field):
    with pytest.raises(ValidationError) as error:
        blackout_window_create(actor=people["rita"], environment=production, reason="x", **fields)
    assert field in error.value.message_dict


# --- What a window holds back --------------------------------------------------------------

FRIDAY_EVENING = utc(2026, 3, 6, 17, 0)  # 18:00 in Berlin


def test_approval_execute__inside_blackout__increase_refused_409_nothing_changes(
    world, clock, weekend
):
    request = arrange("approved", world, world["dev"], "production", clock)
    clock.move_to(FRIDAY_EVENING, tick=False)

    with pytest.raises(Conflict) as error:
        approval_execute(actor=world["rita"], request=fresh(request), reason="now")

    assert error.value.code == "blackout"
    assert "No changes over the weekend" in error.value.detail
    assert fresh(request).status == "approved"
    assert flag_state().mode == "off"


def test_approval_execute__inside_blackout__reduction_goes_through(world, clock, weekend):
    from flags.services import flag_state_set

    flag_state_set(
        actor=world["rita"],
        flag=flag_state().flag,
        environment=env("production"),
        mode="percentage",
        percentage=50,
        reason="before the weekend",
    )
    request = request_change(world["dev"], parameters={**TEN_PERCENT, "percentage": 5})
    request = go(complete_checklist(request, world["dev"]), world["rhea"])
    clock.move_to(FRIDAY_EVENING, tick=False)

    approval_execute(actor=world["rita"], request=fresh(request), reason="halve it")

    assert flag_state().percentage == 5
    assert not PostReview.objects.exists()


def test_approval_execute__approved_emergency_inside_blackout__runs_and_opens_post_review(
    world, clock, weekend
):
    request = arrange("emergency_approved", world, world["dev"], "production", clock)
    clock.move_to(FRIDAY_EVENING, tick=False)

    approval_execute(actor=world["omar"], request=fresh(request), reason="P1: checkout down")

    assert flag_state().percentage == 10
    review = PostReview.objects.get(request=request)
    assert review.is_open
    event = last_event("approval.execute")
    assert event.after["blackout"]["id"] == weekend.pk
    assert event.after["post_review"] == review.pk
    assert event.after["approval"]["approvers"] == ["rhea", "ravi"]

    post_review_close(actor=world["rita"], review=review, notes="Root cause: bad config push")

    review.refresh_from_db()
    assert (review.is_open, review.closed_by, review.notes) == (
        False,
        world["rita"],
        "Root cause: bad config push",
    )
    closed = last_event("postreview.close")
    assert (closed.actor_name, closed.after["request"]) == ("rita", request.pk)


@pytest.mark.parametrize("who", ["omar", "dev", "ci-bot"])
def test_post_review_close__not_a_release_manager__refused(world, clock, who):
    request = arrange("emergency_approved", world, world["dev"], "production", clock)
    approval_execute(actor=world["rita"], request=fresh(request), reason="P1")
    review = PostReview.objects.get(request=request)

    with pytest.raises(PermissionDenied):
        post_review_close(actor=world[who], review=review, notes="fine")

    assert PostReview.objects.get(pk=review.pk).is_open


def test_blackout_now__core_slot__names_the_open_window_for_owning_apps(weekend, production):
    from releasecontrol import requestable

    assert requestable.blackout_now(production, utc(2026, 3, 6, 9, 0)) is None
    assert "No changes over the weekend" in requestable.blackout_now(
        production, utc(2026, 3, 6, 17, 0)
    )


def test_approval_requests_run_scheduled__window_inside_blackout__suspended_with_reason(
    world, clock, weekend
):
    from approvals.execution import approval_requests_run_scheduled

    request = request_change(
        world["dev"], window_start=FRIDAY_EVENING, window_end=FRIDAY_EVENING + dt.timedelta(hours=2)
    )
    request = go(complete_checklist(request, world["dev"]), world["rhea"])
    clock.move_to(FRIDAY_EVENING, tick=False)

    assert approval_requests_run_scheduled() == []

    request = fresh(request)
    assert request.status == "approved"
    assert "No changes over the weekend" in request.suspended_reason
    assert flag_state().mode == "off"
