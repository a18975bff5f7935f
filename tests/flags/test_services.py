"""Every flag write goes through flags.services: policy, audit, versions, kill switches."""

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections

from flags.models import Flag, FlagState, KillSwitch, Mode, Tag
from flags.selectors import flag_history, states_by_environment
from flags.services import (
    ApprovalRequired,
    KillSwitchEngaged,
    StaleEdit,
    flag_archive,
    flag_create,
    flag_state_restore,
    flag_state_set,
    flag_update,
    kill_switch_engage,
    kill_switch_release,
)
from releasecontrol.audit import audit_verify
from releasecontrol.errors import Conflict
from releasecontrol.models import AuditEvent, Environment, User
from tests.factories import EnvironmentFactory


@pytest.fixture
def flag(developer):
    return flag_create(actor=developer, key="new-checkout", name="New checkout", tags=["payments"])


def last_event(**filters) -> AuditEvent:
    return AuditEvent.objects.filter(**filters).order_by("-id").first()


def test_flag_create__any_type__off_in_every_environment_and_audited(developer, environments):
    flag = flag_create(
        actor=developer,
        key="greeting",
        name="Greeting",
        type="string",
        on_value="hello",
        off_value="",
        tags=["ocr", "Calling"],
    )
    assert sorted(t.name for t in flag.tags.all()) == ["calling", "ocr"]
    states = FlagState.objects.filter(flag=flag)
    assert {s.environment.slug for s in states} == set(environments)
    assert {s.mode for s in states} == {Mode.OFF}
    event = last_event(action="flag.create")
    assert event.actor == developer and event.outcome == "ok"
    assert event.after["on_value"] == "hello" and event.after["tags"] == ["calling", "ocr"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key": "bad key!"}, "key"),
        ({"type": "string"}, "on_value"),
        ({"type": "integer", "on_value": 1.5, "off_value": 0}, "on_value"),
        ({"type": "boolean", "on_value": "yes"}, "on_value"),
        ({"type": "object", "on_value": {"a": 1}, "off_value": [1]}, "off_value"),
    ],
)
def test_flag_create__bad_input__validation_error_and_nothing_written(developer, kwargs, field):
    kwargs = {"key": "ok-key", "name": "x", **kwargs}
    with pytest.raises(ValidationError) as error:
        flag_create(actor=developer, **kwargs)
    assert field in error.value.message_dict
    assert not Flag.objects.exists()


def test_flag_create__auditor__refused(auditor):
    with pytest.raises(PermissionDenied):
        flag_create(actor=auditor, key="nope", name="Nope")


def test_new_environment__existing_flags__start_off(flag):
    EnvironmentFactory(slug="perf", tier="staging")
    assert states_by_environment(flag)["perf"] is None  # no row: off


def test_flag_state_set__developer_in_staging__changes_and_audits(developer, staging, flag):
    version_before = Environment.objects.get(pk=staging.pk).flags_version
    state = flag_state_set(
        actor=developer,
        flag=flag,
        environment=staging,
        mode="percentage",
        percentage=25,
        allowlist=["qa-1"],
        expected_version=1,
    )
    assert (state.mode, state.percentage, state.allowlist, state.version) == (
        "percentage",
        25,
        ["qa-1"],
        2,
    )
    assert Environment.objects.get(pk=staging.pk).flags_version == version_before + 1
    event = last_event(action="flag.state.set")
    assert event.environment_id == "staging" and event.target_name == "new-checkout"
    assert event.before == {"mode": "off", "percentage": 0, "allowlist": [], "version": 1}
    assert event.after == {
        "mode": "percentage",
        "percentage": 25,
        "allowlist": ["qa-1"],
        "version": 2,
    }


@pytest.mark.django_db(transaction=True)
def test_flag_state_set__developer_in_production__refused_naming_the_request_denial_kept(
    developer, production
):
    flag = flag_create(actor=developer, key="f1", name="F1")
    with pytest.raises(ApprovalRequired) as error:
        flag_state_set(
            actor=developer, flag=flag, environment=production, mode="full", reason="please"
        )
    assert error.value.context["request"] == {
        "action": "flag.state.set",
        "environment": "production",
        "parameters": {"flag": "f1", "mode": "full", "percentage": 0, "allowlist": []},
    }
    denied = last_event(outcome="denied")
    assert denied.action == "flag.state.set" and denied.actor_name == "dev"
    assert denied.environment_id == "production"
    assert FlagState.objects.get(flag=flag, environment=production).mode == "off"
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_flag_state_set__agent_in_production__refused_even_reducing(
    agent, release_manager, production
):
    """Agents may ask (409 naming the request to make), never execute, even a reduction."""
    flag = flag_create(actor=agent, key="bot-flag", name="Bot flag")
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="launch"
    )
    with pytest.raises(ApprovalRequired, match="agent"):
        flag_state_set(
            actor=agent, flag=flag, environment=production, mode="off", reason="turning it off"
        )
    assert last_event(outcome="denied").actor_kind == "agent"


def test_flag_state_set__production_without_reason__refused_with_message(
    release_manager, production, flag
):
    with pytest.raises(ValidationError, match="reason"):
        flag_state_set(actor=release_manager, flag=flag, environment=production, mode="full")
    state = flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=10,
        reason="canary",
    )
    assert state.percentage == 10


def test_flag_state_set__stale_version__409_names_who_changed_it(developer, oncall, staging, flag):
    flag_state_set(actor=oncall, flag=flag, environment=staging, mode="full", expected_version=1)
    with pytest.raises(StaleEdit) as error:
        flag_state_set(
            actor=developer,
            flag=flag,
            environment=staging,
            mode="allowlist",
            allowlist=["me"],
            expected_version=1,
        )
    assert "omar" in error.value.detail and "version 2" in error.value.detail
    assert FlagState.objects.get(flag=flag, environment=staging).mode == "full"


@pytest.mark.django_db(transaction=True)
def test_flag_state_set__two_concurrent_edits_same_version__one_wins_one_is_stale(
    developer, oncall, staging
):
    flag = flag_create(actor=developer, key="race", name="Race")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(user: User, percentage: int) -> None:
        try:
            barrier.wait()
            flag_state_set(
                actor=user,
                flag=flag,
                environment=staging,
                mode="percentage",
                percentage=percentage,
                expected_version=1,
            )
            outcomes.append("ok")
        except StaleEdit:
            outcomes.append("stale")
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=edit, args=(u, p)) for u, p in ((developer, 10), (oncall, 20))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes) == ["ok", "stale"]
    assert FlagState.objects.get(flag=flag, environment=staging).version == 2


def test_flag_state_set__invalid_values__say_what_to_fix(developer, staging, flag):
    with pytest.raises(ValidationError) as error:
        flag_state_set(
            actor=developer,
            flag=flag,
            environment=staging,
            mode="sideways",
            percentage=101,
            allowlist="a,b",
        )
    assert set(error.value.message_dict) == {"mode", "percentage", "allowlist"}


def test_environment_kill_switch__turns_everything_off_in_one_event_and_is_idempotent(
    oncall, release_manager, production, staging, flag
):
    other = flag_create(actor=release_manager, key="ocr", name="OCR")
    for f in (flag, other):
        flag_state_set(
            actor=release_manager, flag=f, environment=production, mode="full", reason="go"
        )
    flag_state_set(actor=release_manager, flag=flag, environment=staging, mode="full")
    version = Environment.objects.get(pk=production.pk).flags_version

    result = kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="error spike"
    )

    assert not result.already_engaged
    assert sorted(t["flag"] for t in result.turned_off) == ["new-checkout", "ocr"]
    assert set(FlagState.objects.filter(environment=production).values_list("mode", flat=True)) == {
        "off"
    }
    assert FlagState.objects.get(flag=flag, environment=staging).mode == "full"  # untouched
    env = Environment.objects.get(pk=production.pk)
    assert env.kill_switch_engaged and env.kill_switch_engaged_by == oncall
    assert env.flags_version == version + 1
    event = last_event(action="killswitch.engage")
    assert event.before["states"][0]["before"]["mode"] == "full"
    assert event.reason == "error spike"

    again = kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="again"
    )
    assert again.already_engaged and again.turned_off == []
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1


def test_environment_kill_switch__engaged__refuses_increase_allows_decrease(
    oncall, release_manager, production, flag
):
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=0,
        allowlist=["a", "b"],
        reason="pilot",
    )
    kill_switch_engage(actor=oncall, environment=production, scope="environment", reason="incident")
    with pytest.raises(KillSwitchEngaged, match="omar"):
        flag_state_set(
            actor=release_manager, flag=flag, environment=production, mode="full", reason="try"
        )
    state = flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="shadow",
        reason="shadow while we look",
    )
    assert state.mode == "shadow"


def test_kill_switch_release__restores_nothing_and_lets_increases_through(
    oncall, release_manager, production, flag
):
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    switch = kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="x"
    ).switch
    kill_switch_release(actor=release_manager, switch=switch, reason="fixed")
    assert FlagState.objects.get(flag=flag, environment=production).mode == "off"
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="back on"
    )
    assert last_event(action="killswitch.release").reason == "fixed"


def test_tag_kill_switch__disable_calling_only__other_flags_untouched(
    release_manager, oncall, production
):
    calling = flag_create(actor=release_manager, key="calling", name="Calling", tags=["calling"])
    ocr = flag_create(actor=release_manager, key="ocr", name="OCR", tags=["ocr"])
    for f in (calling, ocr):
        flag_state_set(
            actor=release_manager, flag=f, environment=production, mode="full", reason="go"
        )
    kill_switch_engage(
        actor=oncall,
        environment=production,
        scope="tag",
        tag=Tag.objects.get(name="calling"),
        reason="unsolicited calls",
    )
    assert FlagState.objects.get(flag=calling, environment=production).mode == "off"
    assert FlagState.objects.get(flag=ocr, environment=production).mode == "full"
    with pytest.raises(KillSwitchEngaged, match="calling"):
        flag_state_set(
            actor=release_manager, flag=calling, environment=production, mode="full", reason="retry"
        )
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged


def test_flag_kill_switch__one_flag__off_and_in_its_history(
    release_manager, oncall, production, flag
):
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    kill_switch_engage(actor=oncall, environment=production, scope="flag", flag=flag, reason="bad")
    assert KillSwitch.objects.engaged().get().flag == flag
    history = flag_history(flag, environment=production)
    assert [e.action for e in history][:2] == ["killswitch.engage", "flag.state.set"]


@pytest.mark.parametrize("who", ["developer", "agent", "auditor"])
def test_kill_switch_engage__without_the_role__refused(request, who, staging):
    actor = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        kill_switch_engage(actor=actor, environment=staging, scope="environment", reason="x")
    assert not KillSwitch.objects.exists()


def test_system_actor__may_reduce_but_not_increase(system_user, release_manager, production, flag):
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=50,
        reason="partial",
    )
    state = flag_state_set(
        actor=system_user,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=25,
        reason="gate broke: halve traffic",
    )
    assert state.percentage == 25
    with pytest.raises(PermissionDenied, match="automation"):
        flag_state_set(
            actor=system_user, flag=flag, environment=production, mode="full", reason="gate passed"
        )


def test_require_approval_for_increase__increase_refused_decrease_immediate(
    release_manager, production, flag
):
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=20,
        reason="canary",
    )
    Environment.objects.filter(pk=production.pk).update(require_approval_for_increase=True)
    production.refresh_from_db()
    with pytest.raises(ApprovalRequired, match="approval"):
        flag_state_set(
            actor=release_manager, flag=flag, environment=production, percentage=50, reason="more"
        )
    state = flag_state_set(
        actor=release_manager, flag=flag, environment=production, percentage=5, reason="less"
    )
    assert state.percentage == 5


def test_flag_state_restore__earlier_state__new_audited_change(release_manager, production, flag):
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="allowlist",
        allowlist=["pilot"],
        reason="pilot",
    )
    earlier = last_event(action="flag.state.set").after
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="off", reason="pause"
    )
    state = flag_state_restore(
        actor=release_manager, flag=flag, environment=production, to=earlier, reason="resume pilot"
    )
    assert (state.mode, state.allowlist, state.version) == ("allowlist", ["pilot"], 4)
    event = last_event(action="flag.state.restore")
    assert event.before["mode"] == "off" and event.after["allowlist"] == ["pilot"]


def test_flag_update__description_and_tags__audited_with_before_after(developer, flag):
    flag_update(actor=developer, flag=flag, description="Checkout v2", tags=["payments", "web"])
    event = last_event(action="flag.update")
    assert event.before["tags"] == ["payments"] and event.after["tags"] == ["payments", "web"]
    assert event.after["description"] == "Checkout v2"


def test_flag_archive__still_on_somewhere__refused_naming_where(developer, staging, flag):
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="full")
    with pytest.raises(Conflict, match="staging"):
        flag_archive(actor=developer, flag=flag)
    flag_state_set(actor=developer, flag=flag, environment=staging, mode="off")
    assert flag_archive(actor=developer, flag=flag).archived
    assert last_event(action="flag.archive").after == {"archived": True}


def test_flag_update__auditor__refused(auditor, flag):
    with pytest.raises(PermissionDenied):
        flag_update(actor=auditor, flag=flag, name="x")
