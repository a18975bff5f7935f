"""`{% can_read_audit user as flag %}`: whether the shell shows the Audit link."""

from django import template

from releasecontrol.audit.views import user_may_read_audit_cached
from releasecontrol.models import User

register = template.Library()


@register.simple_tag
def can_read_audit(user: User) -> bool:
    return user_may_read_audit_cached(user)
