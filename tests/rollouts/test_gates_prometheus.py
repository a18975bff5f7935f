"""A Prometheus source's failures that a real Prometheus does not produce on demand (a hung
server, a proxy's HTML error page, an unset URL; a range query's gaps and odd answers): each
an `error` outcome with the reason, never an exception out of gates_evaluate or a replay.
The real server is in test_prometheus_live.py."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rollouts.models import Outcome
from rollouts.prometheus import query_range_values
from tests.rollouts.factories import GateFactory
from tests.rollouts.gate_samples import outcome_of

pytestmark = pytest.mark.django_db


def serving(status: int, body: bytes, content_type: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy_error_page():
    yield from serving(502, b"<html><body>Bad gateway</body></html>", "text/html")


@pytest.fixture
def hung_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_prometheus_gate__html_error_page__error_quoting_it(settings, proxy_error_page):
    settings.PROMETHEUS_URL = proxy_error_page

    result = outcome_of(GateFactory(promql="up"))

    assert result.outcome == Outcome.ERROR
    assert result.detail.startswith("Prometheus answered HTTP 502 with something other than JSON")
    assert "Bad gateway" in result.detail


def test_prometheus_gate__server_never_answers__error_after_the_timeout(settings, hung_server):
    settings.PROMETHEUS_URL = hung_server
    settings.PROMETHEUS_TIMEOUT = 0.3

    result = outcome_of(GateFactory(promql="up"))

    assert result.outcome == Outcome.ERROR
    assert result.detail == "Prometheus did not answer within 0.3 s"


def test_prometheus_gate__url_not_set__error_saying_so(settings):
    settings.PROMETHEUS_URL = ""

    result = outcome_of(GateFactory(promql="up"))

    assert result.outcome == Outcome.ERROR
    assert "PROMETHEUS_URL is not set" in result.detail


def test_prometheus_gate__with_a_baseline__error_not_a_silent_pass(settings, proxy_error_page):
    settings.PROMETHEUS_URL = proxy_error_page

    result = outcome_of(GateFactory(promql="up", baseline={"method": "ratio"}))

    assert result.outcome == Outcome.ERROR
    assert "write the comparison into the PromQL" in result.detail


# --- Replay's range query ------------------------------------------------------------------

START = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def _matrix(*series: list) -> bytes:
    result = [{"metric": {"pod": f"p{i}"}, "values": values} for i, values in enumerate(series)]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    ).encode()


def _at(seconds: int) -> float:
    return START.timestamp() + seconds


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # One series with a gap at 20 s and a NaN at 30 s.
        (
            _matrix([[_at(0), "1"], [_at(10), "7"], [_at(30), "NaN"]]),
            [1.0, 7.0, "no series", "no finite value"],
        ),
        (_matrix([[_at(0), "1"]], [[_at(0), "2"]]), ["2 series"] * 4),
        (_matrix(), ["no series"] * 4),
        (json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode(),
         ["answered a vector to a range query"] * 4),
    ],
)  # fmt: skip
def test_query_range_values__answers__a_value_or_the_reason_per_time(settings, body, expected):
    server = serving(200, body, "application/json")
    settings.PROMETHEUS_URL = next(server)
    try:
        answers = query_range_values("up", start=START, step_seconds=10, count=4)
    finally:
        server.close()

    for answer, want in zip(answers, expected, strict=True):
        if isinstance(want, float):
            assert (answer.value, answer.error) == (want, "")
        else:
            assert answer.value is None and want in answer.error
