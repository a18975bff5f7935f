"""Shared fixtures: one account per role (granted through the real service), an agent,
an outsider. And the flush between transactional tests, the only place where the audit
trigger's bypass is on."""

import contextlib
import os

import pytest
from django.db import connections
from django.test import TransactionTestCase

from tests.audit_bypass import audit_maintenance

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + ORM in browser tests

_flush_after_test = TransactionTestCase._fixture_teardown


def _flush_past_the_audit_trigger(self) -> None:
    """pytest-django's transactional teardown (and Django's) flushes every table with
    TRUNCATE, which the audit trigger refuses: switch the bypass on for that flush alone."""
    with contextlib.ExitStack() as stack:
        for alias in self._databases_names(include_mirrors=False):
            stack.enter_context(audit_maintenance(connections[alias]))
        _flush_after_test(self)


TransactionTestCase._fixture_teardown = _flush_past_the_audit_trigger


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def system_user(db):
    from releasecontrol.models import User

    return User.system()


@pytest.fixture
def environments(db):
    from releasecontrol.models import Environment

    return {env.slug: env for env in Environment.objects.all()}


@pytest.fixture
def development(environments):
    return environments["development"]


@pytest.fixture
def staging(environments):
    return environments["staging"]


@pytest.fixture
def production(environments):
    return environments["production"]


def _account(username: str, role: str | None, *, agent: bool = False, superuser: bool = False):
    from releasecontrol.models import User, UserKind
    from releasecontrol.services import role_grant, user_create
    from tests.factories import PASSWORD

    user = user_create(
        actor=User.system(),
        username=username,
        kind=UserKind.AGENT if agent else UserKind.HUMAN,
        password=PASSWORD,
        is_superuser=superuser,
    )
    if role:
        role_grant(actor=User.system(), user=user, role=role)
    return user


@pytest.fixture
def release_manager(db):
    return _account("rita", "release_manager")


@pytest.fixture
def oncall(db):
    return _account("omar", "oncall")


@pytest.fixture
def developer(db):
    return _account("dev", "developer")


@pytest.fixture
def auditor(db):
    return _account("audrey", "auditor")


@pytest.fixture
def agent(db):
    return _account("ci-bot", "agent", agent=True)


@pytest.fixture
def outsider(db):
    """Signed in, holds no role anywhere."""
    return _account("otto", None)


@pytest.fixture
def admin_user(db):
    return _account("root", None, superuser=True)


@pytest.fixture
def api_token_for(db):
    """Issue a real personal API token for a user; returns the raw token."""
    from releasecontrol.models import User
    from releasecontrol.services import api_token_issue

    def issue(user) -> str:
        return api_token_issue(actor=User.system(), user=user, name="test").raw

    return issue


NO_BODY = object()


@pytest.fixture
def api_call(client, api_token_for):
    """api_call(user, "PATCH", "/api/v1/...", body, headers={...}) -> response, with a real
    personal token for `user` (None sends none); `raw=` sends bytes as the body."""
    import json

    tokens: dict[int, str] = {}

    def send(user, method: str, path: str, body=NO_BODY, *, raw: bytes | None = None, headers=None):
        sent = dict(headers or {})
        if user is not None:
            if user.pk not in tokens:
                tokens[user.pk] = api_token_for(user)
            sent["Authorization"] = f"Bearer {tokens[user.pk]}"
        data = raw if raw is not None else (b"" if body is NO_BODY else json.dumps(body))
        return client.generic(
            method, path, data=data, content_type="application/json", headers=sent
        )

    return send
