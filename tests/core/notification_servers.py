"""Real servers a notifications test starts on loopback: an SMTP server (aiosmtpd) that keeps
what it receives, a webhook receiver (http.server in a thread) that checks each body's
signature with the environment's secret itself, and a socket that accepts connections and
never answers."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.flags.live import free_port

# --- SMTP ------------------------------------------------------------------------------------


class _Keep:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse_with = ""  # e.g. "554 Transaction failed": refuse every message

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    port: int
    handler: _Keep

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.handler.messages

    def settings(self) -> dict:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": self.port,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "DEFAULT_FROM_EMAIL": "release-control@example.com",
        }


@contextlib.contextmanager
def smtp_server(refuse_with: str = "") -> Iterator[SmtpServer]:
    handler = _Keep()
    handler.refuse_with = refuse_with
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port, handler)
    finally:
        controller.stop()


# --- Webhook receiver ------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    secret: str
    port: int = 0
    # Status codes to answer, one per request; 200 once they run out.
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/release-control"

    def check(self, headers: dict[str, str], body: bytes) -> bool:
        """The receiver's own check, as docs/operations.md shows it."""
        timestamp = headers.get("X-Release-Control-Timestamp", "")
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        given = headers.get("X-Release-Control-Signature", "")
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        return fresh and hmac.compare_digest(given, f"sha256={expected}")


@contextlib.contextmanager
def webhook_server(secret: str, answers: list[int] | None = None) -> Iterator[WebhookServer]:
    server_state = WebhookServer(secret=secret, answers=list(answers or []))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = dict(self.headers.items())
            server_state.received.append(
                Received(self.path, headers, body, server_state.check(headers, body))
            )
            status = server_state.answers.pop(0) if server_state.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A URL whose server takes the connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        listener.close()


def refused_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    return f"http://127.0.0.1:{free_port()}/hook"
