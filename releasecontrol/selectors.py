"""Reads of the core, with their joins done."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from .models import Environment, MonitorHeartbeat, RoleGrant, User
from .tasks import HEARTBEAT_NAME


def environment_list() -> QuerySet[Environment]:
    """Every environment in promotion order. Their state is readable by every signed-in user."""
    return Environment.objects.select_related("kill_switch_engaged_by").order_by("position")


def environment_get(slug: str) -> Environment:
    try:
        return environment_list().get(slug=slug)
    except Environment.DoesNotExist:
        raise Http404(f"No environment {slug!r}") from None


def role_grants_for_user(user: User) -> QuerySet[RoleGrant]:
    return RoleGrant.objects.filter(user=user).select_related("environment")


def roles_by_environment_for_user(user: User) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for grant in role_grants_for_user(user):
        held.setdefault(grant.environment.slug, []).append(grant.get_role_display())
    return held


@dataclass(frozen=True)
class MonitorState:
    beat_at: dt.datetime | None
    age_seconds: float | None
    alive: bool


def monitor_state() -> MonitorState:
    beat = MonitorHeartbeat.objects.filter(name=HEARTBEAT_NAME).first()
    if beat is None:
        return MonitorState(None, None, False)
    age = (timezone.now() - beat.beat_at).total_seconds()
    return MonitorState(beat.beat_at, age, age <= settings.MONITOR_HEARTBEAT_STALE_AFTER)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


def redis_state() -> str:
    """ "ok", "down" or "not configured"."""
    if not settings.REDIS_URL:
        return "not configured"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        client.ping()
        return "ok"
    except redis.RedisError:
        return "down"
