"""`{% approvals_awaiting as count %}`: the nav badge, requests awaiting the signed-in person."""

from django import template

from approvals.presenters import awaiting_count

register = template.Library()


@register.simple_tag(takes_context=True)
def approvals_awaiting(context: template.Context) -> int:
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return 0
    return awaiting_count(request)
