"""Celery tasks of rollouts: thin, each loads nothing and calls one function. Beat queues
them (entries in rollouts/schedule.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task

from .schedule import GATE_MONITOR_TICK_TASK, METRICS_PRUNE_TASK


@shared_task(name=GATE_MONITOR_TICK_TASK, ignore_result=True)
def gate_monitor_tick() -> dict[str, Any]:
    from .monitor import monitor_tick

    return monitor_tick().summary()


@shared_task(name=METRICS_PRUNE_TASK, ignore_result=True)
def metrics_prune() -> dict[str, Any]:
    from .retention import metrics_prune as prune

    return asdict(prune())
