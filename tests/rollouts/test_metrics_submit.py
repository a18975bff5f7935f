"""Metric ingestion: a batch is kept whole or not at all, each sample records its submitter,
`flag` stands for the release driving it, times outside the retention window are refused."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from releasecontrol.models import AuditEvent
from rollouts.metrics import metric_samples_submit
from rollouts.models import MetricSample
from rollouts.services import release_start


@pytest.fixture
def live_release(developer, staging, make_release):
    release = make_release(developer, staging)
    return release_start(actor=developer, release=release, reason="go")


def _sample(release, **fields):
    return {
        "environment": "staging",
        "release": release.pk,
        "metric": "error_rate",
        "value": 1.5,
        **fields,
    }


def test_metric_samples_submit__good_batch__kept_with_submitter_and_defaults(agent, live_release):
    kept = metric_samples_submit(
        actor=agent, samples=[_sample(live_release), _sample(live_release, cohort="control")]
    )

    rows = list(MetricSample.objects.order_by("pk"))
    assert kept == 2
    assert {r.submitted_by for r in rows} == {agent}
    assert [r.cohort for r in rows] == ["canary", "control"]
    assert rows[0].total is None and abs(rows[0].time - timezone.now()) < dt.timedelta(seconds=5)
    assert AuditEvent.objects.get(action="metrics.submit").after["samples"] == 2


def test_metric_samples_submit__flag_key__stands_for_its_live_release(agent, live_release):
    metric_samples_submit(
        actor=agent,
        samples=[{"environment": "staging", "flag": "new-checkout", "metric": "p95", "value": 2}],
    )

    assert MetricSample.objects.get().release == live_release


def test_metric_samples_submit__flag_without_a_live_release__400(agent, live_release):
    with pytest.raises(ValidationError) as refused:
        metric_samples_submit(
            actor=agent,
            samples=[
                {"environment": "production", "flag": "new-checkout", "metric": "m", "value": 1}
            ],
        )

    assert "samples[0]" in refused.value.message_dict
    assert "no live release" in str(refused.value)


def test_metric_samples_submit__one_bad_sample__none_kept_and_each_named(agent, live_release):
    now = timezone.now()
    samples = [
        _sample(live_release),
        _sample(live_release, value=float("nan")),
        _sample(live_release, time=now + dt.timedelta(minutes=5)),
        _sample(live_release, time=now - dt.timedelta(days=31)),
        _sample(live_release, metric="../etc"),
    ]

    with pytest.raises(ValidationError) as refused:
        metric_samples_submit(actor=agent, samples=samples)

    assert sorted(refused.value.message_dict) == [f"samples[{i}]" for i in range(1, 5)]
    assert MetricSample.objects.count() == 0


def test_metric_samples_submit__auditor__refused_and_the_denial_recorded(auditor, live_release):
    with pytest.raises(PermissionDenied):
        metric_samples_submit(actor=auditor, samples=[_sample(live_release)])

    assert MetricSample.objects.count() == 0
    assert AuditEvent.objects.filter(
        action="metrics.submit", outcome="denied", actor=auditor
    ).exists()
