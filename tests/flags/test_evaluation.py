"""Evaluation semantics (DESIGN.md's OFREP answers) on snapshots, and the snapshot itself
against the real database: freshness, fixed query counts, archived flags, SDK keys."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flags import evaluation
from flags.evaluation import (
    EnvironmentSnapshot,
    FlagSnapshot,
    TargetingKeyMissing,
    evaluate,
    evaluate_json,
)
from flags.rules import bucket, in_percentage


def flag(mode: str = "off", percentage: int = 0, allowlist: tuple[str, ...] = (), **kw: Any):
    definition = {"key": "new-checkout", "type": "boolean", "on_value": True, "off_value": False}
    definition.update(kw)
    return FlagSnapshot.of(mode=mode, percentage=percentage, allowlist=allowlist, **definition)


def environment(*flags: FlagSnapshot, kill_switch: bool = False) -> EnvironmentSnapshot:
    return EnvironmentSnapshot(1, "production", 7, kill_switch, {f.key: f for f in flags})


def answer(f: FlagSnapshot, targeting_key: str | None = "user-1", **env: Any) -> dict:
    return evaluate(f, environment(f, **env), targeting_key)


# --- Bucketing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag_key", "targeting_key", "expected"), [("gr1", "123", 73), ("groupX", "999", 25)]
)
def test_bucket__unleash_published_vectors__same_bucket(flag_key, targeting_key, expected):
    assert bucket(flag_key, targeting_key) == expected


@given(
    flag_key=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True),
    targeting_key=st.text(min_size=1, max_size=40),
    low=st.integers(0, 100),
    high=st.integers(0, 100),
)
def test_percentage__raised__never_removes_a_key(flag_key, targeting_key, low, high):
    low, high = min(low, high), max(low, high)
    before = answer(flag("percentage", low, key=flag_key), targeting_key)
    after = answer(flag("percentage", high, key=flag_key), targeting_key)
    if before["value"] is True:
        assert after["value"] is True
    assert before["value"] is in_percentage(flag_key, targeting_key, low)


def test_percentage__fifty_percent_of_many_keys__about_half_on_and_stable():
    f = flag("percentage", 50)
    on = [k for k in (f"user-{i}" for i in range(10_000)) if answer(f, k)["value"]]
    assert 4_800 <= len(on) <= 5_200
    assert on == [k for k in (f"user-{i}" for i in range(10_000)) if answer(f, k)["value"]]


# --- Every mode and reason ------------------------------------------------------------------


def test_evaluate__off__off_value_disabled():
    assert answer(flag("off")) == {
        "key": "new-checkout",
        "value": False,
        "variant": "off",
        "reason": "DISABLED",
        "metadata": {},
    }


def test_evaluate__shadow__off_value_disabled_with_shadow_metadata():
    result = answer(flag("shadow"))
    assert (result["value"], result["variant"], result["reason"]) == (False, "off", "DISABLED")
    assert result["metadata"] == {"shadow": True}


def test_evaluate__full__on_value_static_for_anyone():
    for targeting_key in ("user-1", "someone-else", None):
        result = answer(flag("full"), targeting_key)
        assert (result["value"], result["variant"], result["reason"]) == (True, "on", "STATIC")


def test_evaluate__allowlist_hit__on_value_targeting_match():
    result = answer(flag("allowlist", allowlist=("user-1", "user-2")), "user-2")
    assert (result["value"], result["variant"], result["reason"]) == (True, "on", "TARGETING_MATCH")


def test_evaluate__allowlist_miss__off_value_default():
    result = answer(flag("allowlist", allowlist=("user-1",)), "user-9")
    assert (result["value"], result["variant"], result["reason"]) == (False, "off", "DEFAULT")


def test_evaluate__percentage_allowlisted_key__on_even_at_zero_percent():
    result = answer(flag("percentage", 0, allowlist=("vip",)), "vip")
    assert (result["value"], result["reason"]) == (True, "TARGETING_MATCH")


def test_evaluate__percentage__split_with_the_bucketed_value_both_ways():
    f = flag("percentage", 30)
    keys = [f"user-{i}" for i in range(200)]
    inside = next(k for k in keys if bucket(f.key, k) <= 30)
    outside = next(k for k in keys if bucket(f.key, k) > 30)
    assert (answer(f, inside)["value"], answer(f, inside)["reason"]) == (True, "SPLIT")
    assert answer(f, inside)["variant"] == "on"
    assert (answer(f, outside)["value"], answer(f, outside)["reason"]) == (False, "SPLIT")
    assert answer(f, outside)["variant"] == "off"


@pytest.mark.parametrize(("percentage", "expected"), [(0, False), (100, True)])
def test_evaluate__percentage_bounds__nobody_or_everybody(percentage, expected):
    f = flag("percentage", percentage)
    assert {answer(f, f"user-{i}")["value"] for i in range(300)} == {expected}


@pytest.mark.parametrize("mode", ["off", "shadow", "allowlist", "percentage", "full"])
def test_evaluate__environment_kill_switch__off_value_disabled_kill_switch_whatever_the_mode(mode):
    f = flag(mode, 100, allowlist=("user-1",))
    result = answer(f, "user-1", kill_switch=True)
    assert result == {
        "key": "new-checkout",
        "value": False,
        "variant": "off",
        "reason": "DISABLED",
        "metadata": {"killSwitch": True},
    }
    # During an incident nobody is refused for a missing targeting key.
    assert answer(f, None, kill_switch=True)["metadata"] == {"killSwitch": True}


@pytest.mark.parametrize("mode", ["allowlist", "percentage"])
@pytest.mark.parametrize("targeting_key", [None, ""])
def test_evaluate__targeted_mode_without_key__targeting_key_missing(mode, targeting_key):
    with pytest.raises(TargetingKeyMissing, match="targetingKey"):
        answer(flag(mode, 50, allowlist=("a",)), targeting_key)


@pytest.mark.parametrize("mode", ["off", "shadow", "full"])
def test_evaluate__untargeted_mode_without_key__answers(mode):
    assert answer(flag(mode), None)["key"] == "new-checkout"


@pytest.mark.parametrize(
    ("flag_type", "on_value", "off_value"),
    [
        ("boolean", True, False),
        ("string", "v2", "v1"),
        ("integer", 3, 1),
        ("float", 0.75, 0.25),
        ("object", {"layout": "grid", "columns": 3}, {"layout": "list"}),
    ],
)
def test_evaluate__each_type__its_on_and_off_values(flag_type, on_value, off_value):
    on = answer(flag("full", type=flag_type, on_value=on_value, off_value=off_value))
    off = answer(flag("off", type=flag_type, on_value=on_value, off_value=off_value))
    assert (on["value"], off["value"]) == (on_value, off_value)
    assert type(on["value"]) is type(on_value)


def test_evaluate__float_flag_with_whole_numbers__answers_floats():
    """OpenFeature's float resolution refuses 1 where it expects 1.0."""
    f = flag("full", type="float", on_value=1, off_value=0)
    assert answer(f)["value"] == 1.0
    assert isinstance(answer(f)["value"], float)
    assert json.loads(evaluate_json(f, environment(f), None))["value"] == 1.0


def test_evaluate__result_mutated_by_caller__next_answer_unchanged():
    f = flag("shadow")
    answer(f)["metadata"]["shadow"] = "tampered"
    assert answer(f)["metadata"] == {"shadow": True}


def test_evaluate_json__any_mode__same_answer_as_evaluate():
    for f in (flag("off"), flag("shadow"), flag("full"), flag("percentage", 50, ("a",))):
        for targeting_key in ("a", "b", "user-7"):
            env = environment(f)
            assert json.loads(evaluate_json(f, env, targeting_key)) == evaluate(
                f, env, targeting_key
            )


def test_bulk_body__mixed_modes__every_flag_by_key_with_missing_key_errors_in_place():
    flags = [
        flag("full", key="b-full"),
        flag("allowlist", allowlist=("u",), key="a-allow"),
        flag("off", key="c-off"),
    ]
    env = environment(*flags)
    with_key = json.loads(env.bulk_body("u"))["flags"]
    assert [f["key"] for f in with_key] == ["a-allow", "b-full", "c-off"]
    assert [f["value"] for f in with_key] == [True, True, False]
    without_key = json.loads(env.bulk_body(None))["flags"]
    assert without_key[0] == {
        "key": "a-allow",
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": without_key[0]["errorDetails"],
    }
    assert "targetingKey" in without_key[0]["errorDetails"]
    assert without_key[1:] == with_key[1:]


# --- The per-process snapshot against the database -----------------------------------------


@pytest.fixture(autouse=True)
def fresh_store():
    evaluation.store.reset()
    yield
    evaluation.store.clock = time.monotonic
    evaluation.store.reset()


@pytest.fixture
def clock(time_machine):
    """The store's clock stands still until the test moves it (time-machine moves the wall
    clock, not time.monotonic, so the store reads the wall clock here)."""
    time_machine.move_to("2026-12-01T10:00:00Z", tick=False)
    evaluation.store.clock = time.time
    evaluation.store.reset()
    return time_machine


@pytest.fixture
def make_flag(developer):
    from flags.services import flag_create

    def make(key: str, **kwargs: Any):
        return flag_create(actor=developer, key=key, name=key, reason="test", **kwargs)

    return make


@pytest.fixture
def sdk_key(production, system_user):
    from flags.services import sdk_key_issue

    return sdk_key_issue(actor=system_user, environment=production, name="web").raw


def test_snapshot__rebuild__fixed_number_of_queries_whatever_the_flag_count(
    db, make_flag, sdk_key, django_assert_num_queries
):
    make_flag("first")
    with django_assert_num_queries(4):  # versions, flags, states, SDK keys
        assert set(evaluation.store.environment_for_key(sdk_key).flags) == {"first"}
    for i in range(30):
        make_flag(f"more-{i}")
    evaluation.store.reset()
    with django_assert_num_queries(4):
        assert len(evaluation.store.environment_for_key(sdk_key).flags) == 31


def test_snapshot__fresh__no_query(db, make_flag, sdk_key, settings, django_assert_num_queries):
    settings.FLAG_SNAPSHOT_MAX_AGE = 60
    make_flag("first")
    evaluation.store.environment_for_key(sdk_key)
    with django_assert_num_queries(0):
        evaluation.store.environment_for_key(sdk_key)


def test_snapshot__older_than_max_age_and_unchanged__one_query_no_rebuild(
    db, make_flag, sdk_key, settings, django_assert_num_queries
):
    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    make_flag("first")
    evaluation.store.environment_for_key(sdk_key)
    rebuilds = evaluation.store.rebuilds
    with django_assert_num_queries(1):
        evaluation.store.environment_for_key(sdk_key)
    assert evaluation.store.rebuilds == rebuilds


def test_snapshot__state_changed__next_check_sees_it(
    db, make_flag, sdk_key, settings, release_manager, production
):
    from flags.services import flag_state_set

    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    f = make_flag("first")
    before = evaluation.store.environment_for_key(sdk_key)
    assert evaluate(before.flags["first"], before, "u")["value"] is False
    flag_state_set(actor=release_manager, flag=f, environment=production, mode="full", reason="go")
    after = evaluation.store.environment_for_key(sdk_key)
    assert after.version > before.version
    assert evaluate(after.flags["first"], after, "u")["reason"] == "STATIC"


def test_snapshot__flag_created_after_build__known_at_next_check(db, make_flag, sdk_key, settings):
    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    make_flag("first")
    assert "second" not in evaluation.store.environment_for_key(sdk_key).flags
    make_flag("second")
    assert "second" in evaluation.store.environment_for_key(sdk_key).flags


def test_snapshot__flag_archived__left_out_at_next_check(
    db, make_flag, sdk_key, settings, developer
):
    from flags.services import flag_archive

    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    make_flag("kept")
    gone = make_flag("gone")
    assert set(evaluation.store.environment_for_key(sdk_key).flags) == {"kept", "gone"}
    flag_archive(actor=developer, flag=gone, reason="unused")
    assert set(evaluation.store.environment_for_key(sdk_key).flags) == {"kept"}


def test_snapshot__key_issued_after_build__works_at_once(db, make_flag, settings, production):
    from flags.services import sdk_key_issue
    from releasecontrol.models import User

    settings.FLAG_SNAPSHOT_MAX_AGE = 60  # only the unknown key can make it look again
    first = sdk_key_issue(actor=User.system(), environment=production).raw
    assert evaluation.store.environment_for_key(first).slug == "production"
    second = sdk_key_issue(actor=User.system(), environment=production).raw
    assert evaluation.store.environment_for_key(second).slug == "production"


def test_snapshot__key_revoked__refused_at_next_check(db, sdk_key, settings, system_user):
    from flags.models import SdkKey
    from flags.services import sdk_key_revoke

    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    assert evaluation.store.environment_for_key(sdk_key) is not None
    sdk_key_revoke(actor=system_user, key=SdkKey.objects.get(digest=SdkKey.digest_of(sdk_key)))
    assert evaluation.store.environment_for_key(sdk_key) is None


def test_snapshot__made_up_keys_flood__database_asked_a_bounded_number_of_times(
    db, sdk_key, settings, django_assert_max_num_queries
):
    settings.FLAG_SNAPSHOT_MAX_AGE = 60
    evaluation.store.environment_for_key(sdk_key)
    with django_assert_max_num_queries(int(evaluation.UNKNOWN_KEY_CHECKS_PER_SECOND) + 2):
        for i in range(200):
            assert evaluation.store.environment_for_key(f"rcs_made-up-{i}") is None


def test_snapshot__one_environment_changed__others_kept_as_they_were(
    db, make_flag, settings, system_user, release_manager, staging, production
):
    from flags.services import flag_state_set, sdk_key_issue

    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    f = make_flag("first")
    staging_key = sdk_key_issue(actor=system_user, environment=staging).raw
    production_key = sdk_key_issue(actor=system_user, environment=production).raw
    staging_before = evaluation.store.environment_for_key(staging_key)
    flag_state_set(actor=release_manager, flag=f, environment=production, mode="full", reason="go")
    assert evaluation.store.environment_for_key(staging_key) is staging_before
    assert evaluation.store.environment_for_key(production_key).flags["first"].mode == "full"


def test_snapshot__younger_than_max_age__answers_without_asking_even_after_a_change(
    db, make_flag, sdk_key, settings, release_manager, production, clock, django_assert_num_queries
):
    from flags.services import flag_state_set

    settings.FLAG_SNAPSHOT_MAX_AGE = 0.5
    f = make_flag("first")
    evaluation.store.environment_for_key(sdk_key)
    flag_state_set(actor=release_manager, flag=f, environment=production, mode="full", reason="go")
    clock.shift(0.49)
    with django_assert_num_queries(0):
        assert evaluation.store.environment_for_key(sdk_key).flags["first"].mode == "off"


def test_snapshot__due_for_a_check__answers_at_once_and_checks_after_the_response(
    db, make_flag, sdk_key, settings, release_manager, production, clock, django_assert_num_queries
):
    from django.core.signals import request_finished
    from django.db import close_old_connections

    from flags.services import flag_state_set

    settings.FLAG_SNAPSHOT_MAX_AGE = 0.5
    f = make_flag("first")
    evaluation.store.environment_for_key(sdk_key)
    flag_state_set(actor=release_manager, flag=f, environment=production, mode="full", reason="go")
    clock.shift(0.6)  # older than max_age, younger than twice that
    with django_assert_num_queries(0):
        served = evaluation.store.environment_for_key(sdk_key)
    assert served.flags["first"].mode == "off"  # answered at once, from what it had
    # As the test client does: keep the test's connection open through request_finished.
    request_finished.disconnect(close_old_connections)
    try:
        with django_assert_num_queries(4):  # the check, then the rebuild
            request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)
    assert evaluation.store.environment_for_key(sdk_key).flags["first"].mode == "full"


def test_snapshot__older_than_twice_max_age__checked_before_answering(
    db, make_flag, sdk_key, settings, release_manager, production, clock
):
    from flags.services import flag_state_set

    settings.FLAG_SNAPSHOT_MAX_AGE = 0.05
    f = make_flag("first")
    evaluation.store.environment_for_key(sdk_key)
    flag_state_set(actor=release_manager, flag=f, environment=production, mode="full", reason="go")
    clock.shift(0.11)
    assert evaluation.store.environment_for_key(sdk_key).flags["first"].mode == "full"


@pytest.mark.django_db(transaction=True)
def test_snapshot__environment_kill_switch_engaged__answers_off_before_the_flags_are_rebuilt(
    make_flag, sdk_key, settings, release_manager, oncall, production, caplog
):
    import threading

    from django.db import connection, connections

    from flags.services import flag_state_set, kill_switch_engage

    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    f = make_flag("first")
    flag_state_set(actor=release_manager, flag=f, environment=production, mode="full", reason="go")
    before = evaluation.store.environment_for_key(sdk_key)
    assert evaluate(before.flags["first"], before, "u")["value"] is True
    kill_switch_engage(actor=oncall, environment=production, reason="5xx everywhere")
    rebuilds = evaluation.store.rebuilds
    # Another connection holds the flags table: the rebuild's first query waits for it.
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE flags_flag IN ACCESS EXCLUSIVE MODE")

    def check() -> None:
        try:
            evaluation.store.current()  # older than max_age (0): checks, then rebuilds
        finally:
            connection.close()

    checking = threading.Thread(target=check)
    checking.start()
    try:
        deadline = time.monotonic() + 10
        served = evaluation.store._snapshot  # read as requests read it, without checking
        while not served.environments[production.pk].kill_switch_engaged:
            assert time.monotonic() < deadline, "the kill switch was never published"
            time.sleep(0.01)
            served = evaluation.store._snapshot
        interim = served.environments[production.pk]
        answer = evaluate(interim.flags["first"], interim, "u")
        assert (answer["value"], answer["metadata"]) == (False, {"killSwitch": True})
        assert evaluation.store.rebuilds == rebuilds  # the rebuild is still waiting
        assert checking.is_alive()
        # A request finding the snapshot due for a check does not wait for that rebuild.
        with caplog.at_level(logging.WARNING, logger="flags.evaluation"):
            assert evaluation.store.current().environments[production.pk] is interim
        assert "check_slow" not in caplog.text
    finally:
        blocker.rollback()
        blocker.close()
        checking.join(10)
    final = evaluation.store.environment_for_key(sdk_key)
    assert evaluation.store.rebuilds == rebuilds + 1
    assert final.kill_switch_engaged and final.version > before.version
    assert final.flags["first"].mode == "off"
