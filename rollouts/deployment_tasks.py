"""Celery task of deployments: thin, it calls one service (the system actor's, audited)."""

from celery import shared_task

from .deployment_close import deployments_close
from .deployment_schedule import CLOSE_TASK


@shared_task(name=CLOSE_TASK, ignore_result=True)
def deployments_close_task() -> int:
    return len(deployments_close())
