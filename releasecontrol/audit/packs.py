"""Incident audit packs: one zip holding what happened in an environment during a window.

    events.csv, events.jsonl   the window's events (a filtered export: docs/audit.md)
    flag_states.json           each flag's state before and after the window, rebuilt from
                               the audit trail alone
    kill_switches.json         kill switches engaged at the start and end, and every engage /
                               release (or refused attempt) in the window
    <sections other apps add>  approvals, gate evaluations, metric samples...
    manifest.json              sha256 and size of every file, the filter, counts, the chain
                               head at pack time

A pack for a kill-switch event covers the hour before to the hour after it (configurable).
Apps add sections with `pack_section_register` (in their AppConfig.ready()): each writes one
file from the pack's context and returns how many items it wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from ..models import AuditEvent, Environment, Outcome, User
from . import Target, audit_record, format_time
from .export import Writable, audit_export
from .selectors import AuditFilter

PACK_FORMAT_VERSION = 1
DEFAULT_KILL_SWITCH_WINDOW = dt.timedelta(hours=1)
# Packs up to this size stay in memory; larger ones spill to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024

STATE_ACTIONS = ("flag.state.set", "flag.state.restore")
KILL_SWITCH_ENGAGE = "killswitch.engage"
KILL_SWITCH_RELEASE = "killswitch.release"
KILL_SWITCH_ACTIONS = (KILL_SWITCH_ENGAGE, KILL_SWITCH_RELEASE)


def kill_switch_window() -> dt.timedelta:
    minutes = getattr(settings, "AUDIT_PACK_KILL_SWITCH_WINDOW_MINUTES", None)
    return dt.timedelta(minutes=minutes) if minutes else DEFAULT_KILL_SWITCH_WINDOW


# --- What a section sees, and the registry ------------------------------------------------


@dataclass(frozen=True)
class PackContext:
    """The pack's question, as every section answers it."""

    actor: User
    environment: Environment
    since: dt.datetime
    until: dt.datetime
    # Sections read events up to here (the chain head when the pack began), so every file
    # describes the same moment however many events arrive meanwhile.
    head_id: int
    kill_switch_event: AuditEvent | None = None

    @property
    def audit_filter(self) -> AuditFilter:
        return AuditFilter(since=self.since, until=self.until, environment=self.environment.slug)

    def events(self) -> Any:
        """The window's events in this environment, oldest first (a queryset)."""
        return AuditEvent.objects.filter(
            environment_id=self.environment.slug,
            created_at__gte=self.since,
            created_at__lte=self.until,
            id__lte=self.head_id,
        ).order_by("id")


# Writes one file into the zip; returns how many items it holds (for the manifest).
SectionWriter = Callable[[PackContext, Writable], int]


@dataclass(frozen=True)
class PackSection:
    filename: str
    description: str
    write: SectionWriter
    order: int = 100


_SECTIONS: dict[str, PackSection] = {}


def pack_section_register(
    filename: str, write: SectionWriter, *, description: str, order: int = 100
) -> PackSection:
    """Add a file to every pack (idempotent per file name: the last registration wins)."""
    if filename == "manifest.json" or "/" in filename or not filename:
        raise ValueError(f"{filename!r} cannot be a pack section's file name")
    section = PackSection(filename, description, write, order)
    _SECTIONS[filename] = section
    return section


def pack_section_unregister(filename: str) -> None:
    _SECTIONS.pop(filename, None)


def pack_sections() -> list[PackSection]:
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.filename))


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


# --- The core's sections --------------------------------------------------------------------


def _write_events(fmt: str) -> SectionWriter:
    def write(context: PackContext, out: Writable) -> int:
        return audit_export(context.audit_filter, fmt=fmt, to_id=context.head_id).write_to(out)

    return write


def _state_after_kill_switch(before: dict[str, Any]) -> dict[str, Any]:
    """What kill_switch_engage leaves: mode off, one version more, the rest untouched."""
    version = before.get("version")
    return {**before, "mode": "off", "version": version + 1 if isinstance(version, int) else None}


def flag_states_rebuild(
    *,
    environment: str,
    since: dt.datetime,
    until: dt.datetime,
    head_id: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Each flag's state before and after the window in one environment, from the audit trail
    alone: the last recorded change before `since` gives "before", the last by `until` gives
    "after". A flag first changed inside the window takes "before" from that change's own
    `before`. Only changes that happened count (outcome ok): refusals changed nothing.
    """
    changes = AuditEvent.objects.filter(
        Q(action__in=STATE_ACTIONS, target_type="flag") | Q(action=KILL_SWITCH_ENGAGE),
        environment_id=environment,
        outcome=Outcome.OK,
        created_at__lte=until,
    )
    if head_id is not None:
        changes = changes.filter(id__lte=head_id)
    flags: dict[str, dict[str, Any]] = {}
    for event_id, created_at, action, target_name, before, after in changes.order_by(
        "id"
    ).values_list("id", "created_at", "action", "target_name", "before", "after"):
        if action == KILL_SWITCH_ENGAGE:
            turned_off = (before or {}).get("states") or []
            moves = [
                (entry["flag"], entry["before"], _state_after_kill_switch(entry["before"]))
                for entry in turned_off
                if isinstance(entry, dict) and isinstance(entry.get("before"), dict)
            ]
        else:
            moves = [(target_name, before, after)]
        in_window = created_at >= since
        for key, state_before, state_after in moves:
            flag = flags.setdefault(
                key,
                {
                    "before": None,
                    "before_event": None,
                    "after": None,
                    "after_event": None,
                    "changes_in_window": [],
                },
            )
            if in_window:
                if not flag["changes_in_window"] and flag["before_event"] is None:
                    # No change before the window: the first one in it says what was there.
                    flag["before"], flag["before_event"] = state_before, event_id
                flag["changes_in_window"].append(event_id)
            else:
                flag["before"], flag["before_event"] = state_after, event_id
            flag["after"], flag["after_event"] = state_after, event_id
    for flag in flags.values():
        flag["changed"] = bool(flag["changes_in_window"])
    return dict(sorted(flags.items()))


def _write_flag_states(context: PackContext, out: Writable) -> int:
    flags = flag_states_rebuild(
        environment=context.environment.slug,
        since=context.since,
        until=context.until,
        head_id=context.head_id,
    )
    out.write(
        _json_bytes(
            {
                "about": (
                    "Each flag's state before and after the window, rebuilt from the audit "
                    "trail alone. before: the state after the last change recorded before "
                    "the window (before_event), or, for a flag first changed inside it, that "
                    "change's own before. after: the state after the last change by the end "
                    "of the window (after_event). A flag never changed has no state: off."
                ),
                "since": format_time(context.since),
                "until": format_time(context.until),
                "environments": {context.environment.slug: flags},
            }
        )
    )
    return len(flags)


def _kill_switch_entry(event: AuditEvent) -> dict[str, Any]:
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    entry: dict[str, Any] = {
        "event": event.pk,
        "at": format_time(event.created_at),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor_name,
        "actor_kind": event.actor_kind,
        "target_type": event.target_type,
        "target_name": event.target_name,
        "reason": event.reason,
    }
    if event.outcome != Outcome.OK:
        entry["refused"] = after.get("refused", "")
    elif event.action == KILL_SWITCH_ENGAGE:
        entry["kill_switch"] = after.get("kill_switch")
        entry["scope"] = after.get("scope")
        entry["turned_off"] = before.get("states", [])
    else:
        entry["kill_switch"] = before.get("kill_switch")
        entry["scope"] = before.get("scope")
    return entry


def _write_kill_switches(context: PackContext, out: Writable) -> int:
    events = AuditEvent.objects.filter(
        environment_id=context.environment.slug,
        action__in=KILL_SWITCH_ACTIONS,
        created_at__lte=context.until,
        id__lte=context.head_id,
    ).order_by("id")
    engaged: dict[Any, dict[str, Any]] = {}
    at_start: list[dict[str, Any]] = []
    in_window: list[dict[str, Any]] = []
    started = False
    for event in events.iterator(chunk_size=500):
        if not started and event.created_at >= context.since:
            at_start, started = list(engaged.values()), True
        entry = _kill_switch_entry(event)
        if started:
            in_window.append(entry)
        if event.outcome == Outcome.OK:
            if event.action == KILL_SWITCH_ENGAGE:
                engaged[entry["kill_switch"]] = entry
            else:
                engaged.pop(entry["kill_switch"], None)
    if not started:
        at_start = list(engaged.values())
    out.write(
        _json_bytes(
            {
                "about": (
                    "Kill switches in this environment, from the audit trail: those engaged "
                    "when the window began and when it ended, and every engage and release "
                    "in it, refused attempts included."
                ),
                "since": format_time(context.since),
                "until": format_time(context.until),
                "engaged_at_start": at_start,
                "events": in_window,
                "engaged_at_end": list(engaged.values()),
            }
        )
    )
    return len(in_window)


pack_section_register(
    "events.csv", _write_events("csv"), description="the window's audit events, CSV", order=10
)
pack_section_register(
    "events.jsonl",
    _write_events("jsonl"),
    description="the window's audit events, JSON Lines",
    order=11,
)
pack_section_register(
    "flag_states.json",
    _write_flag_states,
    description="each flag's state before and after the window, rebuilt from the audit trail",
    order=20,
)
pack_section_register(
    "kill_switches.json",
    _write_kill_switches,
    description="kill switches engaged at the start and end, and their events in the window",
    order=30,
)


# --- Building a pack ------------------------------------------------------------------------


class _HashingWriter:
    """Counts and hashes what passes through to the zip entry."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)


@dataclass
class AuditPack:
    """A built pack: read `file` (a binary stream at position 0) or call `read()`."""

    file: BinaryIO
    filename: str
    manifest: dict[str, Any]
    size: int
    sha256: str
    event: AuditEvent | None = field(default=None)  # the audit.pack event recording it

    def read(self) -> bytes:
        self.file.seek(0)
        data = self.file.read()
        self.file.seek(0)
        return data


def _resolve(
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    environment: Environment | str | None,
    kill_switch_event: AuditEvent | int | None,
    window: dt.timedelta | None,
) -> tuple[dt.datetime, dt.datetime, Environment, AuditEvent | None]:
    errors: dict[str, str] = {}
    event = None
    if kill_switch_event is not None:
        event_id = (
            kill_switch_event.pk if isinstance(kill_switch_event, AuditEvent) else kill_switch_event
        )
        event = AuditEvent.objects.filter(pk=event_id).first()
        if event is None or event.action not in KILL_SWITCH_ACTIONS:
            raise ValidationError(
                {"kill_switch_event": f"event #{event_id} is not a kill-switch engage or release"}
            )
        if event.environment_id is None:
            raise ValidationError({"kill_switch_event": f"event #{event_id} has no environment"})
        width = window if window is not None else kill_switch_window()
        if width <= dt.timedelta(0):
            raise ValidationError({"window": "must be longer than zero"})
        since = since or event.created_at - width
        until = until or event.created_at + width
        environment = environment or event.environment_id
    if since is None:
        errors["since"] = "say when the window begins"
    if until is None:
        errors["until"] = "say when the window ends"
    if since is not None and until is not None and since > until:
        errors["until"] = "must not be before since"
    if isinstance(environment, str):
        found = Environment.objects.filter(slug=environment).first()
        if found is None:
            errors["environment"] = f"no environment {environment!r}"
        environment = found
    elif environment is None:
        errors["environment"] = "a pack is for one environment: name it"
    if errors:
        raise ValidationError(errors)
    assert since is not None and until is not None and environment is not None
    return since, until, environment, event


def audit_pack_build(
    *,
    actor: User,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    environment: Environment | str | None = None,
    kill_switch_event: AuditEvent | int | None = None,
    window: dt.timedelta | None = None,
) -> AuditPack:
    """Build one incident audit pack (a zip) for a window in an environment, or for the hour
    around a kill-switch event. Authorized like an export of that environment; recorded as
    `audit.pack` with the zip's sha256, once it is built. Bad input raises ValidationError,
    a refusal PermissionDenied (recorded as denied)."""
    from ..actions import AUDIT_PACK  # the policy imports the audit package
    from ..policy import authorize

    since, until, environment, event = _resolve(
        since=since,
        until=until,
        environment=environment,
        kill_switch_event=kill_switch_event,
        window=window,
    )
    audit_filter = AuditFilter(since=since, until=until, environment=environment.slug)
    requested = {
        "filter": audit_filter.as_params(),
        "kill_switch_event": event.pk if event else None,
    }
    target = Target("audit", "", "incident audit pack")
    authorize(actor, AUDIT_PACK, environment, target=target, requested=requested)

    head = AuditEvent.objects.order_by("-id").values("id", "hash").first() or {
        "id": 0,
        "hash": "",
    }
    now = timezone.now()
    context = PackContext(actor, environment, since, until, head["id"], event)
    spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
    files: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    stamp = now.astimezone(dt.UTC).timetuple()[:6]
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as pack:
        for section in pack_sections():
            info = zipfile.ZipInfo(section.filename, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            with pack.open(info, "w", force_zip64=True) as entry:
                writer = _HashingWriter(entry)
                counts[section.filename] = section.write(context, writer)
            files[section.filename] = {
                "sha256": writer.sha256.hexdigest(),
                "bytes": writer.size,
                "description": section.description,
            }
        manifest = {
            "pack": "Release Control incident audit pack",
            "format_version": PACK_FORMAT_VERSION,
            "generated_at": format_time(now),
            "generated_by": {"name": actor.get_username(), "kind": actor.kind},
            "environment": environment.slug,
            "since": format_time(since),
            "until": format_time(until),
            "kill_switch_event": event.pk if event else None,
            "filter": audit_filter.as_params(),
            "chain_head": {"id": head["id"] or None, "hash": head["hash"] or None},
            "counts": counts,
            "files": files,
            "verify": "python3 verify_export.py <this zip> (docs/audit.md)",
        }
        info = zipfile.ZipInfo("manifest.json", date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        pack.writestr(info, _json_bytes(manifest))
    size = spool.tell()
    spool.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: spool.read(1 << 20), b""):
        digest.update(block)
    spool.seek(0)
    label = f"kill-switch-{event.pk}" if event else f"{since.astimezone(dt.UTC):%Y%m%dT%H%MZ}"
    filename = f"audit-pack-{environment.slug}-{label}.zip"
    recorded = audit_record(
        actor=actor,
        action=AUDIT_PACK.name,
        environment=environment,
        target=Target("auditpack", "", filename),
        after={
            **requested,
            "chain_head": head["id"] or None,
            "counts": counts,
            "zip_sha256": digest.hexdigest(),
            "manifest_sha256": hashlib.sha256(_json_bytes(manifest)).hexdigest(),
        },
    )
    return AuditPack(spool, filename, manifest, size, digest.hexdigest(), recorded)


def kill_switch_events(limit: int = 50, *, event_id: int | None = None) -> Iterable[AuditEvent]:
    """Kill-switch events a pack can be built around (the recent ones, or one), newest first."""
    events = AuditEvent.objects.filter(
        action__in=KILL_SWITCH_ACTIONS, outcome=Outcome.OK, environment__isnull=False
    )
    if event_id is not None:
        events = events.filter(pk=event_id)
    return events.order_by("-id")[:limit]
