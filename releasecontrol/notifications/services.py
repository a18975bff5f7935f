"""Writing notifications: a service that notifies calls notification_enqueue inside its own
transaction. Nothing is sent or published here (no Redis, no Celery, no network): the
delivery task (delivery.py) sends what committed, so a broker or mail outage delays
notifications and never blocks, nor rolls back, the action."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from ..logging import redact
from ..models import Environment
from .models import Channel, Notification

# Keys whose values never leave the site, whatever a caller puts in a payload.
_SECRET_KEY = re.compile(r"secret|token|password|passwd|api_?key|sdk_?key|authorization", re.I)
REDACTED = "[REDACTED]"


def scrubbed(value: Any) -> Any:
    """The value as JSON would carry it, with secret-looking keys and credentials masked."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _SECRET_KEY.search(str(k)) else scrubbed(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def absolute_link(link: str) -> str:
    """A site path made absolute with SITE_URL (when set), so an email's link can be followed."""
    base = getattr(settings, "SITE_URL", "").rstrip("/")
    if link.startswith("/") and base:
        return base + link
    return link


def notification_enqueue(
    *,
    environment: Environment,
    event: str,
    subject: str,
    text: str,
    payload: dict[str, Any],
    link: str = "",
) -> list[Notification]:
    """One outbox row per channel the environment has (its addresses; its webhook), written
    in the caller's transaction: it commits, or rolls back, with the action it tells of."""
    payload = scrubbed(json.loads(json.dumps(payload, cls=DjangoJSONEncoder)))
    subject = redact(" ".join(subject.split()))[:300]
    text, link = redact(text), absolute_link(link)[:500]
    now = timezone.now()
    common = {
        "environment": environment,
        "event": event,
        "subject": subject,
        "text": text,
        "link": link,
        "payload": payload,
        "created_at": now,
        "next_attempt_at": now,
    }
    rows = []
    addresses = environment.notification_email_list
    if addresses:
        rows.append(Notification(channel=Channel.EMAIL, recipients=addresses, **common))
    if environment.webhook_url:
        rows.append(
            Notification(channel=Channel.WEBHOOK, webhook_url=environment.webhook_url, **common)
        )
    return Notification.objects.bulk_create(rows)
