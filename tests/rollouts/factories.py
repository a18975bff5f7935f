"""factory-boy factories for the rollouts app: rows built directly, for read-side tests
(pages, charts, query counts, the monitor's aggregate). Writes under test go through the
services."""

import datetime as dt

import factory
from django.utils import timezone

from releasecontrol.models import Environment, User
from rollouts.models import (
    Deployment,
    DeploymentEvent,
    Gate,
    GateEvaluation,
    MetricSample,
    Release,
    ReleaseEvent,
    ReleaseFlag,
    Stage,
)
from tests.factories import FlagFactory, UserFactory


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    name = factory.Sequence(lambda n: f"release-{n}")
    version = "1.0.0"
    environment = factory.LazyFunction(lambda: Environment.objects.get(slug="staging"))
    requested_by = factory.SubFactory(UserFactory)


class ReleaseFlagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReleaseFlag

    release = factory.SubFactory(ReleaseFactory)
    flag = factory.SubFactory(FlagFactory)
    environment = factory.LazyAttribute(lambda o: o.release.environment)
    live = factory.LazyAttribute(lambda o: o.release.is_live)


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage

    release = factory.SubFactory(ReleaseFactory)
    index = factory.Sequence(lambda n: n)
    name = factory.LazyAttribute(lambda o: f"stage {o.index + 1}")
    mode = "percentage"
    percentage = 5


class GateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gate

    release = factory.SubFactory(ReleaseFactory)
    name = factory.Sequence(lambda n: f"gate-{n}")
    metric = "error_rate"
    aggregate = "avg"
    comparator = ">"
    threshold = 5.0
    window_seconds = 300
    min_samples = 3


class MetricSampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricSample

    release = factory.SubFactory(ReleaseFactory)
    environment = factory.LazyAttribute(lambda o: o.release.environment)
    metric = "error_rate"
    value = 1.0
    time = factory.LazyFunction(timezone.now)
    submitted_by = factory.LazyFunction(User.system)


class GateEvaluationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GateEvaluation

    gate = factory.SubFactory(GateFactory)
    release = factory.LazyAttribute(lambda o: o.gate.release)
    evaluated_at = factory.LazyFunction(timezone.now)
    outcome = "success"
    value = 1.0
    samples = 10
    window_start = factory.LazyAttribute(
        lambda o: o.evaluated_at - dt.timedelta(seconds=o.gate.window_seconds)
    )
    window_end = factory.LazyAttribute(lambda o: o.evaluated_at)
    threshold = factory.LazyAttribute(lambda o: o.gate.threshold)
    source = "push"


class ReleaseEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReleaseEvent

    release = factory.SubFactory(ReleaseFactory)
    kind = "started"
    actor = factory.LazyAttribute(lambda o: o.release.requested_by)


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    environment = factory.LazyFunction(lambda: Environment.objects.get(slug="staging"))
    service = "checkout-api"
    version = factory.Sequence(lambda n: f"2.{n}.0")
    commit = factory.Sequence(lambda n: f"{n:07x}")
    requested_by = factory.SubFactory(UserFactory)


class DeploymentEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeploymentEvent

    deployment = factory.SubFactory(DeploymentFactory)
    event = "started"
    actor = factory.LazyAttribute(lambda o: o.deployment.requested_by)


def rollouts_rows(*, flag, requester) -> dict:
    """One row of each kind the rollouts pages and admin name: a live staging release with a
    stage, a gate and an evaluation, and a deployment."""
    release = ReleaseFactory(requested_by=requester, status="in_progress", current_stage_index=0)
    ReleaseFlagFactory(release=release, flag=flag)
    stage = StageFactory(release=release, index=0)
    gate = GateFactory(release=release, stage=stage)
    GateEvaluationFactory(gate=gate)
    MetricSampleFactory(release=release, submitted_by=requester)
    ReleaseEventFactory(release=release)
    deployment = DeploymentFactory(requested_by=requester)
    DeploymentEventFactory(deployment=deployment)
    return {"release": release, "deployment": deployment}
