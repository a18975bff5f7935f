"""The real OpenFeature Python SDK with its OFREP provider against a live multi-process server.

gunicorn (2 workers x 4 threads) runs in a subprocess on a free loopback port against this
test database, with REDIS_URL pointing at a Redis of the test's own (and, in one test,
stopped): see tests/flags/live.py. Flags are changed through the services in this process;
the SDK reads them back.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from flags.rules import in_percentage
from flags.services import flag_create, flag_state_set, kill_switch_engage, sdk_key_issue
from releasecontrol.models import User
from tests.flags.live import LiveServer, wait_until

# Needs redis-server on PATH: scripts/test.sh installs it.
pytestmark = [pytest.mark.django_db(transaction=True)]

VISIBLE_WITHIN = 0.100  # seconds, DESIGN.md


@pytest.fixture(autouse=True)
def no_providers_left() -> Iterator[None]:
    yield
    api.clear_providers()


@pytest.fixture
def sdk_key(production) -> str:
    return sdk_key_issue(actor=User.system(), environment=production, name="sdk-test").raw


_domains = itertools.count()


def sdk_client(server: LiveServer, key: str, *, new_connection_each_time: bool = False):
    """An OpenFeature client on its own OFREP provider, tagging each request with a probe id."""
    probes = itertools.count()
    domain = f"ofrep-{next(_domains)}"
    sent: list[str] = []

    def headers() -> dict[str, str]:
        probe = f"{domain}-{next(probes)}"
        sent.append(probe)
        extra = {"Connection": "close"} if new_connection_each_time else {}
        return {"Authorization": f"Bearer {key}", "X-Probe": probe, **extra}

    api.set_provider(OFREPProvider(server.url, headers_factory=headers, timeout=5), domain)
    client = api.get_client(domain)
    client.sent = sent  # type: ignore[attr-defined]
    return client


def details(client, flag_key: str, targeting_key: str | None = None) -> Any:
    ctx = EvaluationContext(targeting_key=targeting_key) if targeting_key else None
    return client.get_boolean_details(flag_key, True, ctx)  # default True: off must come from us


def test_sdk__flag_through_its_modes__each_answer_as_designed(
    gunicorn_server, sdk_key, developer, release_manager, production
):
    flag = flag_create(actor=developer, key="new-checkout", name="New checkout")
    client = sdk_client(gunicorn_server, sdk_key)

    off = details(client, "new-checkout", "user-1")
    assert (off.value, off.reason, off.variant, off.error_code) == (False, "DISABLED", "off", None)

    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="allowlist",
        allowlist=["pilot-7"],
        reason="pilot customer",
    )
    time.sleep(VISIBLE_WITHIN)
    on = details(client, "new-checkout", "pilot-7")
    other = details(client, "new-checkout", "user-1")
    assert (on.value, on.reason, on.variant) == (True, "TARGETING_MATCH", "on")
    assert (other.value, other.reason, other.variant) == (False, "DEFAULT", "off")
    missing = details(client, "new-checkout")
    assert (missing.value, missing.error_code) == (True, "TARGETING_KEY_MISSING")

    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="shadow",
        reason="dark launch",
    )
    time.sleep(VISIBLE_WITHIN)
    shadow = details(client, "new-checkout", "pilot-7")
    assert (shadow.value, shadow.reason, shadow.flag_metadata) == (
        False,
        "DISABLED",
        {"shadow": True},
    )

    unknown = details(client, "no-such-flag", "pilot-7")
    assert (unknown.value, unknown.error_code) == (True, "FLAG_NOT_FOUND")


def test_sdk__fifty_percent__two_thousand_keys_split_by_the_murmur3_formula(
    gunicorn_server, sdk_key, developer, release_manager, production
):
    flag = flag_create(actor=developer, key="ai-concierge", name="AI concierge")
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=50,
        reason="half of the traffic",
    )
    client = sdk_client(gunicorn_server, sdk_key)
    keys = [f"customer-{i}" for i in range(2_000)]
    answers = {key: details(client, "ai-concierge", key) for key in keys}

    assert {a.reason for a in answers.values()} == {"SPLIT"}
    assert all(a.value is in_percentage("ai-concierge", key, 50) for key, a in answers.items())
    share = sum(a.value for a in answers.values()) / len(keys)
    assert 0.45 <= share <= 0.55


def test_sdk__environment_kill_switch__every_worker_answers_off_within_100_ms(
    gunicorn_server, sdk_key, developer, release_manager, oncall, production
):
    flag = flag_create(actor=developer, key="calling", name="Outbound calling")
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    clients = [
        sdk_client(gunicorn_server, sdk_key, new_connection_each_time=True) for _ in range(6)
    ]
    # Both workers have answered (so both hold a snapshot) before the switch is thrown.
    warm = clients[0]
    wait_until(
        lambda: (
            details(warm, "calling").value is True
            and set(gunicorn_server.answered_by().values()) == gunicorn_server.worker_pids()
        ),
        10,
        "both workers to answer on",
    )

    kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="calls failing"
    )
    committed = time.monotonic()
    answers: list[tuple[float, str, Any]] = []  # (sent after commit, probe, details)
    lock = threading.Lock()

    def poll(client) -> None:
        while (sent := time.monotonic() - committed) < 1.0:
            result = details(client, "calling")
            with lock:
                answers.append((sent, client.sent[-1], result))

    threads = [threading.Thread(target=poll, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    late = [(probe, a) for sent, probe, a in answers if sent >= VISIBLE_WITHIN]
    assert late
    assert all(a.value is False and a.flag_metadata == {"killSwitch": True} for _, a in late), [
        (p, a.value) for p, a in late if a.value is not False
    ]
    wait_until(lambda: all(p in gunicorn_server.answered_by() for p, _ in late), 5, "access log")
    workers = {gunicorn_server.answered_by()[probe] for probe, _ in late}
    assert workers == gunicorn_server.worker_pids(), "both workers must have answered after 100 ms"
    first_off = min(sent for sent, _, a in answers if a.value is False)
    assert first_off < VISIBLE_WITHIN


def test_sdk__redis_stopped__evaluation_still_answers_and_sees_changes(
    gunicorn_server, redis_server, sdk_key, developer, release_manager, production
):
    flag = flag_create(actor=developer, key="ocr", name="OCR")
    client = sdk_client(gunicorn_server, sdk_key)
    assert requests.get(f"{gunicorn_server.url}/healthz", timeout=5).json()["redis"] == "ok"
    assert details(client, "ocr", "user-1").value is False

    redis_server.stop()
    assert requests.get(f"{gunicorn_server.url}/healthz", timeout=5).json()["redis"] == "down"

    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    time.sleep(VISIBLE_WITHIN)
    answer = details(client, "ocr", "user-1")
    assert (answer.value, answer.reason, answer.error_code) == (True, "STATIC", None)
