"""The OpenAPI document at /api/v1/openapi.json is generated from the API's schemas: it
describes every /api/v1 route, and only those that exist, with the methods they answer, the
status codes each can give and the shape of every body."""

from __future__ import annotations

import json
import re

import openapi_spec_validator
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from flags.models import FLAG_KEY_PATTERN
from releasecontrol.api import openapi_document

API_PREFIX = "/api/v1/"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
SAMPLE_PARAMETERS = {"key": "some-flag", "environment": "staging", "id": "1", "item": "1"}
NOT_DOCUMENTED = {"/api/v1/openapi.json"}  # the document itself


def _routes(patterns: list, prefix: str = "/") -> list[str]:
    """Every route the resolver knows, as OpenAPI paths: <slug:environment> becomes
    {environment}."""
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes.extend(_routes(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            routes.append(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


def api_routes() -> set[str]:
    return {route for route in _routes(get_resolver().url_patterns) if route.startswith(API_PREFIX)}


def documented_operations() -> list[tuple[str, str]]:
    return [
        (path, method)
        for path, item in openapi_document()["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]


def _url(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: SAMPLE_PARAMETERS[m.group(1)], path)


def test_openapi__no_token__served_as_json(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.1")
    assert {"info", "paths", "components"} <= document.keys()
    assert document["info"]["title"] and document["info"]["version"]


def test_openapi__post__405_json(client, db):
    response = client.post("/api/v1/openapi.json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_openapi__every_api_route__documented_and_nothing_more():
    documented = set(openapi_document()["paths"])
    routes = api_routes() - NOT_DOCUMENTED
    assert "/api/v1/me" in routes and "/api/v1/flags" in routes  # the walk finds them
    assert routes - documented == set(), "routes the document leaves out"
    assert documented - routes == set(), "documented paths that no route serves"


def test_openapi__document__valid_openapi_3_1():
    openapi_spec_validator.validate(openapi_document())


def test_openapi__document__bearer_scheme_on_every_operation():
    document = openapi_document()
    scheme = document["components"]["securitySchemes"]["PersonalToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method in documented_operations():
        assert document["paths"][path][method]["security"] == [{"PersonalToken": []}]


def test_openapi__error_schema__error_and_detail_required():
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["ErrorOut"]["required"] == ["error", "detail"]
    assert schemas["ConflictOut"]["required"] == ["error", "detail"]


@pytest.mark.parametrize(("path", "method"), documented_operations())
def test_openapi__operation__documents_every_status_it_can_answer(path, method):
    operation = openapi_document()["paths"][path][method]
    statuses = set(operation["responses"])
    assert "401" in statuses  # every operation takes a token
    if operation.get("parameters") or "requestBody" in operation:
        assert "400" in statuses
    if "{" in path:
        assert "404" in statuses
    if method != "get":
        assert {"403"} <= statuses
    for status, response in operation["responses"].items():
        assert "application/json" in response["content"], (status, "JSON only")


def test_openapi__flag_key__pattern_of_the_model_in_paths_and_bodies():
    document = openapi_document()
    key_parameters = [
        p
        for item in document["paths"].values()
        for operation in item.values()
        for p in operation.get("parameters", [])
        if p["name"] == "key"
    ]
    assert key_parameters and all(
        p["schema"]["pattern"] == FLAG_KEY_PATTERN for p in key_parameters
    )
    body = document["components"]["schemas"]["FlagCreateIn"]
    assert body["properties"]["key"]["pattern"] == FLAG_KEY_PATTERN
    assert body["additionalProperties"] is False


def test_openapi__state_patch__version_required():
    schema = openapi_document()["components"]["schemas"]["StatePatchIn"]
    assert schema["required"] == ["version"]
    assert schema["additionalProperties"] is False


def test_openapi__lists__limit_cursor_and_items_next():
    document = openapi_document()
    for path in ("/api/v1/flags", "/api/v1/flags/{key}/history"):
        operation = document["paths"][path]["get"]
        limit = next(p for p in operation["parameters"] if p["name"] == "limit")
        assert (limit["schema"]["default"], limit["schema"]["maximum"]) == (50, 500)
        assert any(p["name"] == "cursor" for p in operation["parameters"])
        page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][page.rsplit("/", 1)[1]]
        assert set(schema["required"]) == {"items", "next"}


def test_openapi__flag_create__idempotency_key_header():
    operation = openapi_document()["paths"]["/api/v1/flags"]["post"]
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and not header["required"]


@pytest.mark.parametrize(("path", "method"), documented_operations())
def test_openapi__documented_operation__answers_that_method(client, db, path, method):
    """Without a credential a documented operation answers 401, so the method exists."""
    url = _url(path)
    resolve(url)  # routed: raises Resolver404 otherwise
    response = client.generic(method.upper(), url, data="{}", content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize("path", sorted(openapi_document()["paths"]))
def test_openapi__undocumented_method__405(client, db, path):
    item = openapi_document()["paths"][path]
    for method in HTTP_METHODS:
        if method not in item:
            response = client.generic(method.upper(), _url(path))
            assert response.status_code == 405, (path, method)
            assert response.json()["error"] == "method_not_allowed"
