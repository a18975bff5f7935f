"""Building started releases through the real services, feeding them samples and running the
monitor's ticks on a frozen clock (time-machine): the monitor tests' shared vocabulary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flags.models import FlagState
from flags.services import flag_create
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.notifications.models import Notification
from releasecontrol.services import environment_configure
from rollouts.models import Gate, GateEvaluation, MetricSample, Release
from rollouts.monitor import TickReport, monitor_tick
from rollouts.services import release_create, release_start

START = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # a Wednesday, outside any blackout
STEP = 10  # seconds between ticks, as GATE_MONITOR_INTERVAL's default


def gate(**fields) -> dict:
    """An acting push gate: avg(error_rate) > 5 over 60 s, 3 samples, rollback at once."""
    return {
        "name": "errors",
        "metric": "error_rate",
        "aggregate": "avg",
        "comparator": ">",
        "threshold": 5,
        "window_seconds": 60,
        "min_samples": 3,
        "failures_to_act": 1,
        "no_data": "pause",
        "on_failure": "rollback",
        "advisory": False,
        "stage": None,
        "source": "push",
        **fields,
    }


def two_stages(hold: int = 600) -> list[dict]:
    return [
        {"name": "canary", "mode": "percentage", "percentage": 5, "hold_seconds": hold},
        {"name": "full", "mode": "full", "percentage": 100, "hold_seconds": 0},
    ]


def notify_to(environment: Environment, actor: User) -> None:
    """Give the environment an address and a webhook, so the outbox writes both channels."""
    environment_configure(
        actor=actor,
        environment=environment,
        notification_emails="oncall@example.com",
        webhook_url="https://hooks.example.com/release-control",
        webhook_secret="whsec-test-0123456789abcdef",
        reason="tell on-call",
    )


def started_release(
    actor: User,
    environment: Environment,
    *,
    key: str = "new-checkout",
    plan: str | list[dict] | None = None,
    gates: list[dict] | None = None,
    dead_man_seconds: int = 3600,
    approval=None,
) -> Release:
    flag = flag_create(actor=actor, key=key, name=key.replace("-", " ").capitalize())
    release = release_create(
        actor=actor,
        name=f"{key}-release",
        version="2.4.0",
        environment=environment,
        flags=[flag],
        plan=plan if plan is not None else two_stages(),
        gates=gates if gates is not None else [gate()],
        dead_man_seconds=dead_man_seconds,
        reason="ship it",
    )
    return release_start(actor=actor, release=release, reason="go", approval=approval)


def feed(release: Release, value: float, *, metric: str = "error_rate", by: User | None = None):
    """One canary sample at the clock's now."""
    from django.utils import timezone

    MetricSample.objects.create(
        environment=release.environment,
        release=release,
        metric=metric,
        value=value,
        time=timezone.now(),
        submitted_by=by or User.system(),
    )


def run(
    clock,
    seconds: int,
    *,
    release: Release | None = None,
    value: float | Callable[[int], float | None] | None = None,
    step: int = STEP,
    until: Callable[[], bool] | None = None,
    by: User | None = None,
) -> list[TickReport]:
    """Move the clock `step` seconds at a time for `seconds`, feeding `value` (a number, or a
    function of the elapsed seconds answering a number or None) before each tick."""
    reports = []
    for elapsed in range(step, seconds + 1, step):
        clock.shift(dt.timedelta(seconds=step))
        if release is not None and value is not None:
            v = value(elapsed) if callable(value) else value
            if v is not None:
                feed(release, v, by=by)
        reports.append(monitor_tick())
        if until is not None and until():
            break
    return reports


def fresh(release: Release) -> Release:
    return Release.objects.select_related("environment").get(pk=release.pk)


def flag_state(key: str, environment: Environment) -> FlagState:
    return FlagState.objects.get(flag__key=key, environment=environment)


def evaluations(release: Release) -> list[GateEvaluation]:
    return list(GateEvaluation.objects.filter(release=release).order_by("evaluated_at", "pk"))


def the_gate(release: Release, name: str = "errors") -> Gate:
    return Gate.objects.get(release=release, name=name)


def system_events(action: str, release: Release) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=action, actor_name=User.system().username, target_id=str(release.pk)
        ).order_by("id")
    )


def notifications(event: str, environment: Environment) -> list[Notification]:
    return list(Notification.objects.filter(event=event, environment=environment).order_by("id"))
