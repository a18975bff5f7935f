"""Reading the audit trail: one filter for the explorer, the exports, the packs and every
object's history tab, and keyset pages that stay fast at millions of events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..models import AuditEvent, Outcome, UserKind

PAGE_SIZE = 50
# Event ids are PostgreSQL bigints: anything beyond cannot name an event (and cannot be sent
# to the database as one).
MAX_EVENT_ID = 2**63 - 1


def event_id_or_none(raw: object) -> int | None:
    """An event id (1..MAX_EVENT_ID) written in ASCII digits, else None."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_EVENT_ID else None


# Times outside these years name no event, and some (9999-12-31T23:59-14:00) are not even
# a time in UTC.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def _parse_time(value: str, *, end_of_day: bool) -> dt.datetime:
    # A bare date first: parse_datetime reads "2026-11-21" as its midnight, which would
    # make until=2026-11-21 leave out that whole day.
    day = parse_date(value)
    if day is not None:
        parsed = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    else:
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(value)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    try:
        year = parsed.astimezone(dt.UTC).year
    except OverflowError:
        year = 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(value)
    return parsed


@dataclass(frozen=True)
class AuditFilter:
    """What an auditor asks for. Empty fields do not filter."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    environment: str = ""
    actor: str = ""  # the actor's name as recorded
    actor_kind: str = ""
    action: str = ""  # exact, or a prefix ending in "." (e.g. "flag.")
    outcome: str = ""
    target_type: str = ""
    target_id: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AuditFilter:
        """Build from a query string or command options; bad values raise ValidationError."""
        errors: dict[str, str] = {}
        values: dict[str, object] = {}
        for name in ("since", "until"):
            raw = (params.get(name) or "").strip()
            if raw:
                try:
                    values[name] = _parse_time(raw, end_of_day=name == "until")
                except ValueError:
                    errors[name] = (
                        f"{raw[:40]!r} is not a date (2026-11-21) or an ISO 8601 time"
                        f" between {FIRST_YEAR} and {LAST_YEAR}"
                    )
        for name in ("environment", "actor", "action", "target_type", "target_id"):
            values[name] = (params.get(name) or "").strip()
        kind = (params.get("actor_kind") or "").strip()
        if kind and kind not in UserKind.values:
            errors["actor_kind"] = f"use one of {', '.join(UserKind.values)}"
        values["actor_kind"] = kind
        outcome = (params.get("outcome") or "").strip()
        if outcome and outcome not in Outcome.values:
            errors["outcome"] = f"use one of {', '.join(Outcome.values)}"
        values["outcome"] = outcome
        if errors:
            raise ValidationError(errors)
        return cls(**values)

    def as_params(self) -> dict[str, str]:
        """The non-empty fields as query-string values (round-trips through from_params)."""
        params = {}
        for name, value in asdict(self).items():
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            if value:
                params[name] = value
        return params

    def query_string(self) -> str:
        return urlencode(self.as_params())

    @property
    def is_empty(self) -> bool:
        return not self.as_params()


FILTER_FIELDS = tuple(f.name for f in fields(AuditFilter))


def audit_events(audit_filter: AuditFilter | None = None) -> QuerySet[AuditEvent]:
    """Events matching the filter, newest first (id order is the chain's order)."""
    events = AuditEvent.objects.all()
    f = audit_filter or AuditFilter()
    # created_at never goes back along the chain (audit_record), so a time bound is also an
    # id bound, found through the time index: pages far in the past stay fast.
    if f.since:
        first = AuditEvent.objects.filter(created_at__gte=f.since).order_by("created_at", "id")
        events = events.filter(created_at__gte=f.since, id__gte=Subquery(first.values("id")[:1]))
    if f.until:
        last = AuditEvent.objects.filter(created_at__lte=f.until).order_by("-created_at", "-id")
        events = events.filter(created_at__lte=f.until, id__lte=Subquery(last.values("id")[:1]))
    if f.environment:
        events = events.filter(environment_id=f.environment)
    if f.actor:
        events = events.filter(actor_name=f.actor)
    if f.actor_kind:
        events = events.filter(actor_kind=f.actor_kind)
    if f.action:
        if f.action.endswith("."):
            events = events.filter(action__startswith=f.action)
        else:
            events = events.filter(action=f.action)
    if f.outcome:
        events = events.filter(outcome=f.outcome)
    if f.target_type:
        events = events.filter(target_type=f.target_type)
    if f.target_id:
        events = events.filter(target_id=f.target_id)
    return events.order_by("-id")


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None  # pass as `before` for the next (older) page


def audit_page(
    audit_filter: AuditFilter | None = None, *, before: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """One keyset page: events older than `before` (an id), newest first."""
    events = audit_events(audit_filter)
    if before is not None:
        events = events.filter(id__lt=before)
    rows = list(events[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(rows, rows[-1].pk if more and rows else None)
