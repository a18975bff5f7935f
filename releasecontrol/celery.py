"""The Celery app: `celery -A releasecontrol worker` and `celery -A releasecontrol beat`."""

import os

from celery import Celery
from celery.signals import worker_process_init

from releasecontrol.collector import collector_settle

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasecontrol.settings")

app = Celery("releasecontrol")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _settle_collector(**kwargs: object) -> None:
    """A worker process starts with the code loaded: out of the collector's way."""
    collector_settle()
