"""Personal API tokens: random, stored only as SHA-256 digests, shown once; bearer auth on the
API with expiry, last-used time and revocation."""

import datetime as dt
import hashlib
import io
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from releasecontrol.models import ApiToken, AuditEvent
from releasecontrol.services import api_token_revoke


def issue_token(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", *args, stdout=out, stderr=err)
    return out.getvalue()


def every_stored_value() -> str:
    """Every column of every token and audit row, as text."""
    values = [str(v) for row in ApiToken.objects.values() for v in row.values()]
    values += [str(v) for row in AuditEvent.objects.values() for v in row.values()]
    return "\n".join(values)


def test_issue_token__prints_the_token_alone_on_its_last_line(developer):
    output = issue_token("dev")

    last = output.splitlines()[-1]
    assert re.fullmatch(r"rcp_[A-Za-z0-9_-]{43,}", last)
    token = ApiToken.objects.get(user=developer)
    assert token.digest == hashlib.sha256(last.encode()).hexdigest()


def test_issue_token__stores_only_the_digest(developer):
    raw = issue_token("dev").splitlines()[-1]

    stored = every_stored_value()
    assert raw not in stored
    assert raw[len("rcp_") :] not in stored


def test_issue_token__twice__gives_different_tokens(developer):
    assert issue_token("dev").splitlines()[-1] != issue_token("dev").splitlines()[-1]


def test_issue_token__expiry_in_days__is_stored(developer):
    issue_token("dev", "--days", "7")

    token = ApiToken.objects.get(user=developer)
    assert dt.timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= dt.timedelta(7)


def test_issue_token__audited_without_the_secret(developer):
    raw = issue_token("dev", "--label", "laptop").splitlines()[-1]

    event = AuditEvent.objects.get(action="token.issue")
    assert event.actor_kind == "system"
    assert event.after["user"] == "dev" and event.after["name"] == "laptop"
    assert raw not in str(event.after)


def test_issue_token__unknown_account__clear_error(db):
    with pytest.raises(CommandError, match="add_user"):
        issue_token("nobody")


def test_issue_token__system_actor__refused(db):
    with pytest.raises(CommandError, match="Tokens are for"):
        issue_token("system")


def me(client, credential: str):
    return client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {credential}")


def test_api_me__valid_token__answers_as_its_user_and_notes_last_use(
    client, developer, api_token_for
):
    raw = api_token_for(developer)

    response = me(client, raw)

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "dev" and body["kind"] == "human"
    assert {(r["role"], r["environment"]) for r in body["roles"]} == {
        ("developer", "development"),
        ("developer", "staging"),
        ("developer", "production"),
    }
    assert ApiToken.objects.get(user=developer).last_used_at is not None


def assert_unauthenticated(response):
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_api_me__wrong_token__401(client, developer, api_token_for):
    raw = api_token_for(developer)

    assert_unauthenticated(me(client, raw[:-1] + ("A" if raw[-1] != "A" else "B")))
    assert_unauthenticated(me(client, "not-a-token"))
    assert_unauthenticated(client.get("/api/v1/me"))
    assert ApiToken.objects.get(user=developer).last_used_at is None


def test_api_me__expired_token__401(client, developer, api_token_for):
    raw = api_token_for(developer)
    ApiToken.objects.filter(user=developer).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    assert_unauthenticated(me(client, raw))


def test_api_me__deactivated_user__401(client, developer, api_token_for):
    raw = api_token_for(developer)
    developer.is_active = False
    developer.save()

    assert_unauthenticated(me(client, raw))


def test_api_token_revoke__token_refused_afterwards_and_audited(
    client, developer, admin_user, api_token_for
):
    raw = api_token_for(developer)
    assert me(client, raw).status_code == 200
    token = ApiToken.objects.get(user=developer)

    api_token_revoke(actor=admin_user, token=token, reason="laptop lost")

    assert_unauthenticated(me(client, raw))
    event = AuditEvent.objects.get(action="token.revoke")
    assert event.actor == admin_user
    assert event.target_id == str(token.pk)
    assert event.before == {"revoked_at": None} and event.after["revoked_at"]
    assert event.reason == "laptop lost"


def test_api_token_revoke__twice__audited_once(developer, admin_user, api_token_for):
    api_token_for(developer)
    token = ApiToken.objects.get(user=developer)

    api_token_revoke(actor=admin_user, token=token)
    api_token_revoke(actor=admin_user, token=token)

    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


@pytest.mark.django_db(transaction=True)
def test_api_token_revoke__by_an_agent__refused_and_the_denial_recorded(
    agent, developer, api_token_for
):
    raw = api_token_for(developer)
    token = ApiToken.objects.get(user=developer)

    with pytest.raises(PermissionDenied):
        api_token_revoke(actor=agent, token=token)

    assert AuditEvent.objects.filter(action="token.revoke", outcome="denied", actor=agent).exists()
    assert me(Client(), raw).status_code == 200
