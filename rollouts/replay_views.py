"""Gate replay on a release's page: pick a gate (or edit its threshold, window, aggregate and
failures to act), a past period, and see evaluation by evaluation what it would have decided
and when it would have acted, over the recorded samples (rollouts.replay.gate_replay). A GET
form: nothing is written.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import page_selectors as reads
from .charts import plain, when
from .forms import ReplayForm
from .models import Outcome, Release
from .presenters import duration_text, value_text
from .replay import ReplayError, ReplayResult, gate_replay
from .views import wants_partial

REPLAY = "rollouts/replay.html"
ACTION_COLOUR = "#c81e1e"


def replay_figure(result: ReplayResult) -> dict[str, Any]:
    """Value vs threshold at each replayed evaluation, coloured by outcome, and the moment it
    would have acted marked."""
    from .charts import OUTCOME_COLOURS, THRESHOLD_COLOUR

    gate, points = result.gate, result.points
    x = [when(p.time) for p in points]
    layout: dict[str, Any] = {
        "title": {"text": plain(f"Replay of {gate.name}: {gate}"), "x": 0, "font": {"size": 13}},
        "height": 300,
        "margin": {"l": 56, "r": 24, "t": 56, "b": 40},
        "legend": {"orientation": "h", "x": 0, "y": -0.2},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {"type": "date", "gridcolor": "#eef1f4"},
        "yaxis": {
            "title": {"text": plain(gate.metric)},
            "gridcolor": "#eef1f4",
            "rangemode": "tozero",
        },
        "shapes": [],
        "annotations": [],
    }
    if result.acted_at is not None:
        at = when(result.acted_at)
        layout["shapes"].append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": ACTION_COLOUR, "width": 2},
            }
        )
        layout["annotations"].append(
            {
                "x": at,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "text": f"would {result.action}",
                "showarrow": False,
                "font": {"color": ACTION_COLOUR, "size": 11},
            }
        )
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "value",
                "x": x,
                "y": [p.value for p in points],
                "text": [p.outcome for p in points],
                "marker": {"size": 5, "color": [OUTCOME_COLOURS.get(p.outcome) for p in points]},
                "line": {"color": "#0f172a", "width": 1.5},
                "hovertemplate": "%{y:.4g}: %{text}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": plain(f"threshold {gate.comparator} {gate.threshold:g}"),
                "x": [x[0], x[-1]] if x else [],
                "y": [gate.threshold, gate.threshold] if x else [],
                "line": {"color": THRESHOLD_COLOUR, "dash": "dash", "width": 1.5},
            },
        ],
        "layout": layout,
    }


def replay_rows(result: ReplayResult) -> list[dict[str, Any]]:
    """The evaluations worth reading: the first, every change of outcome or of what it would
    do, the moment it would act, and the last (a long steady run is one row)."""
    rows, previous = [], None
    for n, point in enumerate(result.points):
        last = n == len(result.points) - 1
        acts = result.acted_at == point.time
        if (point.outcome, point.action) == previous and not acts and not last:
            continue
        previous = (point.outcome, point.action)
        rows.append(
            {
                "time": point.time,
                "outcome": point.outcome,
                "value": value_text(point.value),
                "samples": point.samples,
                "failures": point.counters.consecutive_failures,
                "action": point.action,
                "acts": acts,
                "detail": point.result.detail,
            }
        )
    return rows


def replay_form_context(release: Release, form: ReplayForm) -> dict[str, Any]:
    return {"replay_form": form, "replay_url": reverse("rollouts:replay", args=[release.pk])}


@require_GET
def release_replay(request: HttpRequest, pk: int) -> HttpResponse:
    release = reads.release_get_for_user(request.user, pk)
    now = timezone.now()
    form = ReplayForm(request.GET or None, release=release, now=now)
    context: dict[str, Any] = {
        "release": release,
        "environment": release.environment,
        **replay_form_context(release, form),
    }
    status = 200
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            result = gate_replay(
                release=release, gate=form.spec(), start=data["start"], end=data["end"]
            )
        except (ReplayError, ValidationError) as exc:
            status = 400
            context["replay_error"] = " ".join(getattr(exc, "messages", [str(exc)]))
        else:
            counts = result.outcome_counts
            context.update(
                result=result,
                edited=form.edited(),
                rows=replay_rows(result),
                counts=[(o, counts[o]) for o in Outcome.values if counts[o]],
                step=duration_text(result.step_seconds),
                replay_figures={"replay": replay_figure(result)},
            )
    elif form.is_bound:
        status = 400
    template = REPLAY + ("#replay" if wants_partial(request) else "")
    return render(request, template, context, status=status)
