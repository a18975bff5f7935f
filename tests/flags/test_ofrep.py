"""OFREP endpoints through the Django test client against PostgreSQL: answers, errors, auth,
ETag / 304, the rate limit, and no query at all while the snapshot is fresh."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from flags import evaluation, ofrep
from flags.models import Flag, SdkKey
from flags.rules import bucket
from flags.services import (
    flag_archive,
    flag_create,
    flag_state_set,
    kill_switch_engage,
    sdk_key_issue,
    sdk_key_revoke,
)
from tests.flags.approved import accept_through_approval

SINGLE = "/ofrep/v1/evaluate/flags/{}"
BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture(autouse=True)
def fresh_process_state(settings):
    settings.FLAG_SNAPSHOT_MAX_AGE = 0  # every request checks: tests see their own writes
    settings.OFREP_RATE_LIMIT_PER_SECOND = 0
    evaluation.store.reset()
    ofrep.rate_limiter.reset()
    yield
    evaluation.store.reset()
    ofrep.rate_limiter.reset()


@pytest.fixture
def sdk_key(production, system_user) -> str:
    return sdk_key_issue(actor=system_user, environment=production, name="web").raw


@pytest.fixture
def staging_key(staging, system_user) -> str:
    return sdk_key_issue(actor=system_user, environment=staging, name="web").raw


@pytest.fixture
def checkout(developer, release_manager, production) -> Flag:
    """new-checkout: 30% in production, with one allowlisted customer."""
    flag = flag_create(actor=developer, key="new-checkout", name="New checkout")
    flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=30,
        allowlist=["vip-1"],
        reason="canary",
    )
    return flag


def post(client, url: str, key: str | None, body: Any = None, **headers: str):
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    data = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
    return client.post(url, data=data, content_type="application/json", **headers)


def context(targeting_key: str | None = None, **attributes: Any) -> dict:
    ctx = dict(attributes)
    if targeting_key is not None:
        ctx["targetingKey"] = targeting_key
    return {"context": ctx}


# --- Single flag -----------------------------------------------------------------------------


def test_evaluate_flag__percentage__split_with_the_bucketed_value(client, sdk_key, checkout):
    keys = [f"user-{i}" for i in range(100)]
    inside = next(k for k in keys if bucket("new-checkout", k) <= 30)
    outside = next(k for k in keys if bucket("new-checkout", k) > 30)
    on = post(client, SINGLE.format("new-checkout"), sdk_key, context(inside))
    off = post(client, SINGLE.format("new-checkout"), sdk_key, context(outside))
    assert on.status_code == off.status_code == 200
    assert on["Content-Type"] == "application/json"
    assert on.json() == {
        "key": "new-checkout",
        "value": True,
        "variant": "on",
        "reason": "SPLIT",
        "metadata": {},
    }
    assert (off.json()["value"], off.json()["variant"], off.json()["reason"]) == (
        False,
        "off",
        "SPLIT",
    )


def test_evaluate_flag__allowlisted_key__targeting_match(client, sdk_key, checkout):
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context("vip-1", plan="pro"))
    assert response.json()["reason"] == "TARGETING_MATCH"
    assert response.json()["value"] is True


def test_evaluate_flag__other_environment_key__that_environments_state(
    client, staging_key, checkout
):
    """The key decides the environment: staging never changed the flag, so it is off there."""
    response = post(client, SINGLE.format("new-checkout"), staging_key, context("vip-1"))
    assert (response.json()["value"], response.json()["reason"]) == (False, "DISABLED")


def test_evaluate_flag__x_api_key_header__accepted(client, sdk_key, checkout):
    response = post(
        client, SINGLE.format("new-checkout"), None, context("vip-1"), HTTP_X_API_KEY=sdk_key
    )
    assert response.status_code == 200
    assert response.json()["value"] is True


def test_evaluate_flag__shadow__disabled_with_shadow_metadata(
    client, sdk_key, checkout, release_manager, production
):
    flag_state_set(
        actor=release_manager, flag=checkout, environment=production, mode="shadow", reason="dark"
    )
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context("vip-1"))
    assert response.json() == {
        "key": "new-checkout",
        "value": False,
        "variant": "off",
        "reason": "DISABLED",
        "metadata": {"shadow": True},
    }


def test_evaluate_flag__environment_rolled_back__kill_switch_metadata_at_once(
    client, sdk_key, checkout, oncall, production
):
    assert post(client, SINGLE.format("new-checkout"), sdk_key, context("vip-1")).json()["value"]
    kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="errors spiking"
    )
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context("vip-1"))
    assert response.json() == {
        "key": "new-checkout",
        "value": False,
        "variant": "off",
        "reason": "DISABLED",
        "metadata": {"killSwitch": True},
    }


def test_evaluate_flag__string_flag__its_values_once_accepted(
    client, sdk_key, developer, release_manager, production
):
    flag = flag_create(
        actor=developer,
        key="banner",
        name="Banner",
        type="string",
        on_value="spring-sale",
        off_value="none",
    )
    # Defined by a developer: production keeps the callers' default until an approved request
    # accepts its values.
    assert post(client, SINGLE.format("banner"), sdk_key).json()["errorCode"] == "FLAG_NOT_FOUND"
    accept_through_approval(
        flag, production, requester=developer, approver=release_manager, executor=release_manager
    )
    assert post(client, SINGLE.format("banner"), sdk_key).json()["value"] == "none"
    flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    response = post(client, SINGLE.format("banner"), sdk_key)
    assert (response.json()["value"], response.json()["reason"]) == ("spring-sale", "STATIC")


def test_evaluate_flag__unknown_flag__404_flag_not_found(client, sdk_key, checkout):
    response = post(client, SINGLE.format("no-such-flag"), sdk_key, context("u"))
    assert response.status_code == 404
    assert response.json()["key"] == "no-such-flag"
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert "no-such-flag" in response.json()["errorDetails"]


def test_evaluate_flag__protocol_errors__no_warning_per_request_in_the_log(
    client, sdk_key, checkout, caplog
):
    with caplog.at_level("WARNING", logger="django.request"):
        post(client, SINGLE.format("no-such-flag"), sdk_key, context("u"))
        post(client, SINGLE.format("new-checkout"), "rcs_wrong-key-000000", context("u"))

    assert [r for r in caplog.records if r.name == "django.request"] == []


def test_evaluate_flag__archived_flag__404_flag_not_found(
    client, sdk_key, checkout, developer, release_manager, production
):
    assert post(client, SINGLE.format("new-checkout"), sdk_key, context("u")).status_code == 200
    flag_state_set(
        actor=release_manager, flag=checkout, environment=production, mode="off", reason="done"
    )
    flag_archive(actor=developer, flag=checkout, reason="shipped")
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context("u"))
    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"


def test_evaluate_flag__targeted_mode_without_key__400_targeting_key_missing(
    client, sdk_key, checkout
):
    for body in ({}, {"context": {}}, context(""), context(plan="pro")):
        response = post(client, SINGLE.format("new-checkout"), sdk_key, body)
        assert response.status_code == 400, body
        assert response.json()["errorCode"] == "TARGETING_KEY_MISSING"
        assert response.json()["key"] == "new-checkout"
        assert "targetingKey" in response.json()["errorDetails"]


def test_evaluate_flag__off_flag_without_key__answers(client, sdk_key, developer):
    flag_create(actor=developer, key="quiet", name="Quiet")
    response = post(client, SINGLE.format("quiet"), sdk_key, b"")
    assert response.status_code == 200
    assert response.json()["reason"] == "DISABLED"


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"context"'])
def test_evaluate_flag__body_not_a_json_object__400_parse_error(client, sdk_key, checkout, body):
    response = post(client, SINGLE.format("new-checkout"), sdk_key, body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert response.json()["errorDetails"]


@pytest.mark.parametrize(
    "body", [{"context": "user-1"}, {"context": ["user-1"]}, {"context": {"targetingKey": 42}}]
)
def test_evaluate_flag__bad_context__400_invalid_context(client, sdk_key, checkout, body):
    response = post(client, SINGLE.format("new-checkout"), sdk_key, body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"
    assert response.json()["errorDetails"]


UNUSABLE_CONTEXTS = {
    "lone surrogate key": rb'{"context": {"targetingKey": "\ud800"}}',
    "NUL in the key": rb'{"context": {"targetingKey": "user\u0000-1"}}',
    "surrogate deep in a value": rb'{"context": {"targetingKey": "u", "a": [{"b": "\udfff"}]}}',
    "surrogate in an attribute name": rb'{"context": {"targetingKey": "u", "\ud83d": 1}}',
    "nested too deep": b'{"context": {"targetingKey": "u", "a": ' + b"[" * 40 + b"]" * 40 + b"}}",
}


@pytest.mark.parametrize("url", [SINGLE.format("new-checkout"), BULK])
@pytest.mark.parametrize("body", UNUSABLE_CONTEXTS.values(), ids=UNUSABLE_CONTEXTS.keys())
def test_ofrep__context_with_unusable_text_or_depth__400_invalid_context(
    client, sdk_key, checkout, url, body
):
    response = post(client, url, sdk_key, body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"
    assert "context" in response.json()["errorDetails"]  # names where the text is


BAD_JSON = {
    "NaN": b'{"context": {"targetingKey": "u", "score": NaN}}',
    "Infinity": b'{"context": {"targetingKey": "u", "score": -Infinity}}',
    "1e400": b'{"context": {"targetingKey": "u", "score": 1e400}}',
    "a 5000-digit integer": b'{"context": {"targetingKey": "u", "n": ' + b"9" * 5000 + b"}}",
    "100,000-deep nesting": b'{"context": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "UTF-8 of a surrogate": b'{"context": {"targetingKey": "\xed\xa0\x80"}}',
    "not UTF-8": b'{"context": {"targetingKey": "\xff"}}',
}


@pytest.mark.parametrize("url", [SINGLE.format("new-checkout"), BULK])
@pytest.mark.parametrize("body", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_ofrep__body_beyond_json__400_parse_error(client, sdk_key, checkout, url, body):
    response = post(client, url, sdk_key, body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert response.json()["errorDetails"]


def test_ofrep__body_over_the_upload_limit__413_in_ofreps_shape(
    client, sdk_key, checkout, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps(context("u", padding="x" * 2_000))
    response = post(client, SINGLE.format("new-checkout"), sdk_key, body)
    assert response.status_code == 413
    assert response.json()["errorCode"] == "PARSE_ERROR"


def test_ofrep__unicode_context__answers_by_the_utf8_bucket(client, sdk_key, checkout):
    key = "kund-ö-😀-\u4e2d"
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context(key, city="Zürich"))
    assert response.status_code == 200
    assert response.json()["value"] is (bucket("new-checkout", key) <= 30)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer rcs_not-a-real-key"},
        {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        {"HTTP_X_API_KEY": "rcs_not-a-real-key"},
    ],
)
@pytest.mark.parametrize("url", [SINGLE.format("new-checkout"), BULK])
def test_ofrep__without_a_valid_key__401_and_nothing_revealed(client, checkout, headers, url):
    response = post(client, url, None, context("vip-1"), **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["errorDetails"]
    assert "value" not in response.json()


def test_ofrep__revoked_key__401(client, sdk_key, checkout, system_user):
    assert post(client, SINGLE.format("new-checkout"), sdk_key, context("u")).status_code == 200
    sdk_key_revoke(actor=system_user, key=SdkKey.objects.get(digest=SdkKey.digest_of(sdk_key)))
    assert post(client, SINGLE.format("new-checkout"), sdk_key, context("u")).status_code == 401


def test_ofrep__personal_api_token__401(client, checkout, developer, api_token_for):
    """Personal tokens are for /api/v1: they do not read flags over OFREP."""
    token = api_token_for(developer)
    response = post(client, SINGLE.format("new-checkout"), token, context("vip-1"))
    assert response.status_code == 401


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("url", [SINGLE.format("new-checkout"), BULK])
def test_ofrep__not_post__405_with_allow(client, sdk_key, checkout, method, url):
    response = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {sdk_key}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_ofrep__no_session_or_csrf_cookie_set(client, sdk_key, checkout):
    client.handler.enforce_csrf_checks = True
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context("vip-1"))
    assert response.status_code == 200
    assert not response.cookies


# --- Bulk ------------------------------------------------------------------------------------


@pytest.fixture
def three_flags(checkout, developer, release_manager, production) -> None:
    full = flag_create(actor=developer, key="dark-mode", name="Dark mode")
    flag_state_set(
        actor=release_manager, flag=full, environment=production, mode="full", reason="ok"
    )
    flag_create(actor=developer, key="ocr", name="OCR")


def test_evaluate_flags__with_key__every_flag_sorted_with_etag(client, sdk_key, three_flags):
    response = post(client, BULK, sdk_key, context("vip-1"))
    assert response.status_code == 200
    assert response["ETag"].startswith('"')
    flags = response.json()["flags"]
    assert [(f["key"], f["value"], f["reason"]) for f in flags] == [
        ("dark-mode", True, "STATIC"),
        ("new-checkout", True, "TARGETING_MATCH"),
        ("ocr", False, "DISABLED"),
    ]
    assert all(f["variant"] in ("on", "off") and f["metadata"] == {} for f in flags)


def test_evaluate_flags__without_key__targeted_flags_report_missing_key_in_the_list(
    client, sdk_key, three_flags
):
    response = post(client, BULK, sdk_key, {})
    assert response.status_code == 200
    flags = {f["key"]: f for f in response.json()["flags"]}
    assert flags["new-checkout"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert "value" not in flags["new-checkout"]
    assert flags["dark-mode"]["value"] is True


def test_evaluate_flags__archived_flag__left_out(client, sdk_key, three_flags, developer):
    assert len(post(client, BULK, sdk_key, context("u")).json()["flags"]) == 3
    flag_archive(actor=developer, flag=Flag.objects.get(key="ocr"), reason="unused")
    keys = [f["key"] for f in post(client, BULK, sdk_key, context("u")).json()["flags"]]
    assert keys == ["dark-mode", "new-checkout"]


def test_evaluate_flags__same_etag__304_without_body(client, sdk_key, three_flags):
    first = post(client, BULK, sdk_key, context("vip-1"))
    again = post(client, BULK, sdk_key, context("vip-1"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    weak = post(
        client, BULK, sdk_key, context("vip-1"), HTTP_IF_NONE_MATCH=f'"x", W/{first["ETag"]}'
    )
    assert weak.status_code == 304


def test_evaluate_flags__other_context__new_etag_and_full_answer(client, sdk_key, three_flags):
    first = post(client, BULK, sdk_key, context("vip-1"))
    other = post(client, BULK, sdk_key, context("user-2"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert other.status_code == 200
    assert other["ETag"] != first["ETag"]


def test_evaluate_flags__flags_changed__stale_etag_gets_the_new_answer(
    client, sdk_key, three_flags, release_manager, production
):
    first = post(client, BULK, sdk_key, context("vip-1"))
    flag_state_set(
        actor=release_manager,
        flag=Flag.objects.get(key="dark-mode"),
        environment=production,
        mode="off",
        reason="contrast bug",
    )
    again = post(client, BULK, sdk_key, context("vip-1"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]
    assert {f["key"]: f["value"] for f in again.json()["flags"]}["dark-mode"] is False


def test_evaluate_flags__bad_body__400_parse_error(client, sdk_key, three_flags):
    response = post(client, BULK, sdk_key, "{oops")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"


# --- Rate limit ------------------------------------------------------------------------------


def test_ofrep__over_the_rate_limit__429_with_retry_after_in_whole_seconds(
    client, sdk_key, staging_key, checkout, settings
):
    settings.OFREP_RATE_LIMIT_PER_SECOND = 3
    statuses = [
        post(client, SINGLE.format("new-checkout"), sdk_key, context("u")).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    limited = post(client, BULK, sdk_key, context("u"))
    assert limited.status_code == 429
    assert limited["Retry-After"].isdigit()
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["errorDetails"]
    # Another key has its own allowance.
    assert post(client, SINGLE.format("new-checkout"), staging_key, context("u")).status_code == 200


def test_ofrep__rate_limit_off_by_default__many_requests_answered(client, sdk_key, checkout):
    statuses = {
        post(client, SINGLE.format("new-checkout"), sdk_key, context("u")).status_code
        for _ in range(50)
    }
    assert statuses == {200}


# --- The hot path -------------------------------------------------------------------------


def test_ofrep__fresh_snapshot__no_database_query(
    client, sdk_key, three_flags, settings, django_assert_num_queries
):
    settings.FLAG_SNAPSHOT_MAX_AGE = 60
    post(client, SINGLE.format("new-checkout"), sdk_key, context("u"))  # builds the snapshot
    with django_assert_num_queries(0):
        assert post(client, SINGLE.format("new-checkout"), sdk_key, context("u")).status_code == 200
        assert post(client, BULK, sdk_key, context("u")).status_code == 200
        assert post(client, SINGLE.format("nope"), sdk_key, context("u")).status_code == 404


def test_ofrep__snapshot_due_for_a_check__one_query(
    client, sdk_key, three_flags, django_assert_num_queries
):
    post(client, SINGLE.format("new-checkout"), sdk_key, context("u"))
    with django_assert_num_queries(1):  # SELECT the environments' versions: nothing changed
        assert post(client, BULK, sdk_key, context("u")).status_code == 200


# --- issue_sdk_key --------------------------------------------------------------------------


def test_issue_sdk_key__environment__key_alone_on_last_line_and_it_evaluates(
    client, checkout, capsys
):
    call_command("issue_sdk_key", "production", "--name", "checkout-service")
    out, err = capsys.readouterr()
    raw = out.strip().splitlines()[-1]
    assert raw.startswith(SdkKey.PREFIX)
    assert raw not in err
    assert "checkout-service" in err
    key = SdkKey.objects.get(digest=SdkKey.digest_of(raw))
    assert (key.environment.slug, key.name, key.created_by.username) == (
        "production",
        "checkout-service",
        "system",
    )
    assert post(client, SINGLE.format("new-checkout"), raw, context("vip-1")).json()["value"]


def test_issue_sdk_key__unknown_environment__error_naming_the_known_ones(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="production"):
        call_command("issue_sdk_key", "prod")


# --- The OFREP middleware (answers before the page middleware) ------------------------------


def test_ofrep__answer__keeps_security_headers_and_request_id(client, sdk_key, checkout):
    response = post(client, SINGLE.format("new-checkout"), sdk_key, context("vip-1"))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Request-ID"]


def test_ofrep__host_not_allowed__400(client, sdk_key, checkout):
    response = post(client, BULK, sdk_key, context("u"), HTTP_HOST="evil.example")
    assert response.status_code == 400


def test_ofrep__path_beside_the_endpoints__404_from_the_site(client, sdk_key, checkout):
    assert post(client, BULK + "/", sdk_key, context("u")).status_code == 404
    assert post(client, BULK + "-extra", sdk_key, context("u")).status_code == 404


def test_ofrep__without_the_middleware__same_answers_through_the_urls(
    client, sdk_key, three_flags, settings
):
    through_middleware = post(client, BULK, sdk_key, context("vip-1")).json()
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "flags.ofrep.OfrepMiddleware"]
    plain = Client()
    assert post(plain, BULK, sdk_key, context("vip-1")).json() == through_middleware
    single = post(plain, SINGLE.format("new-checkout"), sdk_key, context("vip-1"))
    assert single.json()["reason"] == "TARGETING_MATCH"


def test_pages__with_the_ofrep_middleware__still_need_sign_in_and_csrf(client, developer):
    """The middleware only takes OFREP paths: pages keep sign-in and CSRF."""
    from tests.factories import PASSWORD

    assert client.get("/").status_code == 302  # to the sign-in page
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "dev", "password": PASSWORD})
    assert response.status_code == 403  # no CSRF token
