"""The site's JSON API plumbing (releasecontrol/api.py): every answer under /api/ is JSON,
whatever the path, method or credential; who-am-I is GET /api/v1/me."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/",
        "/api/v1",
        "/api/v1/",
        "/api/v1/nothing-here",
        "/api/v2/flags",
        "/api/v1/flags/",  # a trailing slash: no redirect, a JSON 404
        "/api/v1/flags/new-checkout/environments/staging/unknown",
        "/api/v1/flags/x/environments/not%20a%20slug",
        "/api/v1/flags/x/environments/new%0Aline",  # found by the fuzz: an HTML 404
        "/api/v1/%0A",
    ],
)
@pytest.mark.parametrize("with_token", [True, False])
def test_api__unknown_path__json_404_with_or_without_token(
    client, developer, api_token_for, path, with_token
):
    headers = {"Authorization": f"Bearer {api_token_for(developer)}"} if with_token else {}
    for method in ("GET", "POST", "DELETE"):
        response = client.generic(method, path, headers=headers)
        assert response.status_code == 404, (method, path)
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert body["error"] == "not_found" and "/api/v1/openapi.json" in body["detail"]


def test_api_me__roles__listed_per_environment(api_call, agent):
    response = api_call(agent, "GET", "/api/v1/me")
    assert response.status_code == 200
    assert response.json()["kind"] == "agent"
    assert {"role": "agent", "environment": "staging"} in response.json()["roles"]


def test_api_me__head__405_json(api_call, developer):
    response = api_call(developer, "HEAD", "/api/v1/me")
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_api__session_cookie_and_no_csrf_token__still_401_nothing_done(client, developer):
    """A signed-in browser is not an API client: the token is the only credential."""
    client.force_login(developer)
    response = client.post("/api/v1/flags", {"key": "x"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_api_urls__every_site_url__still_reversible(db):
    from django.urls import reverse

    assert reverse("dashboard") == "/"
    assert reverse("api:flags") == "/api/v1/flags"
    assert reverse("api_not_found", kwargs={"rest": "x"}) == "/api/x"
