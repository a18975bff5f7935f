"""Arbitrary evaluation contexts against a live gunicorn: no input kills a worker.

Hypothesis (bounded, fixed seed, no shrinking against the live server) drives targeting keys
and contexts of every JSON shape through the single and the bulk endpoint: text with lone
surrogates, NUL and any Unicode, huge text, numbers of any size (NaN, Infinity, 1e400),
nested objects and arrays, and bodies that are not JSON or not UTF-8. Every answer must be
below 500, and the workers serving before are the workers serving after (gunicorn replaces
a worker that died, so a crash shows as a new pid and a second "Booting worker").
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from flags.services import flag_create, flag_state_set, sdk_key_issue
from releasecontrol.models import User
from tests.flags.live import WORKERS

pytestmark = [pytest.mark.django_db(transaction=True)]

EXAMPLES = 150

# Any code point, lone surrogates and NUL included.
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=40)
huge_text = st.builds(
    lambda chunk, times: chunk * times,
    st.sampled_from(["a", "ü", "😀", "\ud800", "\x00", "\\", '"']),
    st.integers(1_000, 300_000),
)
numbers = st.integers() | st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
targeting_keys = any_text | huge_text | json_values
contexts = st.builds(
    lambda attributes, key: {**attributes, **key},
    st.dictionaries(any_text, json_values, max_size=4),
    st.one_of(st.just({}), st.builds(lambda k: {"targetingKey": k}, targeting_keys)),
)


def _encode(document: Any, ascii_only: bool) -> bytes:
    # NaN and Infinity go out as the tokens JavaScript writes; with ascii_only off, a lone
    # surrogate goes out as the bytes UTF-8 would give it (which is not UTF-8).
    text = json.dumps(document, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.builds(lambda c, a: _encode({"context": c}, a), contexts, st.booleans()),
    st.builds(lambda v, a: _encode(v, a), json_values, st.booleans()),
    st.builds(lambda v: _encode({"context": v}, True), json_values),
    st.binary(max_size=200),
)
flag_keys = st.sampled_from(["fuzz-percentage", "fuzz-allowlist", "fuzz-full", "nope"]) | any_text


@pytest.fixture
def live(gunicorn_server, developer, release_manager, production):
    """Flags in every targeted mode, so bucketing and allowlist lookups both run."""
    for key, mode, extra in (
        ("fuzz-percentage", "percentage", {"percentage": 50, "allowlist": ["vip"]}),
        ("fuzz-allowlist", "allowlist", {"allowlist": ["vip", "kund-ö"]}),
        ("fuzz-full", "full", {}),
    ):
        flag = flag_create(actor=developer, key=key, name=key)
        flag_state_set(
            actor=release_manager,
            flag=flag,
            environment=production,
            mode=mode,
            reason="fuzz",
            **extra,
        )
    raw = sdk_key_issue(actor=User.system(), environment=production, name="fuzz").raw
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {raw}", "Content-Type": "application/json"})
    # Both workers have answered (and hold a snapshot) before the first example.
    for _ in range(20):
        response = session.post(f"{gunicorn_server.url}/ofrep/v1/evaluate/flags", data=b"{}")
        assert response.status_code == 200, response.text
    return gunicorn_server, session


def test_ofrep__arbitrary_contexts_live__no_5xx_and_no_worker_restarts(live):
    server, session = live
    workers = server.worker_pids()
    assert len(workers) == WORKERS
    statuses: Counter[int] = Counter()

    @seed(20261201)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=bodies, flag_key=flag_keys)
    # The reproductions: each killed a worker, or would have.
    @example(body=b'{"context": {"targetingKey": "\\ud800"}}', flag_key="fuzz-percentage")
    @example(body=b'{"context": {"targetingKey": "\\udc00x"}}', flag_key="fuzz-allowlist")
    @example(body=b'{"context": {"targetingKey": "a\\u0000b"}}', flag_key="fuzz-percentage")
    @example(body=b'{"context": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", flag_key="fuzz-full")
    @example(body=b'{"context": {"targetingKey": "\xed\xa0\x80"}}', flag_key="fuzz-percentage")
    @example(body=b'{"context": {"targetingKey": "u", "n": 1e400}}', flag_key="fuzz-full")
    def evaluate_anything(body: bytes, flag_key: str) -> None:
        path = quote(flag_key.encode("utf-8", "surrogatepass"), safe="")
        for url in (
            f"{server.url}/ofrep/v1/evaluate/flags/{path}",
            f"{server.url}/ofrep/v1/evaluate/flags",
        ):
            response = session.post(url, data=body, timeout=30)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (url, body[:200], response.text[:500])

    evaluate_anything()

    assert server.worker_pids() == workers, "a worker was replaced"
    assert server.workers_booted() == WORKERS, server.error_log.read_text()[-2000:]
    # The run reached the evaluation itself, not only the parser's refusals.
    assert statuses[200] > 0 and statuses[400] > 0, statuses
