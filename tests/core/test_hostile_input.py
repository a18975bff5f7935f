"""No 5xx from bad input anywhere: a table of hostile inputs walked over real URLs (pages
signed in, the API with a token, OFREP with an SDK key). Each answer is below 500; input that
cannot be taken at all gets a 4xx that says what to fix; /api and /ofrep always answer JSON."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from flags.services import flag_create, sdk_key_issue
from releasecontrol.audit import Target, audit_verify
from releasecontrol.models import AuditEvent
from releasecontrol.policy import authorize

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
TEN_MB = "x" * (10 * 1024 * 1024)
LONG_NUMBER = "12345678901234567890123"
FORMULA = '=HYPERLINK("https://evil.example","x")'

# Query-string values: (raw, already percent-encoded?, must be refused?)
QUERY_VALUES = {
    "nul": ("%00", True),
    "lone surrogate": ("%ED%A0%80", True),
    "not utf-8": ("%FF", True),
    "23 digits": (LONG_NUMBER, False),
    "1e400": ("1e400", False),
    "NaN": ("NaN", False),
    "formula": (quote(FORMULA), False),
    "far future": ("9999-12-31T23:59:59-14:00", False),
    "far past": ("0001-01-01T00:00:00+14:00", False),
}

PAGES = {
    "/": ["q"],
    "/flags/": ["q", "tag", "environment"],
    "/flags/new": ["next"],
    "/flags/checkout/": ["tab", "before"],
    "/environments/production/": ["q"],
    "/audit/": ["actor", "since", "until", "before", "target_id", "action", "outcome"],
    "/audit/charts/": ["actor", "since", "until", "environment"],
    "/audit/export.csv": ["actor", "since", "until"],
    "/audit/export.jsonl": ["actor", "since"],
    "/audit/verify/": ["from_id"],
    "/audit/packs/": ["kill_switch_event", "since", "environment"],
}
API_GETS = {
    "/api/v1/flags": ["search", "tag", "limit", "cursor"],
    "/api/v1/flags/checkout": ["x"],
    "/api/v1/flags/checkout/history": ["before", "limit"],
}

JSON_BODIES = {
    "NaN": '{"key": "h1", "reason": NaN, "version": NaN}',
    "Infinity": '{"key": "h1", "on_value": Infinity, "percentage": Infinity}',
    "-Infinity": '{"key": "h1", "percentage": -Infinity}',
    "1e400": '{"key": "h1", "percentage": 1e400, "version": 1e400}',
    "deep": DEEP,
    "deep in a field": '{"key": "h1", "on_value": ' + DEEP + "}",
    "nul in reason": '{"key": "h1", "reason": "a\\u0000b", "mode": "full", "version": 1}',
    "surrogate in allowlist": '{"mode": "allowlist", "allowlist": ["\\ud800"], "version": 1}',
    "23 digits": f'{{"key": "h1", "version": {LONG_NUMBER}, "percentage": {LONG_NUMBER}}}',
    "formula": json.dumps({"key": "h1", "reason": FORMULA, "mode": "off", "version": 1}),
    "10 MB": json.dumps({"key": "h1", "description": TEN_MB}),
}
MUST_REFUSE_BODIES = set(JSON_BODIES) - {"23 digits", "formula"}

API_POSTS = [
    ("POST", "/api/v1/flags"),
    ("PATCH", "/api/v1/flags/checkout"),
    ("PATCH", "/api/v1/flags/checkout/environments/staging"),
    ("POST", "/api/v1/flags/checkout/environments/staging/restore"),
    ("POST", "/api/v1/environments/staging/rollback"),
]
OFREP_POSTS = ["/ofrep/v1/evaluate/flags/checkout", "/ofrep/v1/evaluate/flags"]

# Percent-encoded, as a browser sends them (a lone surrogate can only arrive as bytes that are
# not UTF-8).
FORM_VALUES = {
    "nul": "a%00b",
    "lone surrogate": "a%ED%A0%80b",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "1e400": quote('{"limit": 1e400}'),
    "deep": quote('{"a": ' + DEEP + "}"),
    "23 digits": LONG_NUMBER,
    "formula": quote(FORMULA),
}
PAGE_FORMS = [
    ("/flags/new", ["key", "name", "description", "on_value", "off_value"], {"type": "object"}),
    ("/flags/checkout/environments/staging/", ["reason", "allowlist", "percentage"], {}),
    ("/audit/verify/", ["from_id", "to_id"], {}),
    ("/audit/packs/", ["since", "kill_switch_event"], {"environment": "production"}),
]


@pytest.fixture
def world(release_manager, system_user, production, api_token_for):
    flag_create(actor=release_manager, key="checkout", name="Checkout")
    page = Client()
    page.force_login(release_manager)
    return {
        "page": page,
        "api": Client(HTTP_AUTHORIZATION=f"Bearer {api_token_for(release_manager)}"),
        "sdk": sdk_key_issue(actor=system_user, environment=production, name="web").raw,
    }


def assert_answer(response, label: str, *, refused: bool, json_only: bool) -> None:
    status = response.status_code
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert status < 500, f"{label}: {status} {body[:300]!r}"
    if refused:
        assert 400 <= status < 500, f"{label}: {status}, expected a refusal"
        assert len(body) > 20, f"{label}: a refusal should say what to fix"
    if json_only:
        assert response["Content-Type"].startswith("application/json"), label
        if status >= 400:
            detail = json.loads(body)
            assert detail.get("detail") or detail.get("errorDetails"), f"{label}: {detail}"


@pytest.mark.parametrize("value_name", QUERY_VALUES)
def test_hostile_query_values__every_page_and_api_list__never_5xx(world, value_name):
    raw, refused = QUERY_VALUES[value_name]
    for url, params in PAGES.items():
        for param in params:
            response = world["page"].get(f"{url}?{param}={raw}")
            assert_answer(response, f"GET {url}?{param}", refused=refused, json_only=False)
    for url, params in API_GETS.items():
        for param in params:
            response = world["api"].get(f"{url}?{param}={raw}")
            assert_answer(response, f"GET {url}?{param}", refused=refused, json_only=True)


@pytest.mark.parametrize("value_name", ["nul", "23 digits", "formula"])
def test_hostile_path_segments__pages_and_api__never_5xx(world, value_name):
    formula = quote('=SUM(1+1)*cmd|" calc"!A0', safe="")  # no "/": a key the routes take
    segment = {"nul": "a%00b", "23 digits": LONG_NUMBER, "formula": formula}[value_name]
    refused = value_name == "nul"
    for url in (f"/flags/{segment}/", f"/audit/events/{segment}/", f"/environments/{segment}/"):
        assert_answer(world["page"].get(url), url, refused=refused, json_only=False)
    for url in (f"/api/v1/flags/{segment}", f"/api/v1/flags/{segment}/history"):
        assert_answer(world["api"].get(url), url, refused=refused, json_only=True)


@pytest.mark.parametrize("body_name", JSON_BODIES)
def test_hostile_json_bodies__api_and_ofrep__never_5xx_and_always_json(world, body_name):
    body = JSON_BODIES[body_name]
    refused = body_name in MUST_REFUSE_BODIES
    for method, url in API_POSTS:
        response = world["api"].generic(method, url, body, content_type="application/json")
        assert_answer(response, f"{method} {url} {body_name}", refused=refused, json_only=True)
    for url in OFREP_POSTS:
        response = world["page"].post(
            url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {world['sdk']}"
        )
        assert_answer(response, f"POST {url} {body_name}", refused=refused, json_only=True)
    assert audit_verify().ok


@pytest.mark.parametrize("value_name", FORM_VALUES)
def test_hostile_form_fields__pages__never_5xx(world, value_name):
    value = FORM_VALUES[value_name]
    for url, fields, base in PAGE_FORMS:
        for field in fields:
            data = {**base, "key": "h1", "reason": "why", field: value}
            body = "&".join(f"{name}={text}" for name, text in data.items())
            response = world["page"].post(
                url, body, content_type="application/x-www-form-urlencoded"
            )
            refused = value_name in ("nul", "lone surrogate") or (
                url == "/audit/verify/" and value_name in ("23 digits", "NaN", "Infinity")
            )
            assert_answer(response, f"POST {url} {field}", refused=refused, json_only=False)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '{"a": 1e400}', '{"a": NaN}'])
def test_flag_form_object_value__not_storable__400_says_what_to_fix(world, value):
    response = world["page"].post(
        "/flags/new",
        {"key": "obj", "type": "object", "on_value": value, "off_value": "{}"},
    )

    assert response.status_code == 400
    assert "JSON object" in response.content.decode()


def test_flag_form_object_value__deep_nesting__400_not_a_crash(world):
    response = world["page"].post(
        "/flags/new",
        {"key": "obj", "type": "object", "on_value": '{"a": ' + DEEP + "}", "off_value": "{}"},
    )

    assert response.status_code == 400
    assert "nested deeper" in response.content.decode()


def test_audit_verify__23_digit_from_id__400_saying_the_range(world):
    response = world["page"].post("/audit/verify/", {"from_id": LONG_NUMBER})

    assert response.status_code == 400
    assert "9223372036854775807" in response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["x/y", "a b", "../..", "%00", "<b>x</b>", "日本"])
def test_audit_explorer__refused_target_with_any_name__renders_it_as_text(
    auditor, developer, production, name
):
    with pytest.raises(PermissionDenied):
        authorize(auditor, "flag.create", production, target=Target("flag", "", name))
    client = Client()
    client.force_login(auditor)

    explorer = client.get("/audit/")
    detail = client.get(f"/audit/events/{AuditEvent.objects.get(outcome='denied').pk}/")

    assert explorer.status_code == 200
    assert detail.status_code == 200
    assert AuditEvent.objects.filter(target_name=name, outcome="denied").exists()
