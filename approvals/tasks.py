"""Celery tasks of approvals: thin, each calls one service. Beat queues them (entries in
approvals/schedule.py); every run is the system actor's and audited by the service."""

from celery import shared_task

from .execution import approval_requests_expire, approval_requests_run_scheduled
from .schedule import EXPIRE_TASK, RUN_SCHEDULED_TASK


@shared_task(name=EXPIRE_TASK, ignore_result=True)
def approval_requests_expire_task() -> int:
    return len(approval_requests_expire())


@shared_task(name=RUN_SCHEDULED_TASK, ignore_result=True)
def approval_requests_run_scheduled_task() -> int:
    return len(approval_requests_run_scheduled())
