"""The Celery app: `celery -A releasecontrol worker` and `celery -A releasecontrol beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasecontrol.settings")

app = Celery("releasecontrol")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
