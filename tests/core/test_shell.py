"""The shell: base.html with htmx served locally, the CSRF token on <body hx-headers>, the
dashboard of environments (with its HTMX partial) and the environment page's production banner."""

import json
import re

import pytest
from django.test import Client

from releasecontrol.models import Environment, User
from releasecontrol.services import role_grant
from tests.factories import EnvironmentFactory, UserFactory

CARD = re.compile(rb'<article class="env-card[^"]*" data-testid="env-(?P<slug>[a-z0-9-]+)"')


def cards(content: bytes) -> list[str]:
    return [m.decode() for m in CARD.findall(content)]


def card_html(content: bytes, slug: str) -> str:
    text = content.decode()
    start = text.index(f'data-testid="env-{slug}"')
    end = text.find("</article>", start)
    return text[start:end]


def test_dashboard__signed_in__shows_the_three_environments_in_order(client, outsider, developer):
    from releasecontrol.models import RoleGrant

    RoleGrant.objects.filter(user=developer, environment__slug="production").delete()
    client.force_login(developer)

    response = client.get("/")

    assert response.status_code == 200
    assert cards(response.content) == ["development", "staging", "production"]
    assert "Developer" in card_html(response.content, "staging")
    assert "none" in card_html(response.content, "production")  # the developer's roles there


def test_dashboard__kill_switch_engaged__the_card_says_so(client, oncall, production):
    from flags.services import kill_switch_engage

    kill_switch_engage(
        actor=oncall, environment=production, scope="environment", reason="errors at 4%"
    )
    client.force_login(oncall)

    response = client.get("/")

    assert "ENGAGED" in card_html(response.content, "production")
    assert "omar" in card_html(response.content, "production")
    assert "none engaged" in card_html(response.content, "staging")


def test_dashboard__htmx_request__only_the_environments_partial(client, developer):
    client.force_login(developer)

    response = client.get("/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="environments"')
    assert "<html" not in body and "<body" not in body
    assert cards(response.content) == ["development", "staging", "production"]


def test_dashboard__queries__fixed_however_many_environments_and_grants(
    client, developer, django_assert_max_num_queries, system_user
):
    client.force_login(developer)
    client.get("/")  # warm the session

    # session, user, the user's role grants, environments, the monitor's heartbeat, the
    # flags section (engaged kill switches, live flags per mode), the releases section (live
    # releases) and the on-call section (live releases, unrestored rollbacks)
    with django_assert_max_num_queries(10):
        small = client.get("/")

    for n in range(5):
        extra = EnvironmentFactory(slug=f"preview-{n}")
        role_grant(actor=system_user, user=developer, role="developer", environments=[extra])
        Environment.objects.filter(pk=extra.pk).update(
            kill_switch_engaged=True, kill_switch_engaged_by=system_user
        )
    with django_assert_max_num_queries(10):
        big = client.get("/")

    assert len(cards(big.content)) == len(cards(small.content)) + 5


def test_environment_page__production__carries_the_red_banner(client, developer):
    client.force_login(developer)

    response = client.get("/environments/production/")

    assert response.status_code == 200
    assert b'data-testid="production-banner"' in response.content
    assert b"PRODUCTION" in response.content


@pytest.mark.parametrize("slug", ["development", "staging"])
def test_environment_page__not_production__no_banner(client, developer, slug):
    client.force_login(developer)

    response = client.get(f"/environments/{slug}/")

    assert response.status_code == 200
    assert b'data-testid="production-banner"' not in response.content


def test_environment_page__lists_who_holds_a_role_there(client, developer, agent):
    client.force_login(developer)

    response = client.get("/environments/staging/")

    assert b"<td>dev</td>" in response.content
    assert b"<td>ci-bot</td>" in response.content


def test_environment_page__unknown__404(client, developer):
    client.force_login(developer)

    assert client.get("/environments/moon/").status_code == 404


def test_dashboard__post__405(client, developer):
    client.force_login(developer)

    assert client.post("/").status_code == 405


def hx_headers(content: bytes) -> dict:
    match = re.search(rb"<body[^>]*\bhx-headers='([^']*)'", content)
    assert match, "no hx-headers on <body>"
    return json.loads(match.group(1))


@pytest.mark.parametrize(
    "path, signed_in",
    [
        ("/", True),
        ("/environments/development/", True),
        ("/environments/production/", True),
        ("/accounts/login/", False),
    ],
)
def test_page__body_hx_headers__carry_a_working_csrf_token(developer, path, signed_in):
    client = Client(enforce_csrf_checks=True)
    if signed_in:
        client.force_login(developer)

    token = hx_headers(client.get(path).content)["X-CSRFToken"]

    assert len(token) >= 32
    if signed_in:
        # What htmx sends with every request: the header from <body hx-headers>.
        assert client.post("/accounts/logout/", HTTP_X_CSRFTOKEN=token).status_code == 302
        assert "_auth_user_id" not in client.session


def test_csrf__post_without_the_token__refused(developer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    client.get("/")

    assert client.post("/accounts/logout/").status_code == 403


def test_page__htmx__served_from_static_no_cdn(client, developer):
    client.force_login(developer)

    page = client.get("/").content.decode()
    script = client.get("/static/vendor/htmx.min.js")

    assert '<script src="/static/vendor/htmx.min.js"' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert script.status_code == 200
    assert b"htmx" in b"".join(script.streaming_content)


def test_page__agent_session__no_page_back_to_sign_in(client, agent):
    client.force_login(agent)  # a session made past the sign-in form

    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_page__admin_link__only_for_superusers(client, admin_user, developer):
    client.force_login(developer)
    assert b'href="/admin/"' not in client.get("/").content

    client.force_login(admin_user)
    assert b'href="/admin/"' in client.get("/").content


def test_dashboard__user_without_roles__still_sees_every_environment(db):
    # A fresh user with no role still sees the environments' state (read-only).
    user = UserFactory(username="newcomer")
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))

    assert cards(client.get("/").content) == ["development", "staging", "production"]
