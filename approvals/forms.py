"""The approvals pages' forms: parse and bound the input at the edge; the services validate
the rest (and name the fields)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django import forms
from django.utils import timezone

from .blackouts import DAY_NAMES
from .models import BlackoutKind, DecisionKind, Status
from .selectors import INBOX_VIEWS

HASH_PATTERN = r"^[0-9a-f]{64}$"
LOCAL_TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
DAY_CHOICES = [(name, name.capitalize()) for name in DAY_NAMES]


class InboxFilterForm(forms.Form):
    view = forms.ChoiceField(choices=[(v, v) for v in INBOX_VIEWS], required=False)
    environment = forms.SlugField(max_length=50, required=False)
    status = forms.ChoiceField(choices=[("", "any"), *Status.choices], required=False)
    before = forms.IntegerField(min_value=1, max_value=2**31 - 1, required=False)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=DecisionKind.choices)
    comment = forms.CharField(max_length=2000, required=False, strip=True)
    preview_hash = forms.RegexField(regex=HASH_PATTERN, max_length=64)


class ExecuteForm(forms.Form):
    reason = forms.CharField(max_length=1000, strip=True)


class ChecklistItemForm(forms.Form):
    checked = forms.TypedChoiceField(
        choices=[("1", "checked"), ("0", "unchecked")], coerce=lambda v: v == "1"
    )
    evidence = forms.CharField(max_length=2000, required=False, strip=True)


class PostReviewForm(forms.Form):
    notes = forms.CharField(max_length=5000, strip=True)


def _zone_or_error(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise forms.ValidationError(f"{name!r} is not a time zone (e.g. Europe/Berlin).") from None


class BlackoutForm(forms.Form):
    """One-off (start and end, read in the time zone) or weekly (day, time to day, time)."""

    kind = forms.ChoiceField(choices=BlackoutKind.choices)
    time_zone = forms.CharField(max_length=64, initial="UTC")
    starts_at = forms.DateTimeField(required=False, input_formats=LOCAL_TIME_FORMATS)
    ends_at = forms.DateTimeField(required=False, input_formats=LOCAL_TIME_FORMATS)
    day = forms.ChoiceField(choices=DAY_CHOICES, required=False)
    start = forms.TimeField(required=False, input_formats=["%H:%M"])
    end_day = forms.ChoiceField(choices=DAY_CHOICES, required=False)
    end = forms.TimeField(required=False, input_formats=["%H:%M"])
    reason = forms.CharField(max_length=1000, strip=True)

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"].strip() or "UTC"
        _zone_or_error(name)
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        if data["kind"] == BlackoutKind.ONE_OFF:
            for name in ("starts_at", "ends_at"):
                if data.get(name) is None:
                    self.add_error(name, "A one-off window needs its start and end.")
        else:
            for name in ("day", "start", "end_day", "end"):
                if not data.get(name):
                    self.add_error(name, "A weekly window needs its days and times.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        zone = _zone_or_error(data["time_zone"])
        kwargs: dict[str, Any] = {"reason": data["reason"], "time_zone": data["time_zone"]}
        if data["kind"] == BlackoutKind.ONE_OFF:
            # datetime-local inputs carry no zone: they are wall-clock times in the one named.
            kwargs["starts_at"] = _aware(data["starts_at"], zone)
            kwargs["ends_at"] = _aware(data["ends_at"], zone)
        else:
            kwargs["weekly"] = {
                "day": data["day"],
                "start": data["start"].strftime("%H:%M"),
                "end_day": data["end_day"],
                "end": data["end"].strftime("%H:%M"),
            }
        return kwargs


def _aware(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The wall-clock time typed, in `zone` (the form field made it aware in the site's)."""
    naive = timezone.make_naive(value) if timezone.is_aware(value) else value
    return naive.replace(tzinfo=zone)


class BlackoutDeleteForm(forms.Form):
    reason = forms.CharField(max_length=1000, strip=True)
