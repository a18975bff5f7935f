"""The OpenAPI document at /api/v1/openapi.json describes every /api/v1 route, and only those
that exist, with the methods they answer."""

from __future__ import annotations

import json
import re

import openapi_spec_validator
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from flags.openapi import openapi_document

API_PREFIX = "/api/v1/"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
SAMPLE_PARAMETERS = {"key": "some-flag", "environment": "staging"}


def _routes(patterns: list, prefix: str = "/") -> list[str]:
    """Every route the resolver knows, as OpenAPI paths: <str:key> becomes {key}."""
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


def test_openapi__post__405(client, db):
    response = client.post("/api/v1/openapi.json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_openapi__every_api_route__documented_and_nothing_more():
    documented = {path for path in openapi_document()["paths"] if path.startswith(API_PREFIX)}
    routes = api_routes()
    assert "/api/v1/me" in routes and "/api/v1/flags" in routes  # the walk finds them
    assert routes - documented == set(), "routes missing from flags/openapi.py"
    assert documented - routes == set(), "documented paths that no route serves"


def test_openapi__document__valid_openapi_3_1():
    openapi_spec_validator.validate(openapi_document())


def test_openapi__document__bearer_scheme_and_error_schema():
    document = openapi_document()
    scheme = document["components"]["securitySchemes"]["personalToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"personalToken": []}]
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    assert json.loads(json.dumps(document)) == document  # plain JSON all the way down


@pytest.mark.parametrize(("path", "method"), documented_operations())
def test_openapi__documented_operation__answers_that_method(client, db, path, method):
    """Without a credential a documented operation answers 401 (so the method exists), the
    public document 200."""
    url = _url(path)
    resolve(url)  # routed: raises Resolver404 otherwise
    response = client.generic(method.upper(), url, data="{}", content_type="application/json")
    expected = 200 if path == "/api/v1/openapi.json" else 401
    assert response.status_code == expected


@pytest.mark.parametrize(
    "path", sorted(p for p in openapi_document()["paths"] if p.startswith(API_PREFIX))
)
def test_openapi__undocumented_method__405(client, db, path):
    item = openapi_document()["paths"][path]
    for method in HTTP_METHODS:
        if method not in item:
            response = client.generic(method.upper(), _url(path))
            assert response.status_code == 405, (path, method)
