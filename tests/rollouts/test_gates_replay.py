"""Gate replay over a recorded history where the gate would act at a known time: the saved
gate, an edited spec that is not saved, the step cap, one query, and what replay refuses."""

import datetime as dt

import pytest

from releasecontrol.models import Environment
from rollouts.models import Gate, Outcome
from rollouts.presets import gate_preset
from rollouts.replay import MAX_POINTS, ReplayError, gate_replay
from tests.rollouts.factories import GateFactory, ReleaseFactory
from tests.rollouts.gate_samples import push

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
SWITCH = T0 + dt.timedelta(minutes=20)  # samples after this are bad


@pytest.fixture
def release():
    """A sample every 10 s for 30 minutes: error rate 1 up to SWITCH, 9 after it.

    At SWITCH + 10 j the 300 s window holds 30 samples, j of them bad: its average is
    (30 + 8 j) / 30, above 5 from j = 16 (SWITCH + 160 s), above 3 from j = 8."""
    release = ReleaseFactory(environment=Environment.objects.get(slug="staging"))
    times = [T0 + dt.timedelta(seconds=10 * k) for k in range(181)]
    for time in times:
        push(release, [9.0 if time > SWITCH else 1.0], end=time)
    return release


def at(seconds_after_switch: int) -> dt.datetime:
    return SWITCH + dt.timedelta(seconds=seconds_after_switch)


def test_gate_replay__saved_gate_three_failures_to_act__acts_at_the_third_failure(release):
    gate = GateFactory(release=release, threshold=5, failures_to_act=3, on_failure="rollback")

    replay = gate_replay(
        release=release,
        gate=gate,
        start=T0 + dt.timedelta(minutes=5),
        end=T0 + dt.timedelta(minutes=30),
    )

    assert replay.step_seconds == 10
    assert len(replay.points) == 151
    by_time = {point.time: point for point in replay.points}
    assert by_time[at(150)].outcome == Outcome.SUCCESS
    assert by_time[at(160)].outcome == Outcome.FAILURE
    assert by_time[at(160)].action == ""  # the first failure of three
    assert by_time[at(160)].value == pytest.approx((30 + 8 * 16) / 30)
    assert by_time[at(170)].counters.consecutive_failures == 2
    assert (replay.acted_at, replay.action) == (at(180), "rollback")
    assert replay.reason == "avg(error_rate) 5.8 > 5 over 30 samples"
    assert all(p.outcome == Outcome.SUCCESS for p in replay.points if p.time < at(160))


def test_gate_replay__edited_spec_not_saved__acts_earlier_and_nothing_is_written(release):
    GateFactory(release=release, name="errors", threshold=5)
    edited = gate_preset("error-rate", threshold=3, on_failure="halve")

    replay = gate_replay(
        release=release,
        gate=edited,
        start=T0 + dt.timedelta(minutes=5),
        end=T0 + dt.timedelta(minutes=30),
    )

    assert (replay.acted_at, replay.action) == (at(80), "halve")
    assert replay.gate.pk is None
    assert list(Gate.objects.filter(release=release).values_list("name", flat=True)) == ["errors"]


def test_gate_replay__preset_over_the_history__acts_when_the_average_crosses(release):
    replay = gate_replay(release=release, gate=gate_preset("error-rate"), start=SWITCH, end=at(600))

    assert (replay.acted_at, replay.action) == (at(160), "rollback")
    assert replay.outcome_counts[Outcome.FAILURE] == len(replay.points) - 16


def test_gate_replay__before_any_samples__no_data_policy_pause_is_the_action(release):
    gate = GateFactory(release=release, no_data="pause")

    replay = gate_replay(release=release, gate=gate, start=T0 - dt.timedelta(hours=1), end=T0)

    assert replay.points[0].outcome == Outcome.NO_DATA
    assert (replay.acted_at, replay.action) == (T0 - dt.timedelta(hours=1), "pause")


def test_gate_replay__long_period__step_coarsened_to_the_point_cap(release):
    gate = GateFactory(release=release)
    start = T0 - dt.timedelta(days=2)

    replay = gate_replay(release=release, gate=gate, start=start, end=T0 + dt.timedelta(minutes=30))

    assert len(replay.points) <= MAX_POINTS
    assert replay.step_seconds == 88  # ceil((2 days + 30 min) / 1999)
    assert replay.points[-1].time <= T0 + dt.timedelta(minutes=30)


def test_gate_replay__many_points__one_query(release, django_assert_num_queries):
    gate = GateFactory(release=release, baseline={"method": "mann_whitney"})

    with django_assert_num_queries(1):
        replay = gate_replay(
            release=release, gate=gate, start=T0, end=T0 + dt.timedelta(minutes=30)
        )

    assert len(replay.points) == 181
    assert {p.outcome for p in replay.points} == {Outcome.INCONCLUSIVE}  # no control cohort


def test_gate_replay__prometheus_gate_and_no_server__every_point_an_error_saying_why(
    release, settings
):
    settings.PROMETHEUS_URL = ""
    gate = GateFactory(release=release, promql="rate(errors_total[5m])")

    replay = gate_replay(release=release, gate=gate, start=T0, end=T0 + dt.timedelta(minutes=1))

    assert {p.outcome for p in replay.points} == {Outcome.ERROR}
    assert "PROMETHEUS_URL is not set" in replay.points[0].result.detail
    assert replay.action == "pause"  # the error limit, as the monitor would have


def test_gate_replay__gate_of_another_release__refused(release):
    gate = GateFactory()

    with pytest.raises(ReplayError, match="another release"):
        gate_replay(release=release, gate=gate, start=T0, end=SWITCH)


def test_gate_replay__advisory_gate__alerts_but_never_acts(release):
    gate = GateFactory(release=release, threshold=5, advisory=True)

    replay = gate_replay(release=release, gate=gate, start=SWITCH, end=at(300))

    assert (replay.acted_at, replay.action) == (None, None)
    assert {p.action for p in replay.points if p.time >= at(160)} == {"advisory alert"}
    assert {p.action for p in replay.points if p.time < at(160)} == {""}
