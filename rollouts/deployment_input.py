"""What a pipeline sends when it registers or reports a deployment, checked at the edge
(before anything is authorized): each error names its field."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from releasecontrol.models import Environment
from releasecontrol.validation import text_problem

from .models import DeploymentKind, Release

SERVICE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
COMMIT_PATTERN = re.compile(r"^[0-9a-fA-F]{7,64}$")
# An OCI-style digest: algorithm, colon, hex (sha256:..., sha512:...).
ARTIFACT_PATTERN = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,128}$")
MAX_NOTES = 2000
MAX_DETAIL = 2000
MAX_SMOKE = 1_000_000
COMMIT_TIME_SLACK = dt.timedelta(minutes=5)


def clean_text(errors: dict[str, str], name: str, value: Any, *, limit: int, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[name] = "must be text"
        return ""
    value = value.strip()
    problem = text_problem(value)
    if problem:
        errors[name] = problem
    elif required and not value:
        errors[name] = "required."
    elif len(value) > limit:
        errors[name] = f"at most {limit} characters."
    return value


def clean_registration(
    *,
    environment: Environment,
    service: Any,
    version: Any,
    commit: Any,
    commit_time: Any,
    artifact: Any,
    kind: Any,
    release: Release | None,
    notes: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    service = clean_text(errors, "service", service, limit=100, required=True)
    if "service" not in errors and not SERVICE_PATTERN.match(service):
        errors["service"] = "letters, digits and . _ / - only, starting with a letter or digit."
    version = clean_text(errors, "version", version, limit=100, required=True)
    commit = clean_text(errors, "commit", commit, limit=64, required=True)
    if "commit" not in errors and not COMMIT_PATTERN.match(commit):
        errors["commit"] = "a commit hash: 7 to 64 hexadecimal digits."
    if not isinstance(commit_time, dt.datetime) or timezone.is_naive(commit_time):
        errors["commit_time"] = "a time with its zone, e.g. 2026-12-01T08:12:00Z."
    elif commit_time > now + COMMIT_TIME_SLACK:
        errors["commit_time"] = "is in the future: send the commit's own time."
    artifact = clean_text(errors, "artifact", artifact, limit=200, required=True)
    if "artifact" not in errors and not ARTIFACT_PATTERN.match(artifact):
        errors["artifact"] = "an artifact digest, e.g. sha256:<64 hex digits>."
    if kind not in DeploymentKind.values:
        errors["kind"] = f"must be one of {', '.join(DeploymentKind.values)}."
    notes = clean_text(errors, "notes", notes, limit=MAX_NOTES, required=False)
    if release is not None and release.environment_id != environment.pk:
        errors["release"] = (
            f"release {release.pk} is in {release.environment.slug}, not {environment.slug}."
        )
    if errors:
        raise ValidationError(errors)
    return {
        "service": service,
        "version": version,
        "commit": commit,
        "commit_time": commit_time,
        "artifact": artifact,
        "kind": kind,
        "notes": notes,
    }


def clean_smoke_tests(smoke_tests: Any) -> dict[str, int] | None:
    if smoke_tests is None:
        return None
    if not isinstance(smoke_tests, dict) or set(smoke_tests) - {"passed", "failed"}:
        raise ValidationError({"smoke_tests": 'an object {"passed": n, "failed": n}.'})
    clean = {}
    for name in ("passed", "failed"):
        value = smoke_tests.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SMOKE:
            raise ValidationError({f"smoke_tests.{name}": f"a whole number from 0 to {MAX_SMOKE}."})
        clean[name] = value
    return clean
