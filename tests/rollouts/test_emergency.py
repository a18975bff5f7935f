"""The emergency rollback service: one transaction (kill switch, every flag off, every live
release rolled back, snapshot, one audit event with it, the outbox notice), idempotent, and a
switch engaged earlier still getting its releases stopped."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from flags.models import FlagState, KillSwitch
from flags.services import kill_switch_engage
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment, Notification, User
from releasecontrol.services import environment_configure
from rollouts.emergency import environment_rollback
from rollouts.models import Release, ReleaseEvent, ReleaseFlag, Rollback
from tests.rollouts.helpers import flags_on, live_release, mode_of


@pytest.fixture
def notified_production(production):
    environment_configure(
        actor=User.system(),
        environment=production,
        notification_emails="oncall@example.com",
        reason="pager",
    )
    return Environment.objects.get(pk=production.pk)


def test_environment_rollback__flags_on_and_live_releases__all_off_stopped_one_snapshot(
    release_manager, oncall, notified_production, staging
):
    production = notified_production
    checkout, calling, _ = flags_on(release_manager, production)
    flags_on(release_manager, staging, {"new-checkout": {"mode": "full"}})
    release = live_release(production, checkout)
    paused = live_release(production, calling, status="paused", name="calls")
    version = Environment.objects.get(pk=production.pk).flags_version

    result = environment_rollback(actor=oncall, environment=production, reason="5xx at 4%")

    assert not result.already
    assert sorted(t["flag"] for t in result.turned_off) == ["calling", "new-checkout", "ocr"]
    assert [r["id"] for r in result.releases_stopped] == [release.pk, paused.pk]
    assert {s.mode for s in FlagState.objects.filter(environment=production)} == {"off"}
    assert mode_of("new-checkout", staging) == "full"
    env = Environment.objects.get(pk=production.pk)
    assert env.kill_switch_engaged and env.flags_version == version + 1
    assert set(Release.objects.values_list("status", flat=True)) == {"rolled_back"}
    assert not ReleaseFlag.objects.filter(live=True).exists()
    timeline = ReleaseEvent.objects.filter(kind="rolled_back").order_by("release_id")
    assert [(e.release_id, e.actor, e.automatic, e.reason) for e in timeline] == [
        (release.pk, oncall, False, "5xx at 4%"),
        (paused.pk, oncall, False, "5xx at 4%"),
    ]
    rollback = Rollback.objects.get()
    assert rollback == result.rollback and rollback.kill_switch == KillSwitch.objects.get()
    calling_item = next(i for i in rollback.flag_states if i["flag"] == "calling")
    assert calling_item["before"] == {
        "mode": "percentage",
        "percentage": 20,
        "allowlist": ["vip-1"],
        "version": 2,
    }
    assert calling_item["after_version"] == 3
    assert rollback.snapshot["releases"][0] == {
        "id": release.pk,
        "name": "checkout",
        "version": "2.4.0",
        "status": "in_progress",
        "stage_index": 1,
        "stage": "canary",
        "mode": "percentage",
        "percentage": 5,
    }
    event = AuditEvent.objects.get(action="environment.rollback")
    assert (event.actor, event.environment_id, event.reason) == (oncall, "production", "5xx at 4%")
    engaged = AuditEvent.objects.get(action="killswitch.engage")
    # Each state turned off is recorded once: in the kill switch's event, which the
    # rollback's event and its row name (the snapshot a restore reads is append-only).
    assert event.before == {
        "flags": {"turned_off": 3, "states_in_event": engaged.pk},
        "releases": rollback.snapshot["releases"],
    }
    assert rollback.states_event == engaged and "flags" not in rollback.snapshot
    assert [
        {**s, "after_version": s["before"]["version"] + 1} for s in engaged.before["states"]
    ] == Rollback.objects.get().flag_states
    assert [i["flag"] for i in rollback.flag_states] == ["calling", "new-checkout", "ocr"]
    assert engaged.pk < event.pk
    assert event.after["rollback"] == rollback.pk
    assert event.after["releases_stopped"] == [release.pk, paused.pk]
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1
    notice = Notification.objects.get(event="environment.rollback")
    assert "omar rolled Production back" in notice.text and "5xx at 4%" in notice.text
    assert "checkout 2.4.0" in notice.text and f"/rollbacks/{rollback.pk}/" in notice.link
    assert notice.payload["turned_off"] == 3
    assert audit_verify().ok


def test_environment_rollback__pressed_again__same_rollback_nothing_changes(
    release_manager, oncall, production
):
    flags_on(release_manager, production)
    first = environment_rollback(actor=oncall, environment=production, reason="incident")
    events = AuditEvent.objects.count()

    again = environment_rollback(actor=release_manager, environment=production, reason="again")

    assert again.already and again.rollback_id == first.rollback_id
    assert (again.turned_off, again.releases_stopped) == ([], [])
    assert Rollback.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_environment_rollback__kill_switch_engaged_earlier__releases_still_stopped(
    release_manager, oncall, production
):
    checkout = flags_on(release_manager, production)[0]
    switch = kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="first"
    ).switch
    release = live_release(production, checkout, status="awaiting_approval")

    result = environment_rollback(actor=oncall, environment=production, reason="and releases")

    assert not result.already and result.turned_off == []
    assert [r["id"] for r in result.releases_stopped] == [release.pk]
    assert Release.objects.get(pk=release.pk).status == "rolled_back"
    assert result.rollback.kill_switch == switch
    assert result.rollback.snapshot["kill_switch"] == {"id": switch.pk, "engaged_earlier": True}
    assert Rollback.objects.get().flag_states == []  # nothing turned off by this one
    assert environment_rollback(actor=oncall, environment=production, reason="3rd").already


def test_rollback_flag_states__row_with_its_own_snapshot_of_flags__read_from_the_row(
    oncall, production
):
    item = {"flag": "ocr", "before": {"mode": "full", "percentage": 0, "allowlist": [],
                                      "version": 4}, "after_version": 5}  # fmt: skip
    rollback = Rollback.objects.create(
        environment=production, actor=oncall, reason="older row", snapshot={"flags": [item]}
    )

    assert Rollback.objects.get(pk=rollback.pk).flag_states == [item]


def test_environment_rollback__no_reason__refused_nothing_changes(oncall, production):
    with pytest.raises(ValidationError, match="Say why"):
        environment_rollback(actor=oncall, environment=production, reason="  ")
    assert not Rollback.objects.exists()
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged


@pytest.mark.django_db(transaction=True)
def test_environment_rollback__agent__refused_denial_audited_nothing_changes(
    agent, release_manager, production
):
    flags_on(release_manager, production)
    with pytest.raises(PermissionDenied, match="agent"):
        environment_rollback(actor=agent, environment=production, reason="panic")
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.action, denied.actor, denied.reason) == ("environment.rollback", agent, "panic")
    assert mode_of("new-checkout", production) == "full"
    assert not Rollback.objects.exists()
    assert audit_verify().ok
