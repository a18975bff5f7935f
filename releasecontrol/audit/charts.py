"""Charts of the audit trail: counted by day in the database (one grouped query), drawn in the
browser by the vendored Plotly from the JSON built here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import TruncDate

from ..models import Outcome, Tier, UserKind
from .selectors import AuditFilter, audit_events

DEFAULT_DAYS = 30
# Recorded by the flags app's kill switches (and the environment rollback that engages
# one); the core names it only as the data it reads.
KILL_SWITCH_ENGAGE = "killswitch.engage"

COLOURS = {
    UserKind.HUMAN: "#64748b",
    UserKind.AGENT: "#7c3aed",
    UserKind.SYSTEM: "#0d9488",
    "agent_production": "#b91c1c",
    "kill_switch": "#dc2626",
}
KIND_LABELS = {UserKind.HUMAN: "people", UserKind.AGENT: "agents", UserKind.SYSTEM: "system"}


@dataclass(frozen=True)
class DayCount:
    """Events of one actor kind on one day (UTC)."""

    day: dt.date
    actor_kind: str
    total: int
    denied: int
    denied_production: int
    kill_switches: int


def chart_window(audit_filter: AuditFilter, *, now: dt.datetime) -> AuditFilter:
    """The filter, starting DEFAULT_DAYS days before its end when it names no start."""
    if audit_filter.since is not None:
        return audit_filter
    end = (audit_filter.until or now).astimezone(dt.UTC)
    start = dt.datetime.combine(end.date() - dt.timedelta(days=DEFAULT_DAYS - 1), dt.time.min)
    return dataclasses.replace(audit_filter, since=start.replace(tzinfo=dt.UTC))


def activity_by_day(audit_filter: AuditFilter) -> list[DayCount]:
    """Per day and actor kind: events, refusals, refusals in production, kill switches."""
    rows = (
        audit_events(audit_filter)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day", "actor_kind")
        .annotate(
            total=Count("id"),
            denied=Count("id", filter=Q(outcome=Outcome.DENIED)),
            denied_production=Count(
                "id", filter=Q(outcome=Outcome.DENIED, environment__tier=Tier.PRODUCTION)
            ),
            kill_switches=Count("id", filter=Q(action=KILL_SWITCH_ENGAGE, outcome=Outcome.OK)),
        )
        .order_by("day", "actor_kind")
    )
    return [DayCount(**row) for row in rows]


def _days(counts: list[DayCount], window: AuditFilter, today: dt.date) -> list[dt.date]:
    """Every day of the window, so quiet days show as gaps rather than vanish."""
    first = window.since.astimezone(dt.UTC).date() if window.since else None
    last = window.until.astimezone(dt.UTC).date() if window.until else today
    if counts:
        first = min(first or counts[0].day, counts[0].day)
        last = max(last, counts[-1].day)
    if first is None or first > last:
        return []
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _series(
    days: list[dt.date], counts: Iterable[DayCount], value: Any, kind: str | None = None
) -> list[int]:
    by_day: dict[dt.date, int] = dict.fromkeys(days, 0)
    for count in counts:
        if kind is None or count.actor_kind == kind:
            by_day[count.day] = by_day.get(count.day, 0) + value(count)
    return [by_day[day] for day in days]


def _bar(name: str, x: list[str], y: list[int], colour: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "bar",
        "name": name,
        "x": x,
        "y": y,
        "marker": {"color": colour},
        "hovertemplate": f"%{{x|%a %d %b}}: %{{y}} {name}<extra></extra>",
        **extra,
    }


def _count_axis(title: str, peak: int) -> dict[str, Any]:
    """A y axis of whole numbers: with few events Plotly would otherwise tick 0.2, 0.4..."""
    axis: dict[str, Any] = {"title": {"text": title}, "rangemode": "tozero", "tickformat": "d"}
    if peak <= 5:
        axis.update(dtick=1, range=[0, max(peak, 1) + 0.5])
    return axis


def _peak(traces: list[dict[str, Any]], *, stacked: bool) -> int:
    columns = [t["y"] for t in traces]
    if not columns or not columns[0]:
        return 0
    if stacked:
        return max(sum(values) for values in zip(*columns, strict=True))
    return max(max(values) for values in columns)


def _layout(title: str, y_title: str, peak: int, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0, "font": {"size": 15}},
        "barmode": "stack",
        "height": 280,
        "margin": {"l": 48, "r": 56, "t": 56, "b": 36},
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.14,
            "font": {"size": 12},
            "traceorder": "normal",
        },
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {"type": "date", "tickformat": "%d %b", "gridcolor": "#eef1f4"},
        "yaxis": {**_count_axis(y_title, peak), "gridcolor": "#eef1f4"},
        "bargap": 0.25,
        **extra,
    }


def chart_figures(
    counts: list[DayCount], window: AuditFilter, *, today: dt.date | None = None
) -> dict[str, dict[str, Any]]:
    """Plotly figures ({"data", "layout"}) for the charts page, keyed by chart."""
    days = _days(counts, window, today or dt.datetime.now(dt.UTC).date())
    x = [day.isoformat() for day in days]
    kinds = [UserKind.HUMAN, UserKind.AGENT, UserKind.SYSTEM]

    actions = [
        _bar(KIND_LABELS[k], x, _series(days, counts, lambda c: c.total, k), COLOURS[k])
        for k in kinds
    ]
    agent = UserKind.AGENT
    denied = [
        _bar(
            "agents in production",
            x,
            _series(days, counts, lambda c: c.denied_production, agent),
            COLOURS["agent_production"],
        ),
        _bar(
            "agents elsewhere",
            x,
            _series(days, counts, lambda c: c.denied - c.denied_production, agent),
            COLOURS[agent],
        ),
        _bar(
            "people",
            x,
            _series(days, counts, lambda c: c.denied, UserKind.HUMAN),
            COLOURS[UserKind.HUMAN],
        ),
        _bar(
            "system",
            x,
            _series(days, counts, lambda c: c.denied, UserKind.SYSTEM),
            COLOURS[UserKind.SYSTEM],
        ),
    ]
    safety = [
        _bar(
            "kill switches engaged",
            x,
            _series(days, counts, lambda c: c.kill_switches),
            COLOURS["kill_switch"],
        ),
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "automatic actions (system)",
            "x": x,
            "y": _series(days, counts, lambda c: c.total, UserKind.SYSTEM),
            "yaxis": "y2",
            "line": {"color": COLOURS[UserKind.SYSTEM], "width": 2, "shape": "linear"},
            "marker": {"size": 5},
            "hovertemplate": "%{x|%a %d %b}: %{y} automatic actions<extra></extra>",
        },
    ]
    return {
        "actions": {
            "data": actions,
            "layout": _layout(
                "Actions per day, by who acted", "events", _peak(actions, stacked=True)
            ),
        },
        "denied": {
            "data": denied,
            "layout": _layout("Refused attempts per day", "refusals", _peak(denied, stacked=True)),
        },
        "safety": {
            "data": safety,
            "layout": _layout(
                "Kill switches and automatic actions",
                "kill switches",
                _peak(safety[:1], stacked=False),
                yaxis2={
                    **_count_axis("automatic actions", _peak(safety[1:], stacked=False)),
                    "overlaying": "y",
                    "side": "right",
                    "showgrid": False,
                },
            ),
        },
    }


@dataclass(frozen=True)
class Totals:
    events: int
    denied: int
    agent_production_denials: int
    kill_switches: int
    automatic: int


def chart_totals(counts: Iterable[DayCount]) -> Totals:
    counts = list(counts)
    return Totals(
        events=sum(c.total for c in counts),
        denied=sum(c.denied for c in counts),
        agent_production_denials=sum(
            c.denied_production for c in counts if c.actor_kind == UserKind.AGENT
        ),
        kill_switches=sum(c.kill_switches for c in counts),
        automatic=sum(c.total for c in counts if c.actor_kind == UserKind.SYSTEM),
    )
