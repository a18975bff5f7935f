"""A Prometheus gate against Debian's real `prometheus` server scraping an exporter this test
starts (prometheus_client, scrape interval 1 s): the gate over `rate(x_total[5s])` succeeds
while the counter is idle and fails once the test counts fast; bad PromQL, two series, NaN
and a stopped server are `error` outcomes saying what came back."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, start_http_server

from releasecontrol.models import Environment
from rollouts.gates import GateResult, gates_evaluate
from rollouts.models import Outcome
from rollouts.replay import gate_replay
from tests.flags.live import free_port, wait_until
from tests.rollouts.factories import GateFactory, ReleaseFactory
from tests.rollouts.gate_samples import loaded

PROMETHEUS = "/usr/bin/prometheus"  # Debian's package (.ci/run installs it)
DEADLINE = 60.0  # seconds; the first rate() answers about 8 s after start here


@dataclass
class Exporter:
    counter: Counter
    port: int


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    registry = CollectorRegistry()
    counter = Counter("x", "Requests counted by the test.", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield Exporter(counter=counter, port=port)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@contextmanager
def running_prometheus(exporter: Exporter, tmp_path: Path) -> Iterator[Prometheus]:
    assert shutil.which(PROMETHEUS), (
        f"{PROMETHEUS} is missing: apt-get install -y --no-install-recommends prometheus"
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter.port}']\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(ready, DEADLINE, "Prometheus to be ready")
        yield Prometheus(url=url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory) -> Iterator[Prometheus]:
    """One server for the module (its first scrape takes a few seconds)."""
    with running_prometheus(exporter, tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def prometheus_settings(settings, prometheus):
    settings.PROMETHEUS_URL = prometheus.url
    settings.PROMETHEUS_TIMEOUT = 5
    return settings


def evaluate(gate) -> GateResult:
    return gates_evaluate([loaded(gate)], now=timezone.now())[gate.pk]


def wait_for_outcome(gate, outcome: str) -> GateResult:
    results: list[GateResult] = []

    def reached() -> bool:
        results.append(evaluate(gate))
        return results[-1].outcome == outcome

    try:
        wait_until(reached, DEADLINE, f"the gate to answer {outcome}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {results[-1].detail if results else None}") from None
    return results[-1]


@pytest.mark.django_db
def test_prometheus_gate__rate_rises__success_then_failure(prometheus_settings, exporter):
    gate = GateFactory(promql="rate(x_total[5s])", comparator=">", threshold=20)

    idle = wait_for_outcome(gate, Outcome.SUCCESS)
    idle_at = timezone.now()
    assert idle.value == pytest.approx(0.0)
    assert idle.source == "prometheus: rate(x_total[5s])"
    assert idle.samples == 1

    stop = threading.Event()

    def count_fast() -> None:  # about 500 increments a second
        while not stop.is_set():
            exporter.counter.inc(50)
            stop.wait(0.1)

    counting = threading.Thread(target=count_fast, daemon=True)
    counting_from = timezone.now()
    counting.start()
    try:
        busy = wait_for_outcome(gate, Outcome.FAILURE)
        busy_at = timezone.now()
        # Still failing two seconds on: the replay below ends there.
        wait_until(
            lambda: (
                timezone.now() > busy_at + dt.timedelta(seconds=2)
                and evaluate(gate).outcome == Outcome.FAILURE
            ),
            DEADLINE,
            "two more seconds of failure",
        )
    finally:
        stop.set()
        counting.join(timeout=5)
    assert busy.value > 20
    assert busy.detail.startswith("rate(x_total[5s]) = ")
    assert "> 20" in busy.detail

    # The same history, replayed from Prometheus's own record (one range query).
    replay = gate_replay(
        release=gate.release,
        gate=gate,
        start=idle_at,
        end=busy_at + dt.timedelta(seconds=2),
        step_seconds=1,
    )
    outcomes = [p.outcome for p in replay.points]
    assert outcomes[0] == Outcome.SUCCESS and outcomes[-1] == Outcome.FAILURE, outcomes
    assert replay.points[0].value == pytest.approx(0.0)
    assert replay.action == gate.on_failure  # rollback, at the first failure
    assert counting_from < replay.acted_at <= busy_at + dt.timedelta(seconds=2)
    assert replay.points[-1].result.source == "prometheus: rate(x_total[5s])"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("promql", "says"),
    [
        ("rate(x_total[5s]", "Prometheus refused the query (HTTP 400, bad_data)"),
        ("x_total or vector(1)", "exactly one series; Prometheus returned 2 series"),
        ('x_total{job="nothing-here"}', "exactly one series; Prometheus returned no series"),
        ("vector(0) / vector(0)", "no finite value"),
        ("x_total[5s]", "returned a matrix"),
    ],
)
def test_prometheus_gate__bad_answers__error_saying_what_came_back(
    prometheus_settings, exporter, promql, says
):
    gate = GateFactory(promql=promql)
    wait_until(
        lambda: requests.get(
            f"{prometheus_settings.PROMETHEUS_URL}/api/v1/query",
            params={"query": "x_total"},
            timeout=5,
        ).json()["data"]["result"],
        DEADLINE,
        "the first scrape",
    )

    result = evaluate(gate)

    assert result.outcome == Outcome.ERROR
    assert says in result.detail


@pytest.mark.django_db
def test_prometheus_gate__production_release__a_success_counts(prometheus_settings):
    release = ReleaseFactory(environment=Environment.objects.get(slug="production"))
    gate = GateFactory(release=release, promql="vector(1)", threshold=5)

    result = evaluate(gate)

    assert (result.outcome, result.value) == (Outcome.SUCCESS, 1.0)  # Prometheus is trusted


@pytest.mark.django_db
def test_prometheus_gate__scalar_expression__its_value(prometheus_settings):
    gate = GateFactory(promql="scalar(vector(3))", comparator=">", threshold=2)

    result = evaluate(gate)

    assert (result.outcome, result.value) == (Outcome.FAILURE, 3.0)


@pytest.mark.django_db
def test_prometheus_gate__server_stopped__error_not_an_exception(settings, exporter, tmp_path):
    gate = GateFactory(promql="vector(1)")
    with running_prometheus(exporter, tmp_path) as own:
        settings.PROMETHEUS_URL = own.url
        assert evaluate(gate).outcome == Outcome.SUCCESS

    result = evaluate(gate)

    assert result.outcome == Outcome.ERROR
    assert "could not be reached" in result.detail
