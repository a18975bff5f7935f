"""The core's pages: dashboard, environment page, health."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import selectors


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    my_roles = selectors.roles_by_environment_for_user(request.user)
    context = {
        "cards": [(env, my_roles.get(env.slug, [])) for env in selectors.environment_list()],
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


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = "ok" if selectors.database_ok() else "down"
    monitor = selectors.monitor_state() if database == "ok" else None
    body = {
        "status": "ok" if database == "ok" else "down",
        "database": database,
        "redis": selectors.redis_state(),
        "gate_monitor": {
            "status": "ok" if monitor and monitor.alive else "down",
            "last_heartbeat": monitor.beat_at.isoformat() if monitor and monitor.beat_at else None,
            "age_seconds": round(monitor.age_seconds, 1)
            if monitor and monitor.age_seconds is not None
            else None,
        },
    }
    return JsonResponse(body, status=200 if database == "ok" else 503)
