"""Retention: samples and evaluations older than METRIC_RETENTION_DAYS are pruned in bounded
batches, younger ones kept; the beat entries that run the monitor and the pruning."""

import datetime as dt

import pytest
from django.conf import settings as django_settings

from rollouts.models import GateEvaluation, MetricSample
from rollouts.retention import metrics_prune
from rollouts.schedule import rollouts_beat_schedule
from rollouts.tasks import metrics_prune as metrics_prune_task
from tests.rollouts.factories import GateEvaluationFactory, GateFactory, MetricSampleFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def history(time_machine, settings):
    time_machine.move_to(NOW, tick=False)
    settings.METRIC_RETENTION_DAYS = 30
    gate = GateFactory()
    old = [days_ago(31 + i / 10) for i in range(7)]
    young = [days_ago(29), days_ago(1), NOW]
    for at in old + young:
        MetricSampleFactory(release=gate.release, time=at)
        GateEvaluationFactory(gate=gate, evaluated_at=at)
    return {"old": len(old), "young": young}


def test_metrics_prune__rows_past_retention__deleted_in_batches_younger_kept(history):
    report = metrics_prune(batch=3)

    assert (report.samples_deleted, report.evaluations_deleted) == (7, 7)
    assert report.complete
    assert sorted(MetricSample.objects.values_list("time", flat=True)) == history["young"]
    assert sorted(GateEvaluation.objects.values_list("evaluated_at", flat=True)) == history["young"]


def test_metrics_prune__more_than_the_batches_allow__stops_and_says_so(history):
    report = metrics_prune(batch=2, max_batches=2)

    assert (report.samples_deleted, report.evaluations_deleted) == (4, 4)
    assert not report.complete
    assert MetricSample.objects.count() == 3 + 3  # the next run carries on
    assert metrics_prune(batch=2, max_batches=2).samples_deleted == 3


def test_metrics_prune_task__called_as_beat_would__prunes(history):
    result = metrics_prune_task.apply().get()

    assert result["samples_deleted"] == history["old"]
    assert MetricSample.objects.count() == len(history["young"])


def test_beat_schedule__monitor_and_pruning__expire_instead_of_piling_up():
    entries = rollouts_beat_schedule(10.0, 3600.0)

    assert entries["gate-monitor-tick"]["task"] == "rollouts.tasks.gate_monitor_tick"
    assert entries["gate-monitor-tick"]["schedule"] == 10.0
    assert entries["gate-monitor-tick"]["options"]["expires"] == 10.0
    assert entries["metrics-prune"]["options"]["expires"] == 3600.0
    site = django_settings.CELERY_BEAT_SCHEDULE
    assert site["gate-monitor-tick"]["schedule"] == django_settings.GATE_MONITOR_INTERVAL
    # The tick stamps the heartbeat: no separate task that would stay fresh while ticks fail.
    assert "monitor-heartbeat" not in site
