"""Input no part of the site can take is refused at the edge (400, or 413 for a body over the
limit), before anything is authorized or recorded, in the shape the path's clients read."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.test.client import encode_multipart

from flags.services import sdk_key_issue
from releasecontrol.models import AuditEvent
from releasecontrol.validation import InvalidInput, json_loads_strict

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def token(developer, api_token_for) -> str:
    return api_token_for(developer)


@pytest.fixture
def api(token) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def sdk_key(production, system_user) -> str:
    return sdk_key_issue(actor=system_user, environment=production, name="web").raw


@pytest.fixture
def signed_in(client, developer) -> Client:
    client.force_login(developer)
    return client


# --- The strict JSON loader -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ("[-Infinity]", "-Infinity"),
        ('{"a": 1e400}', "1e400"),
        ('{"a": -1e400}', "-1e400"),
        ("[" + "9" * 400 + "]", "400-digit"),
        ('{"a": "x\\u0000y"}', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('{"a": ["\\ud800"]}', "surrogate"),
        ('{"\\udfff": 1}', "surrogate"),
        (DEEP, "nested deeper"),
        ("[" * 65 + "]" * 65, "nested deeper"),
    ],
)
def test_json_loads_strict__unstorable_json__refused_naming_the_problem(text, problem):
    with pytest.raises(InvalidInput, match=problem):
        json_loads_strict(text)


def test_json_loads_strict__value_inside__names_its_path():
    with pytest.raises(InvalidInput) as refused:
        json_loads_strict('{"context": {"plan": ["ok", "x\\u0000"]}}', where="the body")

    assert str(refused.value).startswith("the body at context.plan[1] contains a NUL")


def test_json_loads_strict__invalid_utf8_bytes__refused():
    with pytest.raises(InvalidInput, match="UTF-8"):
        json_loads_strict(b'{"a": "\xff"}')


def test_json_loads_strict__ordinary_json__same_as_json_loads():
    text = '{"a": [1, 2.5, -0.0, 1e16, 5e-324, "Grüße ✓ 😀", null, true], "b": {"c": {}}}'
    nested = "[" * 64 + "]" * 64

    assert json_loads_strict(text) == json.loads(text)
    assert json_loads_strict(text.encode()) == json.loads(text)
    assert json_loads_strict(nested) == json.loads(nested)


def test_json_loads_strict__not_json__json_decode_error():
    with pytest.raises(json.JSONDecodeError):
        json_loads_strict("{not json")


# --- Paths and query strings ----------------------------------------------------------------


def test_query_parameter_with_nul__page__400_page_naming_the_parameter(signed_in):
    response = signed_in.get("/flags/?q=%00")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "query parameter &#x27;q&#x27; contains a NUL" in response.content.decode()


def test_query_parameter_with_nul__api__json_400_naming_the_parameter(api):
    response = api.get("/api/v1/flags?search=%00")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_input"
    assert "query parameter 'search' contains a NUL" in response.json()["detail"]


@pytest.mark.parametrize("query", ["q=%FF", "q=%ED%A0%80", "%00=1"])
def test_query_string_not_text__400(signed_in, query):
    response = signed_in.get(f"/flags/?{query}")

    assert response.status_code == 400


def test_path_with_nul__page__400(signed_in):
    response = signed_in.get("/flags/a%00b/")

    assert response.status_code == 400
    assert "the path contains a NUL" in response.content.decode()


def test_path_with_invalid_utf8__api__kept_escaped_and_a_json_4xx(api):
    # Django keeps bytes that are not UTF-8 percent-escaped: "%FF" is simply a key no flag has.
    response = api.get("/api/v1/flags/%FF")

    assert 400 <= response.status_code < 500
    assert response["Content-Type"] == "application/json"


# --- Bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, mentions",
    [
        ('{"key": "k", "name": NaN}', "NaN"),
        ('{"key": "k", "on_value": Infinity}', "Infinity"),
        ('{"key": "k", "on_value": 1e400}', "1e400"),
        ('{"key": "k\\u0000"}', "at key contains a NUL"),
        ('{"key": "k", "description": "\\ud800"}', "at description contains a lone surrogate"),
        (DEEP, "nested deeper"),
    ],
)
def test_json_body_unstorable__api__400_before_anything_is_recorded(api, body, mentions):
    events_before = AuditEvent.objects.count()

    response = api.post("/api/v1/flags", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_input"
    assert mentions in response.json()["detail"]
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe", b'{"key": "\xff"}', '{"key": "\x00"}'.encode("utf-16")]
)
def test_json_body_not_utf8__api__400_asks_for_utf8(api, raw):
    response = api.post("/api/v1/flags", data=raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_input",
        "detail": "the JSON body is not valid UTF-8: send UTF-8 text",
    }


def test_json_body_sent_as_a_form__api__still_checked_as_json(api):
    response = api.post(
        "/api/v1/flags",
        data='{"key": "k", "name": NaN}',
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert "NaN" in response.json()["detail"]


def test_body_over_the_limit__api__json_413(api, settings):
    body = json.dumps({"key": "k", "description": "x" * (10 * 1024 * 1024)})

    response = api.post("/api/v1/flags", data=body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes" in response.json()["detail"]


def test_body_over_the_limit__page__413_page(signed_in):
    response = signed_in.post("/flags/new", data={"key": "k", "description": "x" * 3_000_000})

    assert response.status_code == 413
    assert "Too much data" in response.content.decode()


def test_form_field_with_nul__page__400_naming_the_field(signed_in):
    events_before = AuditEvent.objects.count()

    response = signed_in.post("/flags/new", data={"key": "k", "description": "a\x00b"})

    assert response.status_code == 400
    assert "form field &#x27;description&#x27; contains a NUL" in response.content.decode()
    assert AuditEvent.objects.count() == events_before


def test_multipart_field_with_nul__page__400(signed_in):
    body = encode_multipart("edge-boundary", {"key": "k", "reason": "a\x00b"})
    response = signed_in.post(
        "/flags/new", data=body, content_type="multipart/form-data; boundary=edge-boundary"
    )

    assert response.status_code == 400
    assert "form field &#x27;reason&#x27; contains a NUL" in response.content.decode()


def test_ordinary_json_body__api__passes_and_is_handed_on(api):
    response = api.post(
        "/api/v1/flags",
        data=json.dumps({"key": "edge-ok", "name": "Grüße ✓", "description": "-0.0 is fine"}),
        content_type="application/json",
    )

    assert response.status_code == 201, response.content


def test_not_json_at_all__api__the_views_own_answer(api):
    response = api.post("/api/v1/flags", data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] != "invalid_input"


# --- OFREP ----------------------------------------------------------------------------------


def test_ofrep_targeting_key_lone_surrogate__invalid_context_with_the_key(client, sdk_key):
    response = client.post(
        "/ofrep/v1/evaluate/flags/new-checkout",
        data='{"context": {"targetingKey": "\\ud800"}}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {sdk_key}",
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["key"] == "new-checkout"
    assert body["errorCode"] == "INVALID_CONTEXT"
    assert "context.targetingKey contains a lone surrogate" in body["errorDetails"]


@pytest.mark.parametrize("body", ['{"context": {"n": NaN}}', '{"context": {"n": 1e400}}', DEEP])
def test_ofrep_unreadable_json__bulk__parse_error_without_a_key(client, sdk_key, body):
    response = client.post(
        "/ofrep/v1/evaluate/flags",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {sdk_key}",
    )

    assert response.status_code == 400
    assert set(response.json()) == {"errorCode", "errorDetails"}
    assert response.json()["errorCode"] == "PARSE_ERROR"


def test_ofrep_body_over_the_limit__413_in_ofreps_shape(client, sdk_key):
    response = client.post(
        "/ofrep/v1/evaluate/flags/new-checkout",
        data=json.dumps({"context": {"targetingKey": "x" * 3_000_000}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {sdk_key}",
    )

    assert response.status_code == 413
    assert response.json()["key"] == "new-checkout"
    assert response.json()["errorCode"] == "PARSE_ERROR"


def test_ofrep_key_with_nul__400_in_ofreps_shape(client, sdk_key):
    response = client.post(
        "/ofrep/v1/evaluate/flags/a%00b",
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {sdk_key}",
    )

    assert response.status_code == 400
    assert response.json()["key"] == "a\ufffdb"
    assert "the path contains a NUL" in response.json()["errorDetails"]
