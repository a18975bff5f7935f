"""The release page's Plotly figures, built here as JSON and drawn in the browser by the
vendored strict bundle (static/js/charts.js): one chart per gated metric (samples per cohort,
each gate's evaluated value, its threshold), the traffic over time, and on both the stage
changes and automatic actions marked on the time axis. Times are in the site's time zone
(TIME_ZONE), as the page's tables show them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from .models import Cohort, Gate, GateEvaluation, Outcome, Release, ReleaseEvent, Stage
from .page_selectors import SamplePoint
from .presenters import event_label, exposure_of, gate_condition

OUTCOME_COLOURS = {
    Outcome.SUCCESS: "#18794e",
    Outcome.FAILURE: "#c81e1e",
    Outcome.INCONCLUSIVE: "#b45309",
    Outcome.NO_DATA: "#94a3b8",
    Outcome.ERROR: "#7c3aed",
}
COHORT_COLOURS = {Cohort.CANARY: "#2563eb", Cohort.CONTROL: "#64748b"}
GATE_COLOURS = ["#0f172a", "#0d9488", "#9333ea", "#ea580c"]
THRESHOLD_COLOUR = "#dc2626"
STAGE_LINE = "#64748b"
AUTOMATIC_LINE = "#c81e1e"


def plain(text: str) -> str:
    """Text for Plotly, which reads a few HTML tags and entities in every label: people's
    names for gates, metrics and stages show as typed, never as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def when(at: dt.datetime) -> str:
    """A time as Plotly reads it (no offset: Plotly would ignore it), in the site's zone."""
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S")


def chart_period(release: Release, *, now: dt.datetime, max_hours: int = 24) -> tuple:
    """(start, end) of the charts: from the release's start (a minute before) to its end or
    now, at most `max_hours` back from the end."""
    end = release.ended_at or now
    begun = release.started_at or release.created_at
    start = max(begun - dt.timedelta(minutes=1), end - dt.timedelta(hours=max_hours))
    return min(start, end - dt.timedelta(minutes=5)), end


def event_marks(
    events: Sequence[ReleaseEvent], stages: dict[int, Stage], start: dt.datetime
) -> tuple[list[dict], list[dict]]:
    """Vertical lines and their labels for stage changes and automatic actions."""
    shapes, annotations = [], []
    for event in events:
        if event.at < start:
            continue
        marked = event.automatic or event.kind in {
            "started",
            "advanced",
            "paused",
            "resumed",
            "halved",
            "rolled_back",
            "completed",
        }
        if not marked:
            continue
        colour = AUTOMATIC_LINE if event.automatic else STAGE_LINE
        x = when(event.at)
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": x,
                "x1": x,
                "y0": 0,
                "y1": 1,
                "line": {"color": colour, "width": 2 if event.automatic else 1, "dash": "dot"},
            }
        )
        # Staggered in three rows, so that labels of events close in time do not overlap.
        annotations.append(
            {
                "x": x,
                "y": 1 + 0.07 * (len(annotations) % 3),
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "xanchor": "left",
                "text": plain(event_label(event, stages)),
                "showarrow": False,
                "font": {"size": 10, "color": colour},
            }
        )
    return shapes, annotations


def _layout(title: str, y_title: str, start: dt.datetime, end: dt.datetime, marks) -> dict:
    shapes, annotations = marks
    return {
        "title": {
            "text": plain(title),
            "x": 0,
            "y": 0.98,
            "yref": "container",
            "yanchor": "top",
            "font": {"size": 13},
        },
        "height": 330,
        "margin": {"l": 56, "r": 24, "t": 96, "b": 30},
        "legend": {"orientation": "h", "x": 0, "y": -0.14, "font": {"size": 11}},
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {
            "type": "date",
            "range": [when(start), when(end)],
            "gridcolor": "#eef1f4",
        },
        "yaxis": {"title": {"text": plain(y_title)}, "gridcolor": "#eef1f4", "rangemode": "tozero"},
        "shapes": list(shapes),
        "annotations": list(annotations),
        "hovermode": "closest",
    }


def _sample_traces(metric: str, points: Sequence[SamplePoint]) -> list[dict[str, Any]]:
    traces = []
    for cohort in (Cohort.CANARY, Cohort.CONTROL):
        mine = [p for p in points if p.cohort == cohort]
        if not mine:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{cohort} samples",
                "x": [when(p.at) for p in mine],
                "y": [p.value for p in mine],
                "text": [f"{p.count} sample{'' if p.count == 1 else 's'}" for p in mine],
                "marker": {"color": COHORT_COLOURS[cohort], "size": 4, "opacity": 0.45},
                "hovertemplate": f"{plain(metric)} %{{y:.4g}} (%{{text}})<extra>{cohort}</extra>",
            }
        )
    return traces


def _gate_traces(
    gate: Gate, evaluations: Sequence[GateEvaluation], colour: str, start, end
) -> list[dict[str, Any]]:
    """The gate's evaluated value (markers coloured by outcome), control's value when it
    has a baseline, and its threshold line."""
    x = [when(e.evaluated_at) for e in evaluations]
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": plain(f"{gate.name}: {gate.aggregate} over {gate.window_seconds} s"),
            "x": x,
            "y": [e.value for e in evaluations],
            "text": [e.outcome for e in evaluations],
            "line": {"color": colour, "width": 2},
            "marker": {
                "size": 7,
                "color": [OUTCOME_COLOURS.get(e.outcome, "#94a3b8") for e in evaluations],
            },
            "connectgaps": False,
            "hovertemplate": f"{plain(gate.name)} %{{y:.4g}}: %{{text}}<extra></extra>",
        }
    ]
    baseline = gate.baseline or {}
    if baseline:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": plain(f"{gate.name}: control"),
                "x": x,
                "y": [e.control_value for e in evaluations],
                "line": {"color": COHORT_COLOURS[Cohort.CONTROL], "width": 2, "dash": "dash"},
                "hovertemplate": f"{plain(gate.name)} control %{{y:.4g}}<extra></extra>",
            }
        )
    if baseline.get("method") == "ratio":
        ratio = float(baseline.get("ratio", 1))
        line_x = x
        line_y = [
            e.control_value * ratio if e.control_value is not None else None for e in evaluations
        ]
        label = f"{gate.name} threshold: {ratio:g}x control"
    elif baseline:
        return traces  # a statistical test: no threshold in the metric's units
    else:
        line_x, line_y = [when(start), when(end)], [gate.threshold, gate.threshold]
        label = f"{gate.name} threshold: {gate.comparator} {gate.threshold:g}"
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": plain(label),
            "x": line_x,
            "y": line_y,
            "line": {"color": THRESHOLD_COLOUR, "width": 1.5, "dash": "dash"},
            "hovertemplate": f"{plain(label)}<extra></extra>",
        }
    )
    return traces


def metric_figures(
    release: Release,
    samples: Sequence[SamplePoint],
    evaluations: Sequence[GateEvaluation],
    events: Sequence[ReleaseEvent],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, dict[str, Any]]:
    """One figure per gated metric, keyed 'metric-<n>' in the order of the gates."""
    stages = {s.index: s for s in release.stages.all()}
    marks = event_marks(events, stages, start)
    by_gate: dict[int, list[GateEvaluation]] = defaultdict(list)
    for evaluation in evaluations:
        by_gate[evaluation.gate_id].append(evaluation)
    gates_by_metric: dict[str, list[Gate]] = {}
    for gate in release.gates.all():
        gates_by_metric.setdefault(gate.metric, []).append(gate)
    figures = {}
    for n, (metric, gates) in enumerate(gates_by_metric.items()):
        traces = _sample_traces(metric, [p for p in samples if p.metric == metric])
        for i, gate in enumerate(gates):
            colour = GATE_COLOURS[i % len(GATE_COLOURS)]
            traces += _gate_traces(gate, by_gate.get(gate.pk, []), colour, start, end)
        conditions = "; ".join(f"{g.name}: {gate_condition(g)}" for g in gates)
        figures[f"metric-{n}"] = {
            "data": traces,
            "layout": _layout(f"{metric} — {conditions}", metric, start, end, marks),
            "metric": metric,
        }
    return figures


def traffic_figure(
    release: Release, events: Sequence[ReleaseEvent], start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """The exposure (share of traffic on the on-value) over time, as the timeline set it."""
    stages = {s.index: s for s in release.stages.all()}
    x, y, text = [], [], []
    exposure = 0
    for event in events:
        if event.mode:
            exposure = exposure_of(event.mode, event.percentage)
        elif event.kind == "rolled_back":
            exposure = 0
        else:
            continue
        x.append(when(max(event.at, start)))
        y.append(exposure)
        text.append(plain(event_label(event, stages)))
    if x:
        x.append(when(end))
        y.append(exposure)
        text.append("now" if release.is_live else "end")
    figure_layout = _layout(
        "Traffic on the new path", "% of traffic", start, end, event_marks(events, stages, start)
    )
    figure_layout["yaxis"].update(range=[0, 105], ticksuffix="%")
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "exposure",
                "x": x,
                "y": y,
                "text": text,
                "line": {"shape": "hv", "color": "#2563eb", "width": 2},
                "fill": "tozeroy",
                "fillcolor": "rgba(37, 99, 235, 0.12)",
                "hovertemplate": "%{y}%: %{text}<extra></extra>",
            }
        ],
        "layout": figure_layout,
    }
