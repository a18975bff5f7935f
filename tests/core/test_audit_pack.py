"""Incident audit packs: one zip whose manifest hashes match its files, whose events are exactly
the window's, and whose flag states before and after are what the services did, rebuilt from
the audit trail alone."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from flags.models import FlagState
from flags.services import (
    flag_create,
    flag_state_set,
    kill_switch_engage,
    kill_switch_release,
    state_view,
)
from releasecontrol.audit import audit_verify
from releasecontrol.audit.packs import (
    audit_pack_build,
    pack_section_register,
    pack_section_unregister,
)
from releasecontrol.audit.selectors import AuditFilter, audit_events
from releasecontrol.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]


def state_now(flag, environment) -> dict[str, Any]:
    return state_view(FlagState.objects.get(flag=flag, environment=environment))


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as pack:
        assert pack.testzip() is None
        return {name: pack.read(name) for name in pack.namelist()}


@pytest.fixture
def incident(release_manager, oncall, agent, production, staging):
    """Changes before, during and after a window in production; what the services left."""
    checkout = flag_create(actor=release_manager, key="new-checkout", name="New checkout")
    search = flag_create(actor=release_manager, key="search-v2", name="Search v2")
    quiet = flag_create(actor=release_manager, key="quiet", name="Never changed in production")
    flag_state_set(
        actor=release_manager, flag=checkout, environment=production, mode="percentage",
        percentage=10, allowlist=["qa-1"], reason="canary",
    )  # fmt: skip
    flag_state_set(
        actor=release_manager, flag=search, environment=production, mode="full", reason="done"
    )
    flag_state_set(actor=release_manager, flag=quiet, environment=staging, mode="full")
    before = {
        "new-checkout": state_now(checkout, production),
        "search-v2": state_now(search, production),
    }

    since = timezone.now()
    flag_state_set(
        actor=release_manager, flag=checkout, environment=production, percentage=50,
        reason="widen",
    )  # fmt: skip
    late = flag_create(actor=release_manager, key="late", name="Created in the window")
    flag_state_set(
        actor=release_manager, flag=late, environment=production, mode="allowlist",
        allowlist=["u-1", "u-2"], reason="pilot",
    )  # fmt: skip
    rollback = kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="error spike"
    )
    engage = AuditEvent.objects.get(action="killswitch.engage")
    flag_state_set(actor=release_manager, flag=quiet, environment=staging, mode="off")
    after = {
        key: state_now(flag, production)
        for key, flag in (("new-checkout", checkout), ("search-v2", search), ("late", late))
    }
    until = timezone.now()

    kill_switch_release(actor=oncall, switch=rollback.switch, reason="fixed")
    flag_state_set(
        actor=release_manager, flag=search, environment=production, mode="full", reason="back"
    )
    return {
        "since": since,
        "until": until,
        "before": before,
        "after": after,
        "engage": engage,
        "late_first_before": {"mode": "off", "percentage": 0, "allowlist": [], "version": 1},
    }


def build(actor, **kwargs) -> tuple[Any, dict[str, bytes]]:
    pack = audit_pack_build(actor=actor, **kwargs)
    return pack, unzip(pack.read())


def test_audit_pack__window__manifest_hashes_match_every_file(incident, auditor, production):
    _, files = build(
        auditor, since=incident["since"], until=incident["until"], environment=production
    )

    manifest = json.loads(files.pop("manifest.json"))
    assert set(manifest["files"]) == set(files) == {
        "events.csv", "events.jsonl", "flag_states.json", "kill_switches.json",
    }  # fmt: skip
    for name, data in files.items():
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert manifest["files"][name]["bytes"] == len(data)
    assert manifest["environment"] == "production"
    assert (
        manifest["filter"]
        == AuditFilter(
            since=incident["since"], until=incident["until"], environment="production"
        ).as_params()
    )
    assert manifest["generated_by"] == {"name": "audrey", "kind": "human"}


def test_audit_pack__window__events_are_exactly_the_filtered_set(incident, auditor, production):
    audit_filter = AuditFilter(
        since=incident["since"], until=incident["until"], environment="production"
    )
    expected = [e.pk for e in reversed(audit_events(audit_filter))]

    pack, files = build(
        auditor, since=incident["since"], until=incident["until"], environment=production
    )

    csv_ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(files["events.csv"].decode()))]
    jsonl_ids = [json.loads(line)["id"] for line in files["events.jsonl"].decode().splitlines()]
    assert csv_ids == jsonl_ids == expected
    assert len(expected) == 3  # widen, pilot, roll back (flag.create has no environment)
    assert pack.manifest["counts"]["events.csv"] == 3


def test_audit_pack__flag_states__match_what_the_services_did(incident, auditor, production):
    _, files = build(
        auditor, since=incident["since"], until=incident["until"], environment=production
    )

    states = json.loads(files["flag_states.json"])["environments"]["production"]
    assert set(states) == {"new-checkout", "search-v2", "late"}  # "quiet" only changed in staging
    for key in ("new-checkout", "search-v2"):
        assert states[key]["before"] == incident["before"][key], key
        assert states[key]["after"] == incident["after"][key], key
        assert states[key]["changed"] is True
    # Rolled back: off, the rest of the state kept, one version more.
    assert states["new-checkout"]["after"] == {
        "mode": "off", "percentage": 50, "allowlist": ["qa-1"], "version": 4,
    }  # fmt: skip
    assert states["late"]["before"] == incident["late_first_before"]
    assert states["late"]["after"] == incident["after"]["late"]
    assert states["new-checkout"]["after_event"] == incident["engage"].pk


def test_audit_pack__window_with_no_changes__before_equals_after(incident, auditor, production):
    # A window after everything: every flag's last state is both its before and its after.
    later = timezone.now()

    _, files = build(
        auditor, since=later, until=later + dt.timedelta(minutes=5), environment=production
    )

    states = json.loads(files["flag_states.json"])["environments"]["production"]
    assert states["search-v2"]["before"] == states["search-v2"]["after"]
    assert states["search-v2"]["changed"] is False
    assert states["search-v2"]["changes_in_window"] == []


def test_audit_pack__kill_switch_event__an_hour_either_side(incident, auditor):
    engage = incident["engage"]

    pack, files = build(auditor, kill_switch_event=engage.pk)

    assert pack.manifest["since"] == (engage.created_at - dt.timedelta(hours=1)).isoformat(
        timespec="microseconds"
    )
    assert pack.manifest["until"] == (engage.created_at + dt.timedelta(hours=1)).isoformat(
        timespec="microseconds"
    )
    assert pack.manifest["kill_switch_event"] == engage.pk
    assert pack.filename == f"audit-pack-production-kill-switch-{engage.pk}.zip"
    switches = json.loads(files["kill_switches.json"])
    actions = [(e["action"], e["event"]) for e in switches["events"]]
    assert actions[0] == ("killswitch.engage", engage.pk)
    assert [e["action"] for e in switches["events"]] == ["killswitch.engage", "killswitch.release"]
    assert {entry["flag"] for entry in switches["events"][0]["turned_off"]} == {
        "new-checkout", "search-v2", "late",
    }  # fmt: skip
    assert switches["engaged_at_start"] == [] and switches["engaged_at_end"] == []
    # The hour around it holds every change of the fixture: states rebuilt across it.
    states = json.loads(files["flag_states.json"])["environments"]["production"]
    assert states["search-v2"]["after"]["mode"] == "full"  # turned back on after the release


def test_audit_pack__kill_switch_event_with_a_short_window__engaged_at_the_end(incident, auditor):
    engage = incident["engage"]

    pack, files = build(auditor, kill_switch_event=engage, window=dt.timedelta(microseconds=1))

    switches = json.loads(files["kill_switches.json"])
    assert [e["event"] for e in switches["events"]] == [engage.pk]
    assert [e["event"] for e in switches["engaged_at_end"]] == [engage.pk]
    assert pack.manifest["counts"]["events.csv"] == 1


def test_audit_pack__built__recorded_as_audit_pack_with_the_zip_hash(incident, auditor, production):
    head = AuditEvent.objects.order_by("-id").first()

    pack = audit_pack_build(
        actor=auditor, since=incident["since"], until=incident["until"], environment=production
    )

    data = pack.read()
    recorded = AuditEvent.objects.get(action="audit.pack")
    assert recorded == pack.event and recorded.actor == auditor
    assert recorded.environment_id == "production"
    assert recorded.after["zip_sha256"] == hashlib.sha256(data).hexdigest() == pack.sha256
    assert recorded.after["chain_head"] == head.pk
    assert pack.manifest["chain_head"] == {"id": head.pk, "hash": head.hash}
    manifest_bytes = unzip(data)["manifest.json"]
    assert recorded.after["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)  # the denial commits on a connection of its own
def test_audit_pack__developer__refused_and_recorded(developer, production):
    now = timezone.now()

    with pytest.raises(PermissionDenied):
        audit_pack_build(actor=developer, since=now, until=now, environment=production)

    denied = AuditEvent.objects.get(action="audit.pack", outcome="denied")
    assert denied.actor == developer and denied.environment_id == "production"
    assert not AuditEvent.objects.filter(action="audit.pack", outcome="ok").exists()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"environment": "production"}, "since"),
        ({"since": "later", "environment": "production"}, "until"),
        ({"since": "later", "until": "earlier", "environment": "production"}, "until"),
        ({"since": "earlier", "until": "later", "environment": "nowhere"}, "environment"),
        ({"since": "earlier", "until": "later"}, "environment"),
        ({"kill_switch_event": "not-a-kill-switch"}, "kill_switch_event"),
        ({"kill_switch_event": 10**9}, "kill_switch_event"),
    ],
)
def test_audit_pack__bad_input__validation_error_names_the_field(incident, auditor, kwargs, field):
    moments = {"earlier": incident["since"], "later": incident["until"]}
    other = AuditEvent.objects.filter(action="flag.state.set").first()
    kwargs = {
        k: moments.get(v, v) if isinstance(v, str) and k != "environment" else v
        for k, v in kwargs.items()
    }
    if kwargs.get("kill_switch_event") == "not-a-kill-switch":
        kwargs["kill_switch_event"] = other.pk

    with pytest.raises(ValidationError) as error:
        audit_pack_build(actor=auditor, **kwargs)

    assert field in error.value.message_dict


def test_audit_pack__registered_section__in_the_zip_and_the_manifest(incident, auditor, production):
    def approvals(context, out) -> int:
        out.write(json.dumps({"environment": context.environment.slug, "requests": []}).encode())
        return 0

    pack_section_register("approvals.json", approvals, description="approval requests")
    try:
        _, files = build(
            auditor, since=incident["since"], until=incident["until"], environment=production
        )
    finally:
        pack_section_unregister("approvals.json")

    assert json.loads(files["approvals.json"]) == {"environment": "production", "requests": []}
    manifest = json.loads(files["manifest.json"])
    assert (
        manifest["files"]["approvals.json"]["sha256"]
        == hashlib.sha256(files["approvals.json"]).hexdigest()
    )
    assert manifest["counts"]["approvals.json"] == 0


def test_pack_section_register__manifest_name__refused(db):
    with pytest.raises(ValueError, match=r"manifest\.json"):
        pack_section_register("manifest.json", lambda c, o: 0, description="no")


def test_docs_verify_script__pack__files_and_events_verify_and_a_tampered_file_fails(
    incident, auditor, production, tmp_path
):
    text = (ROOT / "docs" / "audit.md").read_text()
    script = tmp_path / "verify_export.py"
    script.write_text(
        re.search(r"<!-- verify_export\.py: begin -->\n```python\n(.*?)```", text, re.S).group(1)
    )
    pack = audit_pack_build(
        actor=auditor, since=incident["since"], until=incident["until"], environment=production
    )
    good = tmp_path / "pack.zip"
    good.write_bytes(pack.read())
    files = unzip(pack.read())
    bad = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bad, "w") as out:
        for name, data in files.items():
            if name == "flag_states.json":
                data = data.replace(b'"percentage": 50', b'"percentage": 5')
            out.writestr(name, data)

    def run(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-I", str(script), str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    ok, broken = run(good), run(bad)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: every file matches manifest.json" in ok.stdout
    assert broken.returncode == 1
    assert "flag_states.json does not match its sha256" in broken.stdout


# --- The command --------------------------------------------------------------------------


def test_audit_pack_command__window__writes_the_zip_and_says_what_is_in_it(
    incident, auditor, tmp_path
):
    output = tmp_path / "incident.zip"
    out = io.StringIO()

    call_command(
        "audit_pack", "--since", incident["since"].isoformat(), "--until",
        incident["until"].isoformat(), "--environment", "production", "--output", str(output),
        "--as", "audrey", stdout=out,
    )  # fmt: skip

    files = unzip(output.read_bytes())
    manifest = json.loads(files["manifest.json"])
    assert manifest["counts"]["events.csv"] == 3
    assert "3 events, 3 flags, 1 kill-switch events" in out.getvalue()
    assert hashlib.sha256(output.read_bytes()).hexdigest() in out.getvalue()
    assert AuditEvent.objects.get(action="audit.pack").actor == auditor


def test_audit_pack_command__kill_switch_event__as_the_system_by_default(incident, tmp_path):
    output = tmp_path / "ks.zip"

    call_command(
        "audit_pack", "--kill-switch-event", str(incident["engage"].pk), "--window-minutes", "5",
        "--output", str(output), stdout=io.StringIO(),
    )  # fmt: skip

    manifest = json.loads(unzip(output.read_bytes())["manifest.json"])
    assert manifest["kill_switch_event"] == incident["engage"].pk
    assert manifest["generated_by"] == {"name": "system", "kind": "system"}


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Say which window"),
        (["--since", "soon", "--until", "2026-01-01"], "Bad window: --since"),
        (
            ["--since", "2026-01-02", "--until", "2026-01-01", "--environment", "production"],
            "--until: must not be before since",
        ),
        (["--kill-switch-event", "999999999"], "--kill-switch-event: event #999999999"),
    ],
)
def test_audit_pack_command__bad_input__command_error_says_what_to_fix(db, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("audit_pack", *args, "--output", str(tmp_path / "x.zip"))
    assert not (tmp_path / "x.zip").exists()


# --- The page: /audit/packs/ ------------------------------------------------------------------


def test_pack_page__auditor__form_lists_kill_switch_events(client, auditor, incident):
    client.force_login(auditor)

    response = client.get(f"/audit/packs/?kill_switch_event={incident['engage'].pk}")

    content = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="pack-form"' in content
    assert f'<option value="{incident["engage"].pk}" selected>' in content
    assert "killswitch.release" in content  # release events are packable too


def test_pack_post__window__downloads_the_zip_it_recorded(client, auditor, incident):
    client.force_login(auditor)
    since = incident["since"].astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    until = incident["until"].astimezone(dt.UTC).replace(tzinfo=None).isoformat()

    response = client.post(
        "/audit/packs/", {"environment": "production", "since": since, "until": until}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment;" in response["Content-Disposition"]
    assert "audit-pack-production-" in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    recorded = AuditEvent.objects.get(action="audit.pack")
    assert response["X-Audit-Pack-Sha256"] == hashlib.sha256(data).hexdigest()
    assert recorded.after["zip_sha256"] == hashlib.sha256(data).hexdigest()
    assert response["X-Audit-Pack-Event"] == str(recorded.pk)
    files = unzip(data)
    assert json.loads(files["manifest.json"])["counts"]["events.csv"] == 3


def test_pack_post__kill_switch_event__window_around_it(client, auditor, incident):
    client.force_login(auditor)

    response = client.post(
        "/audit/packs/", {"kill_switch_event": incident["engage"].pk, "window_minutes": "10"}
    )

    assert response.status_code == 200
    manifest = json.loads(unzip(b"".join(response.streaming_content))["manifest.json"])
    assert manifest["kill_switch_event"] == incident["engage"].pk
    since = dt.datetime.fromisoformat(manifest["since"])
    assert incident["engage"].created_at - since == dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    "data, field",
    [
        ({}, "environment"),
        ({"environment": "production", "since": "soon", "until": "2026-01-01"}, "since"),
        ({"environment": "production", "since": "2026-01-02", "until": "2026-01-01"}, "until"),
        ({"kill_switch_event": "123456789"}, "kill_switch_event"),
        ({"environment": "nowhere", "since": "2026-01-01", "until": "2026-01-02"}, "environment"),
    ],
)
def test_pack_post__bad_input__400_naming_the_field(client, auditor, incident, data, field):
    client.force_login(auditor)

    response = client.post("/audit/packs/", data)

    assert response.status_code == 400
    assert f'data-testid="error-{field}"' in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.pack").exists()


@pytest.mark.django_db(transaction=True)  # the denial commits on a connection of its own
@pytest.mark.parametrize("who", ["developer", "oncall", "outsider"])
def test_pack_page__not_an_auditor__403_and_the_attempt_recorded(client, request, who):
    user = request.getfixturevalue(who)
    client.force_login(user)

    assert client.get("/audit/packs/").status_code == 403
    response = client.post(
        "/audit/packs/",
        {"environment": "production", "since": "2026-01-01", "until": "2026-01-02"},
    )

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="audit.pack", outcome="ok").exists()
    denied = AuditEvent.objects.filter(outcome="denied", actor=user)
    assert [(e.action, e.target_name) for e in denied] == [("audit.pack", "incident audit pack")]


def test_pack_page__put__405(client, auditor):
    client.force_login(auditor)

    assert client.put("/audit/packs/").status_code == 405


def test_pack_page__older_kill_switch_event_asked_for__offered_too(
    client, auditor, oncall, staging
):
    # More kill-switch events than the form lists: the one a link asks for is still offered.
    for n in range(26):
        result = kill_switch_engage(
            actor=oncall, environment=staging, scope="environment", reason=f"drill {n}"
        )
        kill_switch_release(actor=oncall, switch=result.switch, reason="drill over")
    oldest = AuditEvent.objects.filter(action="killswitch.engage").order_by("id").first()
    client.force_login(auditor)

    listed = client.get("/audit/packs/").content.decode()
    asked = client.get(f"/audit/packs/?kill_switch_event={oldest.pk}").content.decode()

    assert f'<option value="{oldest.pk}"' not in listed
    assert f'<option value="{oldest.pk}" selected>' in asked
