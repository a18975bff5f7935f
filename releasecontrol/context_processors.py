"""What every page's shell shows: whether the gate monitor is alive."""

from django.http import HttpRequest

from .selectors import monitor_state


def shell(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    if getattr(request, "htmx", False):
        return {}  # partials have no banner
    return {"monitor": monitor_state()}
