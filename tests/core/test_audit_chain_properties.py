"""The chain verifies whatever was recorded: the hash is computed over exactly what PostgreSQL
stores and gives back (jsonb's numbers, inet's address format), so any before/after value,
reason and client address recorded through audit_record verifies when read back; what cannot
be stored faithfully (NaN, Infinity, NUL, lone surrogates, a non-address) is refused loudly."""

from __future__ import annotations

import datetime as dt
import ipaddress
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasecontrol.audit import Target, audit_record, audit_verify
from releasecontrol.context import RequestContext, reset_request_context, set_request_context
from releasecontrol.models import AuditEvent

pytestmark = pytest.mark.django_db

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=20,
)
NUMBERS = (
    st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-0.0, 0.0, 1e16, 1.5e300, 5e-324, 1e-7, -1e22, 2.5e-308, 0.1])
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=16,
)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(lambda a: a.exploded if int(a) % 2 else str(a).upper())
MAPPED = st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}")
COMPATIBLE = st.integers(min_value=1, max_value=2**32 - 1).map(
    lambda n: str(ipaddress.IPv6Address(n))
)
ADDRESSES = st.none() | IPV4 | IPV6 | MAPPED | COMPATIBLE | st.just("2001:DB8::1")

BOUNDED = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@BOUNDED
@given(before=JSON, after=JSON, reason=TEXT, name=TEXT, address=ADDRESSES)
def test_audit_record__arbitrary_values__chain_verifies_as_read_back(
    system_user, before, after, reason, name, address
):
    token = set_request_context(RequestContext("req-prop", address))
    try:
        event = audit_record(
            actor=system_user,
            action="test.property",
            target=Target("flag", "1", name),
            before=before,
            after=after,
            reason=reason,
        )
    finally:
        reset_request_context(token)

    report = audit_verify()  # re-reads every row from PostgreSQL
    assert report.ok, report.problem
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.hash == event.hash
    assert (stored.before, stored.after) == (event.before, event.after)
    assert stored.reason == reason
    if address is not None:
        assert ipaddress.ip_address(stored.client_ip) in {
            ipaddress.ip_address(address),
            getattr(ipaddress.ip_address(address), "ipv4_mapped", None),
        }


@pytest.mark.parametrize(
    "value",
    [
        {10: "ten", 9: "nine", "x": (1, 2)},
        {True: 1, None: 2},
        {"when": dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC), "cost": Decimal("1.50")},
        {
            "states": [
                {"flag": f"f-{i}", "before": {"mode": "full", "version": i}} for i in range(500)
            ]
        },
    ],
)
def test_audit_record__keys_and_types_json_rewrites__stored_as_hashed_and_verify(
    system_user, value
):
    event = audit_record(actor=system_user, action="test.rewrites", before=value, after=[value])
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.before, stored.after) == (event.before, event.after)
    assert stored.hash == event.hash
    assert audit_verify().ok


@pytest.mark.parametrize("value", [-0.0, 1e16, 1.5e300, 5e-324, 10**30, {"n": [-0.0, 1e22]}])
def test_audit_record__numbers_jsonb_rewrites__verify(system_user, value):
    audit_record(actor=system_user, action="test.number", after={"v": value})

    assert audit_verify().ok


@pytest.mark.parametrize(
    "address, stored", [("2001:DB8::1", "2001:db8::1"), ("::ffff:1.2.3.4", "1.2.3.4")]
)
def test_audit_record__address_in_another_spelling__stored_normalised_and_verifies(
    system_user, address, stored
):
    token = set_request_context(RequestContext("req-ip", address))
    try:
        event = audit_record(actor=system_user, action="test.ip")
    finally:
        reset_request_context(token)

    assert AuditEvent.objects.get(pk=event.pk).client_ip == stored
    assert audit_verify().ok


@pytest.mark.parametrize(
    "fields, mentions",
    [
        ({"after": {"v": float("nan")}}, "after"),
        ({"after": {"v": float("inf")}}, "after"),
        ({"before": [float("-inf")]}, "before"),
        ({"after": {"v": "a\x00b"}}, "NUL"),
        ({"after": {"k\ud800": 1}}, "surrogate"),
        ({"reason": "a\x00b"}, "reason"),
        ({"reason": "\udfff"}, "reason"),
        ({"target": Target("flag", "1", "x\x00")}, "target_name"),
    ],
)
def test_audit_record__unstorable_value__refused_loudly(system_user, fields, mentions):
    with pytest.raises(ValueError, match=mentions):
        audit_record(actor=system_user, action="test.refused", **fields)

    assert not AuditEvent.objects.filter(action="test.refused").exists()


def test_audit_record__client_ip_not_an_address__refused_loudly(system_user):
    token = set_request_context(RequestContext("req-x", "not-an-ip"))
    try:
        with pytest.raises(ValueError, match="not an IP address"):
            audit_record(actor=system_user, action="test.refused")
    finally:
        reset_request_context(token)


@pytest.mark.parametrize("forwarded", ["not-an-address", "1.2.3.4, <script>", "", "999.1.1.1"])
def test_audited_write__x_forwarded_for_not_an_address__uses_the_peer_address(
    developer, api_token_for, settings, forwarded
):
    settings.USE_X_FORWARDED_FOR = True
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_token_for(developer)}")

    response = client.post(
        "/api/v1/flags",
        data={"key": "behind-a-proxy"},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR=forwarded,
        REMOTE_ADDR="198.51.100.7",
    )

    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="flag.create")
    assert event.client_ip == "198.51.100.7"
    assert audit_verify().ok


def test_audited_write__x_forwarded_for_ipv6_in_capitals__recorded_normalised(
    developer, api_token_for, settings
):
    settings.USE_X_FORWARDED_FOR = True
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_token_for(developer)}")

    client.post(
        "/api/v1/flags",
        data={"key": "v6-client"},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="203.0.113.1, 2001:DB8:0:0::1",
    )

    assert AuditEvent.objects.get(action="flag.create").client_ip == "2001:db8::1"
    assert audit_verify().ok
