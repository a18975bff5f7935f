"""The gate monitor's own work in the core: proving it is alive."""

import socket

from celery import shared_task
from django.utils import timezone

from .audit.verification import audit_verify_chain  # noqa: F401  (registers the task)
from .models import MonitorHeartbeat

HEARTBEAT_NAME = "gate-monitor"


@shared_task(name="releasecontrol.tasks.monitor_heartbeat", ignore_result=True)
def monitor_heartbeat() -> None:
    """Queued by beat, run by a worker: a fresh stamp means both are alive."""
    MonitorHeartbeat.objects.update_or_create(
        name=HEARTBEAT_NAME,
        defaults={"beat_at": timezone.now(), "hostname": socket.gethostname()},
    )


NOTIFICATIONS_DELIVER_TASK = "releasecontrol.tasks.notifications_deliver"


@shared_task(name=NOTIFICATIONS_DELIVER_TASK, ignore_result=True)
def notifications_deliver() -> dict[str, int]:
    """Queued by beat: sends the outbox's due rows (releasecontrol/notifications/delivery.py)."""
    from .notifications.delivery import notifications_deliver as deliver

    return deliver()
