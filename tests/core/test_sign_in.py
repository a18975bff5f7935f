"""Every page needs a signed-in user, except /healthz and the token-authenticated API; failed
sign-ins are throttled per username and client address, in the database."""

import pytest
from axes.models import AccessAttempt

from tests.factories import PASSWORD

LOGIN = "/accounts/login/"


@pytest.mark.parametrize("path", ["/", "/environments/production/", "/environments/development/"])
def test_page__anonymous__redirected_to_sign_in(client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={path}"


def test_admin__anonymous__redirected_to_its_sign_in(client, db):
    response = client.get("/admin/releasecontrol/auditevent/")

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_healthz__anonymous__answers(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_api__anonymous__json_401_not_a_redirect(client, db):
    response = client.get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_api__signed_in_session_without_token__still_401(client, developer):
    client.force_login(developer)

    assert client.get("/api/v1/me").status_code == 401


def test_sign_in__right_password__lands_on_the_dashboard(client, release_manager):
    response = client.post(LOGIN, {"username": "rita", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_sign_in__wrong_password__stays_on_the_form(client, release_manager):
    response = client.post(LOGIN, {"username": "rita", "password": "wrong"})

    assert response.status_code == 200
    assert b"did not match" in response.content
    assert "_auth_user_id" not in client.session


def sign_in(client, username: str, password: str, ip: str):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_sign_in__five_failures__locked_for_that_username_and_address(
    client, release_manager, oncall
):
    for _ in range(5):
        sign_in(client, "rita", "wrong", "198.51.100.7")

    locked = sign_in(client, "rita", PASSWORD, "198.51.100.7")

    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session
    attempt = AccessAttempt.objects.get(username="rita", ip_address="198.51.100.7")
    assert attempt.failures_since_start >= 5

    other_user = sign_in(client, "omar", PASSWORD, "198.51.100.7")
    assert other_user.status_code == 302
    client.logout()

    other_address = sign_in(client, "rita", PASSWORD, "198.51.100.8")
    assert other_address.status_code == 302


def test_sign_in__four_failures__right_password_still_works(client, release_manager):
    for _ in range(4):
        sign_in(client, "rita", "wrong", "198.51.100.7")

    response = sign_in(client, "rita", PASSWORD, "198.51.100.7")

    assert response.status_code == 302
    # A success resets the count.
    assert not AccessAttempt.objects.filter(username="rita", failures_since_start__gt=0).exists()


def test_sign_out__post__back_to_sign_in(client, release_manager):
    client.force_login(release_manager)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == LOGIN
    assert client.get("/").status_code == 302


def test_client_ip__behind_proxy__last_forwarded_entry_is_used(rf, settings):
    from releasecontrol.middleware import client_ip_of

    settings.USE_X_FORWARDED_FOR = True
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9", REMOTE_ADDR="10.0.0.2")
    assert client_ip_of(request) == "203.0.113.9"
    settings.USE_X_FORWARDED_FOR = False
    assert client_ip_of(request) == "10.0.0.2"


def test_htmx_request__session_expired__full_page_redirect_to_sign_in(client, db):
    response = client.get("/flags/", HTTP_HX_REQUEST="true")

    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/accounts/login/")


# --- Sign-ins in the audit trail; agents never sign in to pages ---------------------------


def sign_in_events():
    from releasecontrol.models import AuditEvent

    return list(
        AuditEvent.objects.filter(action__startswith="user.sign_in")
        .order_by("id")
        .values("action", "outcome", "actor_name", "target_name", "after")
    )


def test_sign_in__success__recorded_without_the_password(client, release_manager):
    sign_in(client, "rita", PASSWORD, "198.51.100.7")

    (event,) = sign_in_events()
    assert (event["action"], event["outcome"], event["actor_name"]) == (
        "user.sign_in",
        "ok",
        "rita",
    )
    assert PASSWORD not in str(event)


def test_sign_in__wrong_password__denied_event_names_the_account_not_the_password(
    client, release_manager
):
    sign_in(client, "rita", "hunter2-wrong", "198.51.100.7")

    (event,) = sign_in_events()
    assert event["outcome"] == "denied" and event["actor_name"] == "system"
    assert event["target_name"] == "rita"
    assert event["after"] == {"username": "rita", "refused": "wrong username or password"}
    assert "hunter2" not in str(event)


def test_sign_in__five_failures__fifth_is_recorded_as_the_lockout(client, release_manager):
    for _ in range(6):
        sign_in(client, "rita", "wrong", "198.51.100.7")

    events = [(e["action"], e["outcome"]) for e in sign_in_events()]
    assert events == [("user.sign_in", "denied")] * 4 + [("user.sign_in_lockout", "denied")] * 2


def test_sign_in__256_character_username__ordinary_failure_recorded_cut(client, db):
    name = "x" * 256

    response = sign_in(client, name, "whatever", "198.51.100.7")

    assert response.status_code == 200
    assert b"did not match" in response.content
    (event,) = sign_in_events()
    assert event["outcome"] == "denied"
    assert event["after"]["username"] == "x" * 150
    assert AccessAttempt.objects.get().username == "x" * 150


def test_sign_in__agent_with_its_right_password__refused_with_a_reason_and_recorded(client, agent):
    response = sign_in(client, "ci-bot", PASSWORD, "198.51.100.7")

    assert response.status_code == 200
    assert b"Agent accounts cannot sign in to pages" in response.content
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302
    (event,) = sign_in_events()
    assert (event["outcome"], event["actor_name"]) == ("denied", "ci-bot")
    assert "API token" in event["after"]["refused"]


def test_sign_in__agent_with_a_wrong_password__the_ordinary_answer(client, agent):
    response = sign_in(client, "ci-bot", "wrong", "198.51.100.7")

    assert b"did not match" in response.content
    assert b"Agent accounts" not in response.content


def test_authenticate__agent_with_its_right_password__no_user(rf, agent):
    from django.contrib.auth import authenticate

    request = rf.post(LOGIN)

    assert authenticate(request, username="ci-bot", password=PASSWORD) is None
