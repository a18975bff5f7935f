"""The heartbeat through a real Celery worker on the Redis broker: beat's task, queued, run by a
worker, stamps the database."""

import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker

from releasecontrol.celery import app
from releasecontrol.models import MonitorHeartbeat
from releasecontrol.tasks import HEARTBEAT_NAME, monitor_heartbeat

TIMEOUT = 20


@pytest.mark.django_db(transaction=True)
def test_monitor_heartbeat__through_a_real_worker__stamps_the_database():
    # A queue of this test's own, so no other worker on the same Redis takes the task.
    queue = f"test-heartbeat-{uuid.uuid4().hex}"
    assert not MonitorHeartbeat.objects.exists()

    with start_worker(app, perform_ping_check=False, queues=[queue], shutdown_timeout=10):
        monitor_heartbeat.apply_async(queue=queue)
        deadline = time.monotonic() + TIMEOUT
        while not MonitorHeartbeat.objects.filter(name=HEARTBEAT_NAME).exists():
            assert time.monotonic() < deadline, f"no heartbeat within {TIMEOUT} s"
            time.sleep(0.1)

    assert MonitorHeartbeat.objects.get(name=HEARTBEAT_NAME).hostname
