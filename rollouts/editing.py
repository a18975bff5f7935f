"""Preparing a release: create one, and edit it (a live one pauses; in production its
approval is void and a resume needs a new one). Imported from rollouts.services."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from flags.models import Flag
from flags.rules import clean_allowlist, unusable_text
from releasecontrol.audit import Target, audit_record
from releasecontrol.errors import Conflict
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .driving import event_add, flags_live_set, release_lock, release_target, release_view
from .models import Gate, Release, ReleaseEventKind, ReleaseFlag, ReleaseStatus, Stage
from .plans import StageSpec, acting_gates_check, gates_clean, plan_clean

RELEASE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,99}$")
RELEASE_VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9+_-]|\.(?!\.)){0,63}$")
MAX_FLAGS = 100
DEAD_MAN_RANGE = (10, 7 * 24 * 3600)
EDITABLE = ("name", "version", "flags", "allowlist", "plan", "gates", "dead_man_seconds")
# Edits that change what the release does (its revision, so an approval no longer covers it).
PLAN_FIELDS = ("flags", "allowlist", "plan", "gates")
GATE_COLUMNS = (
    "metric",
    "aggregate",
    "comparator",
    "threshold",
    "window_seconds",
    "min_samples",
    "failures_to_act",
    "no_data",
    "on_failure",
    "advisory",
    "promql",
    "baseline",
)


class ReleaseEnded(Conflict):
    code = "release_state"


def _text_error(value: Any, pattern: re.Pattern, help_text: str, *, blank: bool) -> str | None:
    if blank and value == "":
        return None
    if not isinstance(value, str) or unusable_text(value) or not pattern.match(value):
        return help_text
    return None


def fields_clean(
    values: dict[str, Any], *, production: bool, current_stages: Sequence[StageSpec] = ()
) -> dict[str, Any]:
    """Validate before anything is authorized; every error names its field."""
    unknown = set(values) - set(EDITABLE)
    errors: dict[str, Any] = {f: "this field cannot be set on a release" for f in unknown}
    clean: dict[str, Any] = {}
    if "name" in values:
        why = _text_error(
            values["name"],
            RELEASE_NAME,
            "1-100 letters, digits, . _ - (no '..'), starting with a letter or digit",
            blank=False,
        )
        errors.update({"name": why} if why else {})
        clean["name"] = values["name"]
    if "version" in values:
        why = _text_error(
            values["version"],
            RELEASE_VERSION,
            "up to 64 letters, digits, . + _ - (no '..'), starting with a letter or digit",
            blank=True,
        )
        errors.update({"version": why} if why else {})
        clean["version"] = values["version"]
    if "flags" in values:
        flags = list(values["flags"] or [])
        if not flags or len(flags) > MAX_FLAGS or not all(isinstance(f, Flag) for f in flags):
            errors["flags"] = f"1 to {MAX_FLAGS} flags"
        elif len({f.pk for f in flags}) != len(flags):
            errors["flags"] = "each flag once"
        elif archived := [f.key for f in flags if f.archived]:
            errors["flags"] = f"archived: {', '.join(archived)}"
        clean["flags"] = flags
    if "allowlist" in values:
        try:
            clean["allowlist"] = clean_allowlist(list(values["allowlist"] or []))
        except (ValueError, TypeError) as error:
            errors["allowlist"] = str(error)
    if "dead_man_seconds" in values:
        seconds = values["dead_man_seconds"]
        low, high = DEAD_MAN_RANGE
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
            errors["dead_man_seconds"] = f"a whole number of seconds from {low} to {high}"
        clean["dead_man_seconds"] = seconds
    stages: list[StageSpec] | None = None
    if "plan" in values:
        try:
            clean["plan_template"], stages = plan_clean(values["plan"])
            clean["plan"] = stages
        except ValidationError as error:
            errors.update(error.message_dict)
    if "gates" in values and (stages is not None or "plan" not in values):
        try:
            clean["gates"] = gates_clean(
                values["gates"], stages if stages is not None else current_stages
            )
            acting_gates_check(clean["gates"], production=production)
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    return clean


def _stages_write(release: Release, stages: Sequence[StageSpec]) -> list[Stage]:
    """Stages by index, updated in place (gates on a stage keep their evaluations)."""
    Stage.objects.filter(release=release, index__gte=len(stages)).delete()
    rows = []
    for index, spec in enumerate(stages):
        row, _ = Stage.objects.update_or_create(
            release=release, index=index, defaults=spec.as_dict()
        )
        rows.append(row)
    return rows


def _gates_write(release: Release, gates: Iterable[dict], stages: list[Stage]) -> None:
    """Gates by name: kept (counters reset when their definition changed), added, removed."""
    existing = {g.name: g for g in Gate.objects.filter(release=release)}
    wanted = {g["name"]: g for g in gates}
    Gate.objects.filter(release=release).exclude(name__in=list(wanted)).delete()
    for name, spec in wanted.items():
        stage = stages[spec["stage"]] if spec["stage"] is not None else None
        values = {column: spec[column] for column in GATE_COLUMNS}
        gate = existing.get(name)
        if gate is None:
            Gate.objects.create(release=release, name=name, stage=stage, **values)
            continue
        if gate.stage_id != (stage.pk if stage else None) or any(
            getattr(gate, c) != v for c, v in values.items()
        ):
            for column, value in values.items():
                setattr(gate, column, value)
            gate.stage = stage
            gate.consecutive_failures = gate.consecutive_errors = 0
            gate.save()


def _flags_write(release: Release, flags: list[Flag]) -> None:
    ReleaseFlag.objects.filter(release=release).exclude(flag__in=flags).delete()
    have = set(ReleaseFlag.objects.filter(release=release).values_list("flag_id", flat=True))
    ReleaseFlag.objects.bulk_create(
        ReleaseFlag(release=release, flag=f, environment=release.environment)
        for f in flags
        if f.pk not in have
    )


def release_definition(release: Release) -> dict[str, Any]:
    """What a release is, as its audit events record it."""
    stage_names = {s.pk: s.name for s in release.stages.all()}
    return {
        **release_view(release),
        "version": release.version,
        "environment": release.environment.slug,
        "flags": sorted(rf.flag.key for rf in release.release_flags.select_related("flag")),
        "allowlist": release.allowlist,
        "plan_template": release.plan_template,
        "stages": [
            {
                "name": s.name,
                "mode": s.mode,
                "percentage": s.percentage,
                "hold_seconds": s.hold_seconds,
                "needs_go": s.needs_go,
            }
            for s in release.stages.all()
        ],
        "gates": [
            {"name": g.name, "stage": stage_names.get(g.stage_id), **gate_columns(g)}
            for g in release.gates.all()
        ],
        "dead_man_seconds": release.dead_man_seconds,
    }


def gate_columns(gate: Gate) -> dict[str, Any]:
    return {column: getattr(gate, column) for column in GATE_COLUMNS}


@transaction.atomic
def release_create(
    *,
    actor: User,
    name: str,
    version: str,
    environment: Environment,
    flags: list[Flag],
    plan: str | list[dict] | dict,
    gates: list[dict],
    allowlist: Iterable[str] = (),
    dead_man_seconds: int = 300,
    reason: str = "",
) -> Release:
    """A draft release: its flags, plan (a template name or custom stages) and gates."""
    clean = fields_clean(
        {
            "name": name,
            "version": version,
            "flags": flags,
            "allowlist": list(allowlist),
            "plan": plan,
            "gates": gates,
            "dead_man_seconds": dead_man_seconds,
        },
        production=environment.is_production,
    )
    authorize(
        actor,
        actions.RELEASE_CREATE,
        environment,
        target=Target("release", "", name),
        requested={"name": name, "flags": [f.key for f in clean["flags"]]},
        reason=reason,
    )
    now = timezone.now()
    release = Release.objects.create(
        name=clean["name"],
        version=clean["version"],
        environment=environment,
        allowlist=clean["allowlist"],
        plan_template=clean["plan_template"],
        dead_man_seconds=clean["dead_man_seconds"],
        requested_by=actor,
        created_at=now,
        updated_at=now,
    )
    _flags_write(release, clean["flags"])
    _gates_write(release, clean["gates"], _stages_write(release, clean["plan"]))
    event_add(release, ReleaseEventKind.CREATED, actor=actor, reason=reason, at=now)
    audit_record(
        actor=actor,
        action=actions.RELEASE_CREATE.name,
        environment=environment,
        target=release_target(release),
        after=release_definition(release),
        reason=reason,
    )
    return release


def _existing_gates(release: Release) -> list[dict[str, Any]]:
    stage_index = {s.pk: s.index for s in release.stages.all()}
    return [
        {"name": g.name, "stage": stage_index.get(g.stage_id), **gate_columns(g)}
        for g in release.gates.all()
    ]


@transaction.atomic
def release_update(*, actor: User, release: Release, reason: str, **fields: Any) -> Release:
    """Edit a release. A live one pauses (reason recorded); in production its approval is
    void, so a resume needs a new one. Whoever edits the plan becomes one of its editors
    (their metric samples never count toward a success in production)."""
    release = release_lock(release)
    production = release.environment.is_production
    if "plan" in fields and "gates" not in fields:
        # The gates stay; they must still fit the new plan's stages.
        fields = {**fields, "gates": _gates_as_specs(release)}
    current = [
        StageSpec(s.name, s.mode, s.percentage, s.hold_seconds, s.needs_go)
        for s in release.stages.all()
    ]
    clean = fields_clean(fields, production=production, current_stages=current)
    authorize(
        actor,
        actions.RELEASE_UPDATE,
        release.environment,
        target=release_target(release),
        requested={"release": release.pk, "fields": sorted(fields)},
        reason=reason,
    )
    if release.status in (ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK):
        raise ReleaseEnded(
            f"Release #{release.pk} is {release.get_status_display().lower()}: it is not "
            "edited any more (start a new release).",
            release_status=release.status,
        )
    before = release_definition(release)
    now = timezone.now()
    for name in ("name", "version", "allowlist", "dead_man_seconds", "plan_template"):
        if name in clean:
            setattr(release, name, clean[name])
    if "flags" in clean:
        _flags_write(release, clean["flags"])
        if release.is_live:
            flags_live_set(release, True)
    if "plan" in clean:
        stages = _stages_write(release, clean["plan"])
    else:
        stages = list(release.stages.all())
    if "gates" in clean:
        _gates_write(release, clean["gates"], stages)
    if release.current_stage_index is not None and release.current_stage_index >= len(stages):
        release.current_stage_index = len(stages) - 1
    if any(f in clean for f in PLAN_FIELDS):
        release.revision += 1
        release.plan_editors.add(actor)
    paused = release.status == ReleaseStatus.IN_PROGRESS
    if paused:
        release.status = ReleaseStatus.PAUSED
        release.paused_reason = f"edited by {actor.get_username()}: {reason or 'no reason given'}"
    if production and release.is_live:
        release.approved_by, release.approval_request_id = None, None
    release.updated_at = now
    release.save()
    event_add(release, ReleaseEventKind.EDITED, actor=actor, reason=reason, at=now)
    if paused:
        event_add(release, ReleaseEventKind.PAUSED, actor=actor, reason=release.paused_reason)
    audit_record(
        actor=actor,
        action=actions.RELEASE_UPDATE.name,
        environment=release.environment,
        target=release_target(release),
        before=before,
        after={**release_definition(release), "approval_void": production and release.is_live},
        reason=reason,
    )
    return release


def _gates_as_specs(release: Release) -> list[dict[str, Any]]:
    """The current gates as specifications gates_clean accepts."""
    specs = []
    for gate in _existing_gates(release):
        promql = gate.pop("promql")
        specs.append({**gate, "source": {"prometheus": promql} if promql else "push"})
    return specs
