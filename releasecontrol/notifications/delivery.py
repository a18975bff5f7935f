"""Delivering the outbox: the beat task takes due rows (skip_locked, so any number of workers
share the work without sending a row twice at once), sends each (email through Django's mail
backend; webhooks as signed JSON POSTs) with short timeouts, and records every attempt.
A failure is retried with exponential backoff up to NOTIFICATION_MAX_ATTEMPTS.

Delivery is at least once: a worker that dies between sending and recording leaves the row
to be sent again after its lease. Webhook receivers can tell a repeat by
X-Release-Control-Delivery (the notification's id)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import smtplib
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from ..logging import redact
from .models import AttemptOutcome, Channel, DeliveryAttempt, DeliveryStatus, Notification

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Release-Control-Signature"
TIMESTAMP_HEADER = "X-Release-Control-Timestamp"
EVENT_HEADER = "X-Release-Control-Event"
DELIVERY_HEADER = "X-Release-Control-Delivery"
USER_AGENT = "ReleaseControl-Webhook/1"


def _setting(name: str, default: float) -> float:
    return getattr(settings, name, default)


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failure: base, 2 x base, 4 x base ... capped."""
    base = _setting("NOTIFICATION_RETRY_SECONDS", 30.0)
    cap = _setting("NOTIFICATION_RETRY_MAX_SECONDS", 3600.0)
    return dt.timedelta(seconds=min(cap, base * 2 ** (attempts - 1)))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256, keyed with the secret, of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_body(notification: Notification) -> bytes:
    """The JSON a webhook receives: the same bytes are signed and sent."""
    return json.dumps(
        {
            "id": notification.pk,
            "event": notification.event,
            "environment": notification.environment.slug,
            "created_at": notification.created_at.isoformat(),
            "subject": notification.subject,
            "link": notification.link,
            "data": notification.payload,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


@dataclass(frozen=True)
class Result:
    delivered: bool
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0
    attempted_at: dt.datetime | None = None


@dataclass(frozen=True)
class _Job:
    """What a sending thread needs, read from the database beforehand (threads touch no ORM)."""

    notification: Notification
    secret: str


def _email_body(notification: Notification) -> str:
    if notification.link and notification.link not in notification.text:
        return f"{notification.text}\n\n{notification.link}\n"
    return notification.text


def _send_email(notification: Notification, timeout: float) -> Result:
    try:
        connection = get_connection(fail_silently=False, timeout=timeout)
        EmailMessage(
            subject=notification.subject,
            body=_email_body(notification),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=notification.recipients,
            headers={EVENT_HEADER: notification.event, DELIVERY_HEADER: str(notification.pk)},
            connection=connection,
        ).send()
    except smtplib.SMTPResponseException as error:
        message = error.smtp_error
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        return Result(False, error.smtp_code, f"SMTP {error.smtp_code}: {text}")
    except smtplib.SMTPRecipientsRefused as error:
        return Result(False, None, f"recipients refused: {', '.join(error.recipients)}")
    except TimeoutError:
        return Result(False, None, f"timed out after {timeout:g} s")
    except (OSError, smtplib.SMTPException) as error:
        return Result(False, None, f"{type(error).__name__}: {error}")
    return Result(True)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a place to send the signed body again."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _send_webhook(notification: Notification, secret: str, timeout: float) -> Result:
    if not secret:
        return Result(False, None, "the environment has no webhook secret: nothing goes unsigned")
    if urllib.parse.urlsplit(notification.webhook_url).scheme not in ("http", "https"):
        return Result(False, None, "only http(s) webhooks are called")
    body = webhook_body(notification)
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310  (http(s) only: validated on the environment)
        notification.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: notification.event,
            DELIVERY_HEADER: str(notification.pk),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            status = response.status
    except urllib.error.HTTPError as error:
        return Result(False, error.code, f"HTTP {error.code} {error.reason}")
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            return Result(False, None, f"timed out after {timeout:g} s")
        return Result(False, None, str(error.reason))
    except TimeoutError:
        return Result(False, None, f"timed out after {timeout:g} s")
    except OSError as error:
        return Result(False, None, f"{type(error).__name__}: {error}")
    if not 200 <= status < 300:
        return Result(False, status, f"HTTP {status}")
    return Result(True, status)


def _send(job: _Job) -> Result:
    """Runs in a sending thread: network only."""
    timeout = _setting("NOTIFICATION_TIMEOUT", 5.0)
    attempted_at = timezone.now()
    started = time.perf_counter()
    try:
        if job.notification.channel == Channel.EMAIL:
            result = _send_email(job.notification, timeout)
        else:
            result = _send_webhook(job.notification, job.secret, timeout)
    except Exception as error:  # one bad row must not stop the others
        result = Result(False, None, f"{type(error).__name__}: {error}")
    duration_ms = round((time.perf_counter() - started) * 1000)
    # Errors are kept and shown to admins: never with a credential in them.
    return Result(
        result.delivered, result.status_code, redact(result.error), duration_ms, attempted_at
    )


def _claim(limit: int) -> list[_Job]:
    """Take due pending rows no other worker holds, and lease them for one send."""
    now = timezone.now()
    lease = dt.timedelta(seconds=2 * _setting("NOTIFICATION_TIMEOUT", 5.0) + 60)
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("environment")
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")[:limit]
        )
        Notification.objects.filter(pk__in=[r.pk for r in rows]).update(next_attempt_at=now + lease)
    return [_Job(row, row.environment.webhook_secret) for row in rows]


def _record(notification: Notification, result: Result) -> Notification:
    """Store the attempt and what follows from it; returns the row as it is now."""
    max_attempts = int(_setting("NOTIFICATION_MAX_ATTEMPTS", 8))
    with transaction.atomic():
        row = Notification.objects.select_for_update().get(pk=notification.pk)
        number = row.attempts + 1
        DeliveryAttempt.objects.create(
            notification=row,
            number=number,
            attempted_at=result.attempted_at,
            outcome=AttemptOutcome.DELIVERED if result.delivered else AttemptOutcome.FAILED,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
        )
        row.attempts = number
        if row.status == DeliveryStatus.PENDING:
            now = timezone.now()
            if result.delivered:
                row.status, row.delivered_at, row.last_error = DeliveryStatus.DELIVERED, now, ""
            else:
                row.last_error = result.error
                if number >= max_attempts:
                    row.status = DeliveryStatus.FAILED
                else:
                    row.next_attempt_at = now + retry_delay(number)
        row.save()
    if result.delivered:
        logger.info("notification.delivered id=%s channel=%s", row.pk, row.channel)
    else:
        logger.warning(
            "notification.attempt_failed id=%s channel=%s attempt=%s status=%s: %s",
            row.pk,
            row.channel,
            number,
            row.status,
            result.error,
        )
    return row


def _send_in_order(jobs: list[_Job]) -> list[Result]:
    """One destination's messages, oldest first; after a failure the rest wait for the next
    run (so a dead endpoint costs one timeout per run, and order is kept)."""
    results = []
    for job in jobs:
        results.append(_send(job))
        if not results[-1].delivered:
            break
    return results


def notifications_deliver(*, limit: int = 100) -> dict[str, int]:
    """The beat task's body: send the due rows and record each attempt. Each destination (an
    environment's addresses, a webhook URL) is served by its own thread, so one slow or dead
    endpoint holds up nothing else. Returns counts: delivered, retrying (failed, to be tried
    again), failed (gave up), deferred (not tried: an earlier message to the same
    destination failed in this run)."""
    jobs = _claim(limit)
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "deferred": 0}
    if not jobs:
        return counts
    by_destination: dict[tuple[str, str], list[_Job]] = {}
    for job in jobs:
        key = (job.notification.channel, job.notification.destination)
        by_destination.setdefault(key, []).append(job)
    groups = list(by_destination.values())
    threads = max(1, min(len(groups), int(_setting("NOTIFICATION_DELIVERY_THREADS", 8))))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="notify") as pool:
        outcomes = list(pool.map(_send_in_order, groups))
    for group, results in zip(groups, outcomes, strict=True):
        row = None
        for job, result in zip(group, results, strict=False):
            row = _record(job.notification, result)
            if result.delivered:
                counts["delivered"] += 1
            elif row.status == DeliveryStatus.FAILED:
                counts["failed"] += 1
            else:
                counts["retrying"] += 1
        waiting = [job.notification.pk for job in group[len(results) :]]
        if waiting:
            # Tried again together with the message that failed before them, in order.
            again = row.next_attempt_at if row.status == DeliveryStatus.PENDING else timezone.now()
            Notification.objects.filter(pk__in=waiting).update(next_attempt_at=again)
            counts["deferred"] += len(waiting)
    return counts
