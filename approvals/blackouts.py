"""Blackout windows: when one is open, and the release managers' services that manage them."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .models import BlackoutKind, BlackoutWindow, Weekday

DAY_NAMES = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def weekly_occurrence_around(window: BlackoutWindow, at: dt.datetime) -> tuple | None:
    """The occurrence of a weekly window that contains `at` (UTC start and end), or None.

    Boundaries are wall-clock times in the window's zone, so "Friday 15:00 to Monday 08:00
    Europe/Berlin" is 65 hours one weekend and 64 or 66 across a change of daylight saving
    time. Comparisons are made in UTC: aware datetimes sharing a tzinfo compare by wall clock,
    which is wrong in the repeated hour of autumn.
    """
    zone = zoneinfo.ZoneInfo(window.time_zone)
    local_date = at.astimezone(zone).date()
    span_days = (window.end_day - window.day) % 7
    if span_days == 0 and window.end_time <= window.start_time:
        span_days = 7
    latest_start = local_date - dt.timedelta(days=(local_date.weekday() - window.day) % 7)
    # The window that began this week, or (for a week-long one) the one before.
    for weeks_back in (0, 1):
        start_date = latest_start - dt.timedelta(weeks=weeks_back)
        start = dt.datetime.combine(start_date, window.start_time, tzinfo=zone)
        end_date = start_date + dt.timedelta(days=span_days)
        end = dt.datetime.combine(end_date, window.end_time, tzinfo=zone)
        start_utc, end_utc = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        if start_utc <= at.astimezone(dt.UTC) < end_utc:
            return start_utc, end_utc
    return None


def window_contains(window: BlackoutWindow, at: dt.datetime) -> bool:
    if window.kind == BlackoutKind.ONE_OFF:
        return window.starts_at <= at < window.ends_at
    return weekly_occurrence_around(window, at) is not None


def blackout_open(environment: Environment, at: dt.datetime | None = None) -> BlackoutWindow | None:
    """The first blackout window of this environment open at `at` (default now), or None."""
    at = at or timezone.now()
    for window in BlackoutWindow.objects.active().filter(environment=environment):
        if window_contains(window, at):
            return window
    return None


def blackout_describe(environment: Environment, at: dt.datetime) -> str | None:
    """For core's blackout slot (releasecontrol.requestable.blackout_now)."""
    window = blackout_open(environment, at)
    return f"{window} ({window.reason})" if window is not None else None


def blackout_view(window: BlackoutWindow) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": window.pk,
        "environment": window.environment.slug,
        "kind": window.kind,
        "reason": window.reason,
    }
    if window.kind == BlackoutKind.ONE_OFF:
        view.update(starts_at=window.starts_at, ends_at=window.ends_at)
    else:
        names = {number: name for name, number in DAY_NAMES.items()}
        view.update(
            weekly={
                "day": names[window.day],
                "start": window.start_time.strftime("%H:%M"),
                "end_day": names[window.end_day],
                "end": window.end_time.strftime("%H:%M"),
            },
            time_zone=window.time_zone,
        )
    return view


def _weekday(value: Any, field: str) -> int:
    if isinstance(value, str) and value.lower()[:3] in DAY_NAMES:
        return DAY_NAMES[value.lower()[:3]]
    if isinstance(value, int) and not isinstance(value, bool) and value in Weekday.values:
        return value
    raise ValidationError({field: "A day is mon, tue, wed, thu, fri, sat or sun."})


def _time(value: Any, field: str) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise ValidationError({field: "A time is HH:MM."}) from None


@transaction.atomic
def blackout_window_create(
    *,
    actor: User,
    environment: Environment,
    reason: str,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    weekly: dict[str, Any] | None = None,
    time_zone: str = "UTC",
) -> BlackoutWindow:
    """A one-off window (starts_at, ends_at) or a weekly one
    (`{"day": "fri", "start": "15:00", "end_day": "mon", "end": "08:00"}` in `time_zone`)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why nothing may increase exposure then."})
    if weekly is not None and (starts_at is not None or ends_at is not None):
        raise ValidationError({"weekly": "A window is one-off (starts_at, ends_at) or weekly."})
    window = BlackoutWindow(
        environment=environment, reason=reason, created_by=actor, time_zone=time_zone
    )
    if weekly is not None:
        window.kind = BlackoutKind.WEEKLY
        window.day = _weekday(weekly.get("day"), "weekly.day")
        window.start_time = _time(weekly.get("start"), "weekly.start")
        window.end_day = _weekday(weekly.get("end_day", weekly.get("day")), "weekly.end_day")
        window.end_time = _time(weekly.get("end"), "weekly.end")
        if window.day == window.end_day and window.start_time == window.end_time:
            # Read as the whole week, which no one means.
            raise ValidationError({"weekly": "A weekly window needs an end apart from its start."})
    else:
        if starts_at is None or ends_at is None:
            raise ValidationError({"starts_at": "A one-off window needs starts_at and ends_at."})
        if ends_at <= starts_at:
            raise ValidationError({"ends_at": "A window ends after it starts."})
        window.kind = BlackoutKind.ONE_OFF
        window.starts_at, window.ends_at = starts_at, ends_at
    window.full_clean(exclude=["created_by", "environment"])
    authorize(
        actor,
        actions.BLACKOUT_CREATE,
        environment,
        target=Target("blackoutwindow", "", str(window)),
        reason=reason,
    )
    window.save()
    audit_record(
        actor=actor,
        action=actions.BLACKOUT_CREATE.name,
        environment=environment,
        target=Target.of(window),
        after=blackout_view(window),
        reason=reason,
    )
    return window


@transaction.atomic
def blackout_window_delete(*, actor: User, window: BlackoutWindow, reason: str = "") -> None:
    authorize(
        actor, actions.BLACKOUT_DELETE, window.environment, target=Target.of(window), reason=reason
    )
    window = BlackoutWindow.objects.select_for_update().get(pk=window.pk)
    if window.deleted_at is not None:
        return
    window.deleted_at, window.deleted_by = timezone.now(), actor
    window.save(update_fields=["deleted_at", "deleted_by"])
    audit_record(
        actor=actor,
        action=actions.BLACKOUT_DELETE.name,
        environment=window.environment,
        target=Target.of(window),
        before=blackout_view(window),
        after={"deleted": True},
        reason=reason,
    )
