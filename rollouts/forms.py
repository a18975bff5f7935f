"""The release pages' forms."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .models import Aggregate, Gate, Release

DEFAULT_HOURS = 2
MAX_DAYS = 31


class ControlForm(forms.Form):
    """A control's form (start, advance, pause, resume, roll back): why, for the trail."""

    reason = forms.CharField(max_length=2000, strip=True)


def _when(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


class ReplayForm(forms.Form):
    gate = forms.TypedChoiceField(coerce=int)
    threshold = forms.FloatField(required=False)
    window_seconds = forms.IntegerField(required=False, min_value=1, max_value=7 * 24 * 3600)
    aggregate = forms.ChoiceField(required=False, choices=[("", "as saved"), *Aggregate.choices])
    failures_to_act = forms.IntegerField(required=False, min_value=1, max_value=100)
    start = _when("From")
    end = _when("To")

    def __init__(self, *args: Any, release: Release, now: dt.datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = release
        self.gates = {gate.pk: gate for gate in release.gates.all()}
        self.fields["gate"].choices = [(pk, gate.name) for pk, gate in self.gates.items()]
        self.now = now

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        end = data.get("end") or self.now
        start = data.get("start") or self.default_start(end, data.get("gate"), data)
        if end <= start:
            raise ValidationError("The period's end must come after its start.")
        if end - start > dt.timedelta(days=MAX_DAYS):
            raise ValidationError(f"Replay at most {MAX_DAYS} days at a time.")
        data["start"], data["end"] = start, end
        return data

    def default_start(self, end: dt.datetime, gate_id: int | None, data: dict) -> dt.datetime:
        """The last DEFAULT_HOURS, but not before the gate's first evaluation could have been
        (one full window after the release began)."""
        start = end - dt.timedelta(hours=DEFAULT_HOURS)
        begun = self.release.started_at
        gate = self.gates.get(gate_id) if gate_id is not None else None
        if begun is not None and gate is not None:
            window = data.get("window_seconds") or gate.window_seconds
            start = max(start, begun + dt.timedelta(seconds=window))
        return min(start, end - dt.timedelta(minutes=1))

    def spec(self) -> dict[str, Any]:
        """The saved gate with the edits asked for (not saved)."""
        gate: Gate = self.gates[self.cleaned_data["gate"]]
        spec = {
            "name": gate.name,
            "metric": gate.metric,
            "aggregate": gate.aggregate,
            "comparator": gate.comparator,
            "threshold": gate.threshold,
            "window_seconds": gate.window_seconds,
            "min_samples": gate.min_samples,
            "failures_to_act": gate.failures_to_act,
            "no_data": gate.no_data,
            "on_failure": gate.on_failure,
            "advisory": gate.advisory,
            "baseline": gate.baseline,
            "source": gate.source,
        }
        for name in ("threshold", "window_seconds", "aggregate", "failures_to_act"):
            if self.cleaned_data.get(name) not in (None, ""):
                spec[name] = self.cleaned_data[name]
        return spec

    def edited(self) -> list[str]:
        gate = self.gates[self.cleaned_data["gate"]]
        spec = self.spec()
        return [
            f"{name.replace('_', ' ')} {getattr(gate, name)} → {spec[name]}"
            for name in ("threshold", "window_seconds", "aggregate", "failures_to_act")
            if spec[name] != getattr(gate, name)
        ]
