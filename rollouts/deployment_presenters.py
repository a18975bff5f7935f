"""What the deployment pages show: history rows, the CSV's columns, the DORA charts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .deployment_selectors import current
from .deployment_status import smoke_view
from .dora import DoraFigures
from .models import Deployment

CSV_COLUMNS = [
    "id",
    "date",
    "environment",
    "service",
    "version",
    "kind",
    "status",
    "requested_by",
    "approved_by",
    "executed_by",
    "rolled_back",
    "notes",
    "smoke_passed",
    "smoke_failed",
    "commit",
    "artifact",
    "approval",
]


def smoke_text(deployment: Deployment) -> str:
    smoke = smoke_view(deployment)
    return f"{smoke['passed']} passed, {smoke['failed']} failed" if smoke else ""


@dataclass(frozen=True)
class HistoryRow:
    deployment: Deployment
    status: str

    @property
    def status_label(self) -> str:
        return self.status.replace("_", " ")

    @property
    def production(self) -> bool:
        return self.deployment.environment.is_production

    @property
    def approved_by(self) -> str:
        return ", ".join(self.deployment.approved_by or [])

    @property
    def smoke(self) -> str:
        return smoke_text(self.deployment)


def history_rows(deployments: Iterable[Deployment], *, now: dt.datetime) -> list[HistoryRow]:
    return [HistoryRow(d, current(d, now)) for d in deployments]


def _name(user: Any) -> str:
    return user.username if user is not None else ""


def csv_rows(deployments: Iterable[Deployment], *, now: dt.datetime) -> Iterator[list[Any]]:
    yield CSV_COLUMNS
    for d in deployments:
        smoke = smoke_view(d) or {}
        yield [
            d.pk,
            d.created_at.isoformat(),
            d.environment.slug,
            d.service,
            d.version,
            d.kind,
            current(d, now),
            d.requested_by.username,
            " ".join(d.approved_by or []),
            _name(d.executed_by),
            d.rolled_back_at.isoformat() if d.rolled_back_at else "",
            d.notes,
            smoke.get("passed"),
            smoke.get("failed"),
            d.commit,
            d.artifact,
            d.approval_request_id,
        ]


def _figure(title: str, weeks: list[str], values: list[Any], kind: str, unit: str) -> dict:
    trace: dict[str, Any] = {"x": weeks, "y": values, "type": kind, "name": title}
    if kind == "scatter":
        trace["mode"] = "lines+markers"
    return {
        "data": [trace],
        "layout": {
            "title": {"text": title},
            "height": 260,
            "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
            "xaxis": {"title": {"text": "week (Monday)"}, "type": "category"},
            "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
        },
    }


def dora_charts(figures: DoraFigures) -> dict[str, dict]:
    """Plotly figures of the weekly trends, for the page's JSON data block."""
    weeks = [w.week for w in figures.weeks]
    return {
        "frequency": _figure(
            "Deployment frequency",
            weeks,
            [w.deployment_frequency_per_day for w in figures.weeks],
            "bar",
            "per day",
        ),
        "lead_time": _figure(
            "Lead time for changes (p50)",
            weeks,
            [w.lead_time_hours_p50 for w in figures.weeks],
            "scatter",
            "hours",
        ),
        "change_failure_rate": _figure(
            "Change failure rate",
            weeks,
            [w.change_failure_rate for w in figures.weeks],
            "scatter",
            "share",
        ),
        "recovery": _figure(
            "Failed deployment recovery time (p50)",
            weeks,
            [w.recovery_time_hours_p50 for w in figures.weeks],
            "scatter",
            "hours",
        ),
    }
