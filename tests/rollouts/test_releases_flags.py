"""A release and the flags it drives: one live release per flag and environment, a person's
change by hand pauses it, kill switches stop it from increasing anything."""

import pytest

from flags.services import KillSwitchEngaged, flag_state_set, kill_switch_engage
from releasecontrol.models import AuditEvent, User
from rollouts.driving import ReleaseFlagTaken
from rollouts.models import ReleaseFlag
from rollouts.services import release_advance, release_start


def test_release_start__flag_driven_by_another_live_release__409_naming_it(
    developer, staging, make_release
):
    first = make_release(developer, staging, name="first")
    release_start(actor=developer, release=first, reason="go")
    second = make_release(developer, staging, name="second")

    with pytest.raises(ReleaseFlagTaken) as refused:
        release_start(actor=developer, release=second, reason="go too")

    assert f"#{first.pk}" in str(refused.value) and refused.value.context["release"] == first.pk
    second.refresh_from_db()
    assert second.status == "draft"
    assert ReleaseFlag.objects.filter(live=True).count() == 1


def test_release_start__same_flag_in_another_environment__both_live(
    developer, staging, development, make_release
):
    release_start(actor=developer, release=make_release(developer, staging), reason="go")
    other = make_release(developer, development)

    other = release_start(actor=developer, release=other, reason="go")

    assert other.status == "in_progress"


def test_flag_state_set__person_changes_a_live_release_flag__release_pauses_with_reason(
    developer, release_manager, staging, flag, make_release
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")

    flag_state_set(
        actor=release_manager, flag=flag, environment=staging, mode="off", reason="smells"
    )

    release.refresh_from_db()
    paused = AuditEvent.objects.get(action="release.paused_by_flag_change")
    assert release.status == "paused"
    assert "rita" in release.paused_reason and "smells" in release.paused_reason
    assert paused.after["changed_by"] == "rita" and paused.actor == User.system()
    assert release.events.last().kind == "paused"


def test_release_advance__its_own_flag_change__does_not_pause_itself(
    developer, staging, make_release
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")

    release = release_advance(actor=developer, release=release, reason="next")

    assert release.status == "in_progress"
    assert not AuditEvent.objects.filter(action="release.paused_by_flag_change").exists()


def test_release_advance__kill_switch_engaged__person_409_and_automation_pauses(
    developer, oncall, staging, flag, make_release, system_user
):
    release = make_release(developer, staging)
    release_start(actor=developer, release=release, reason="go")
    kill_switch_engage(actor=oncall, environment=staging, scope="flag", flag=flag, reason="fire")
    release.refresh_from_db()
    release.status = "in_progress"  # whatever the switch did to it, it is in progress here
    release.save(update_fields=["status"])

    with pytest.raises(KillSwitchEngaged):
        release_advance(actor=developer, release=release, reason="next")
    release = release_advance(actor=system_user, release=release, reason="gates pass")

    assert release.status == "paused"
    assert "kill switch" in release.paused_reason
    assert release.current_stage_index == 0
    assert AuditEvent.objects.filter(action="release.pause", actor=system_user).exists()
