"""Forms for the flag pages: turn what a person typed into what the services take.

They check shapes only (a number, a JSON object, a key's characters); the services
decide everything else (policy, kill switches, versions, the production reason).
"""

from __future__ import annotations

import math
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from releasecontrol.models import Environment
from releasecontrol.validation import json_loads_strict

from .models import FLAG_KEY_HELP, FLAG_KEY_PATTERN, Flag, FlagType, KillSwitchScope, Mode, Tag
from .rules import clean_allowlist

_LIST_SEPARATORS = re.compile(r"[\n,]+")
TAG_PATTERN = re.compile(r"^[-a-zA-Z0-9_]{1,50}$")


def split_list(text: str) -> list[str]:
    """Tags: one a line or comma-separated (a tag holds no comma); blanks dropped."""
    return [part.strip() for part in _LIST_SEPARATORS.split(text or "") if part.strip()]


def split_lines(text: str) -> list[str]:
    """Allowlists: one targeting key a line, exactly (a key may hold a comma: `tenant,42`);
    surrounding spaces and blank lines dropped."""
    return [line.strip() for line in (text or "").split("\n") if line.strip()]


def parse_value(raw: str, flag_type: str) -> Any:
    """A typed flag value from text; ValueError says what to type instead."""
    if flag_type == FlagType.BOOLEAN:
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError("type true or false")
        return lowered == "true"
    if flag_type == FlagType.INTEGER:
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("type a whole number, e.g. 42") from None
    if flag_type == FlagType.FLOAT:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("type a number, e.g. 0.25") from None
        if not math.isfinite(value):
            raise ValueError("type a finite number")
        return value
    if flag_type == FlagType.OBJECT:
        try:
            value = json_loads_strict(raw, where="the value")
        except ValueError as exc:
            raise ValueError(f'type a JSON object, e.g. {{"limit": 3}} ({exc})') from None
        if not isinstance(value, dict):
            raise ValueError('type a JSON object (in braces), e.g. {"limit": 3}')
        return value
    return raw  # string: exactly as typed


class FlagCreateForm(forms.Form):
    key = forms.CharField(
        max_length=100,
        validators=[RegexValidator(FLAG_KEY_PATTERN, FLAG_KEY_HELP)],
        help_text="Letters, digits, dot, underscore, hyphen: services ask for the flag by it.",
    )
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the key.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma-separated, e.g. calling, ocr: a tag kill switch turns them all off.",
    )
    type = forms.ChoiceField(choices=FlagType.choices, initial=FlagType.BOOLEAN)
    on_value = forms.CharField(
        required=False,
        strip=False,
        help_text="What the flag answers when on. Booleans default to true.",
    )
    off_value = forms.CharField(
        required=False,
        strip=False,
        help_text="What it answers when off. Booleans default to false.",
    )
    reason = forms.CharField(required=False, max_length=2000)

    def clean_tags(self) -> list[str]:
        tags = [t.lower() for t in split_list(self.cleaned_data["tags"])]
        bad = [t for t in tags if not TAG_PATTERN.match(t)]
        if bad:
            raise ValidationError(
                f"Tags use letters, digits, hyphen and underscore (at most 50): {', '.join(bad)}"
            )
        return tags

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        flag_type = data.get("type")
        if not flag_type:
            return data
        for field in ("on_value", "off_value"):
            raw = data.get(field) or ""
            if not raw.strip() and flag_type != FlagType.STRING:
                if flag_type == FlagType.BOOLEAN:
                    data[field] = None  # the service's default: true / false
                else:
                    self.add_error(field, f"A {flag_type} flag needs this value.")
                continue
            try:
                data[field] = parse_value(raw, flag_type)
            except ValueError as exc:
                self.add_error(field, f"Not a {flag_type} value: {exc}.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "key": data["key"],
            "name": data["name"] or data["key"],
            "description": data["description"],
            "tags": data["tags"],
            "type": data["type"],
            "on_value": data["on_value"],
            "off_value": data["off_value"],
            "reason": data["reason"],
        }


class FlagStateForm(forms.Form):
    """An edit of one cell. `version` is the state the editor showed (stale -> 409)."""

    mode = forms.ChoiceField(choices=Mode.choices)
    percentage = forms.IntegerField(min_value=0, max_value=100, required=False)
    allowlist = forms.CharField(required=False, widget=forms.Textarea)
    version = forms.IntegerField(min_value=0, required=False)
    reason = forms.CharField(required=False, max_length=2000)
    # Production edits come back once as a confirmation; the confirmed form sets this.
    confirmed = forms.BooleanField(required=False)

    def clean_allowlist(self) -> list[str]:
        try:
            return clean_allowlist(split_lines(self.cleaned_data["allowlist"]))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class StateRestoreForm(forms.Form):
    """Bring back the state an audit event shows: its result, or for a kill switch the
    state it turned off. `version` is the current state the page showed (stale -> 409)."""

    event = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    # "" the event's own choice (a change's result, a kill switch's before), or either side.
    side = forms.ChoiceField(
        choices=[("", "default"), ("before", "before"), ("after", "after")], required=False
    )
    version = forms.IntegerField(min_value=0, required=False)
    reason = forms.CharField(required=False, max_length=2000)
    confirmed = forms.BooleanField(required=False)


class KillSwitchEngageForm(forms.Form):
    scope = forms.ChoiceField(choices=KillSwitchScope.choices)
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), to_field_name="slug")
    flag = forms.ModelChoiceField(queryset=Flag.objects.all(), to_field_name="key", required=False)
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), to_field_name="name", required=False)
    reason = forms.CharField(required=False, max_length=2000)


class KillSwitchReleaseForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)
