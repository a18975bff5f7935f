"""Beat entries for the approvals tasks. Imports nothing of Django's models, so settings may
read it: `CELERY_BEAT_SCHEDULE.update(approvals_beat_schedule(interval))`."""

EXPIRE_TASK = "approvals.tasks.approval_requests_expire"
RUN_SCHEDULED_TASK = "approvals.tasks.approval_requests_run_scheduled"


def approvals_beat_schedule(interval: float = 30.0) -> dict[str, dict]:
    """Expiry and the scheduler every `interval` seconds; a run not started by then expires
    rather than pile up (the next one does the same work)."""
    return {
        "approvals-expire": {
            "task": EXPIRE_TASK,
            "schedule": interval,
            "options": {"expires": interval},
        },
        "approvals-run-scheduled": {
            "task": RUN_SCHEDULED_TASK,
            "schedule": interval,
            "options": {"expires": interval},
        },
    }
