"""People, agent accounts and the one system actor; `add_user`."""

import io

import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import RequestFactory
from guardian.shortcuts import get_perms

from releasecontrol.models import AuditEvent, RoleGrant, User, UserKind
from releasecontrol.services import user_create


def sign_in_request():
    return RequestFactory().post("/accounts/login/", REMOTE_ADDR="192.0.2.10")


def can_sign_in(client, username: str, password: str) -> bool:
    # django-axes needs the request to count failures by username and address.
    return client.login(request=sign_in_request(), username=username, password=password)


def test_system_user__made_by_migration__is_the_system_kind(db):
    system = User.system()

    assert system.username == "system"
    assert system.kind == UserKind.SYSTEM
    assert not system.has_usable_password()
    assert not system.is_active


def test_system_user__even_with_a_password_and_active__cannot_sign_in(client, system_user):
    system_user.set_password("guessable-password-1")
    system_user.is_active = True
    system_user.save()

    assert not can_sign_in(client, "system", "guessable-password-1")
    assert (
        authenticate(sign_in_request(), username="system", password="guessable-password-1") is None
    )


def test_system_user__login_form__is_refused(client, system_user):
    system_user.set_password("guessable-password-1")
    system_user.is_active = True
    system_user.save()

    response = client.post(
        "/accounts/login/", {"username": "system", "password": "guessable-password-1"}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_user__agent_superuser__refused_by_the_database(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="sneaky-bot", kind=UserKind.AGENT, is_superuser=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="staff-bot", kind=UserKind.AGENT, is_staff=True)


def test_user_create__agent_superuser__refused_by_validation(system_user):
    with pytest.raises(ValidationError):
        user_create(
            actor=system_user, username="sneaky-bot", kind=UserKind.AGENT, is_superuser=True
        )

    assert not User.objects.filter(username="sneaky-bot").exists()


def test_user_create__system_kind__refused(system_user):
    with pytest.raises(ValidationError, match="one system actor"):
        user_create(actor=system_user, username="system-2", kind=UserKind.SYSTEM)


def test_user_create__by_the_system__audited_with_its_actor(system_user):
    user = user_create(actor=system_user, username="newbie", reason="onboarding")

    event = AuditEvent.objects.get(action="user.create", target_id=str(user.pk))
    assert event.actor == system_user and event.actor_kind == "system"
    assert event.after == {"username": "newbie", "kind": "human", "is_superuser": False}
    assert event.reason == "onboarding"


def add_user(*args: str) -> str:
    out = io.StringIO()
    call_command("add_user", *args, stdout=out)
    return out.getvalue()


def grants_of(username: str) -> set[tuple[str, str]]:
    return set(
        RoleGrant.objects.filter(user__username=username).values_list("role", "environment__slug")
    )


def test_add_user__developer_without_environments__holds_everywhere(client, db):
    output = add_user("alice", "--role", "developer")

    alice = User.objects.get(username="alice")
    assert alice.kind == UserKind.HUMAN
    assert grants_of("alice") == {
        ("developer", "development"),
        ("developer", "staging"),
        ("developer", "production"),
    }
    password = output.splitlines()[-1].removeprefix("password: ")
    assert can_sign_in(client, "alice", password)


def test_add_user__auditor_without_environments__holds_everywhere(db):
    add_user("aud", "--role", "auditor", "--password", "long-enough-pass-1")

    assert grants_of("aud") == {
        ("auditor", "development"),
        ("auditor", "staging"),
        ("auditor", "production"),
    }


def test_add_user__with_environments_and_password__holds_only_there(client, production):
    output = add_user(
        "bob", "--role", "oncall", "--environments", "production", "--password", "s3cret-pass-1"
    )

    assert grants_of("bob") == {("oncall", "production")}
    assert "password:" not in output
    assert can_sign_in(client, "bob", "s3cret-pass-1")
    assert "operate_kill_switch" in get_perms(User.objects.get(username="bob"), production)


def test_add_user__agent__is_an_agent_without_a_password(client, db):
    output = add_user("deploy-bot", "--role", "agent", "--agent")

    bot = User.objects.get(username="deploy-bot")
    assert bot.kind == UserKind.AGENT
    assert not bot.has_usable_password()
    assert "password:" not in output
    assert grants_of("deploy-bot") == {
        ("agent", "development"),
        ("agent", "staging"),
        ("agent", "production"),
    }


def test_add_user__agent_with_a_human_role__is_capped_to_the_agent_role(production):
    add_user("rm-bot", "--role", "release_manager", "--agent")

    bot = User.objects.get(username="rm-bot")
    assert set(get_perms(bot, production)) == {
        "view_environment",
        "request_changes",
        "submit_metrics",
    }


def test_add_user__unknown_environment__names_the_known_ones(db):
    with pytest.raises(CommandError) as error:
        add_user("carol", "--role", "developer", "--environments", "staging,prod")

    assert "prod" in str(error.value)
    assert "Known: development, staging, production" in str(error.value)
    assert not User.objects.filter(username="carol").exists()


def test_add_user__existing_account__adds_the_role(db):
    add_user("dave", "--role", "developer", "--password", "s3cret-pass-1")
    add_user("dave", "--role", "auditor", "--environments", "production")

    assert User.objects.filter(username="dave").count() == 1
    assert ("auditor", "production") in grants_of("dave")


def test_add_user__existing_human_as_agent__refused(db):
    add_user("erin", "--role", "developer", "--password", "s3cret-pass-1")

    with pytest.raises(CommandError, match="human"):
        add_user("erin", "--role", "agent", "--agent")


def test_add_user__agent_superuser__refused(db):
    with pytest.raises(CommandError, match="cannot be a superuser"):
        add_user("root-bot", "--role", "agent", "--agent", "--superuser")
