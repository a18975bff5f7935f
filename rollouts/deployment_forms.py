"""The filters of the deployment history and DORA pages (GET forms)."""

from __future__ import annotations

import datetime as dt

from django import forms

from .dora import MAX_DAYS
from .models import DeploymentStatus


class DeploymentFilterForm(forms.Form):
    environment = forms.SlugField(required=False, max_length=50)
    service = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(required=False, choices=[("", "Any"), *DeploymentStatus.choices])
    since = forms.DateField(required=False, help_text="From this day (UTC).")
    until = forms.DateField(required=False, help_text="Up to and including this day (UTC).")
    before = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "ends before it starts")
        return data

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        data = self.cleaned_data
        start = data.get("since")
        end = data.get("until")
        return (
            dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC) if start else None,
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            if end
            else None,
        )


class DoraFilterForm(forms.Form):
    environment = forms.SlugField(required=False, max_length=50)
    service = forms.CharField(required=False, max_length=100)
    days = forms.IntegerField(required=False, min_value=1, max_value=MAX_DAYS)
