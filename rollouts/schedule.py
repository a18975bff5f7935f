"""Beat entries for the gate monitor and metric retention. Imports nothing of Django's models,
so settings may read it: `CELERY_BEAT_SCHEDULE.update(rollouts_beat_schedule(...))`."""

GATE_MONITOR_TICK_TASK = "rollouts.tasks.gate_monitor_tick"
METRICS_PRUNE_TASK = "rollouts.tasks.metrics_prune"


def rollouts_beat_schedule(
    monitor_interval: float = 10.0, prune_interval: float = 3600.0
) -> dict[str, dict]:
    """The monitor's tick every `monitor_interval` seconds and the pruning every
    `prune_interval`. A queued run not started within its interval expires instead of piling
    up behind a slow worker: the next run does the same work on fresher data."""
    return {
        "gate-monitor-tick": {
            "task": GATE_MONITOR_TICK_TASK,
            "schedule": monitor_interval,
            "options": {"expires": monitor_interval},
        },
        "metrics-prune": {
            "task": METRICS_PRUNE_TASK,
            "schedule": prune_interval,
            "options": {"expires": prune_interval},
        },
    }
