"""The core's pages: dashboard, environment page, health, the refusal page."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import selectors
from .dashboard import dashboard_sections_for


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    my_roles = selectors.roles_by_environment_for_user(request.user)
    environments = list(selectors.environment_list())
    sections = dashboard_sections_for(environments)
    context = {
        "cards": [(env, my_roles.get(env.slug, []), sections[env.pk]) for env in environments],
    }
    template = "releasecontrol/dashboard.html"
    if request.htmx:
        template += "#environments"
    return render(request, template, context)


@require_GET
def environment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    environment = selectors.environment_get(slug)
    context = {
        "environment": environment,
        "my_roles": selectors.roles_by_environment_for_user(request.user).get(slug, []),
        "grants": environment.role_grants.select_related("user").order_by("role", "user__username"),
    }
    return render(request, "releasecontrol/environment_detail.html", context)


def health_status(*, database: str, redis: str, monitor_alive: bool) -> tuple[str, int]:
    """`down` (503) without the database; `degraded` when Redis (if configured) or the gate
    monitor is down; `ok` otherwise. A degraded site still serves pages, flags and the API."""
    if database != "ok":
        return "down", 503
    if redis == "down" or not monitor_alive:
        return "degraded", 200
    return "ok", 200


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = "ok" if selectors.database_ok() else "down"
    monitor = selectors.monitor_state() if database == "ok" else None
    redis = selectors.redis_state()
    status, http_status = health_status(
        database=database, redis=redis, monitor_alive=bool(monitor and monitor.alive)
    )
    body = {
        "status": status,
        "database": database,
        "redis": redis,
        "gate_monitor": {
            "status": "ok" if monitor and monitor.alive else "down",
            "last_heartbeat": monitor.beat_at.isoformat() if monitor and monitor.beat_at else None,
            "age_seconds": round(monitor.age_seconds, 1)
            if monitor and monitor.age_seconds is not None
            else None,
        },
    }
    return JsonResponse(body, status=http_status)


DEFAULT_REFUSAL = "You do not hold a role that allows this."


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403: the styled page saying why (the refusal's own message); an htmx request gets
    just the refusal, to swap into the part of the page that asked."""
    why = str(exception) if isinstance(exception, PermissionDenied) and str(exception) else ""
    template = "403.html"
    if getattr(request, "htmx", False):
        template += "#refusal"
    return render(request, template, {"why": why or DEFAULT_REFUSAL}, status=403)
