"""Sign-ins in the audit trail: every success, failure and lockout is an event, recorded by
services that Django's auth signals and django-axes call. The password is never recorded;
an attempted username longer than any account's is recorded cut to USERNAME_MAX."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest

from . import actions
from .audit import Target, audit_record
from .auth import USERNAME_MAX
from .models import Outcome, User

WRONG_CREDENTIALS = "wrong username or password"
LOCKED_OUT = "too many failed sign-ins from this address: locked for a while"


def _target(username: str) -> tuple[User | None, Target]:
    user = User.objects.filter(username=username).first()
    if user is None:
        return None, Target("user", "", username)
    return user, Target.of(user, user.username)


def sign_in_succeeded(*, user: User) -> None:
    """A person signed in."""
    audit_record(
        actor=user,
        action=actions.SIGN_IN,
        target=Target.of(user, user.username),
        after={"username": user.username},
    )


def sign_in_failed(
    *, username: str, why: str = WRONG_CREDENTIALS, agent: User | None = None
) -> None:
    """A refused sign-in: recorded as the system's refusal of the named account, or as the
    agent account's own attempt when it gave its right password (agents use tokens)."""
    username = username[:USERNAME_MAX]
    _, target = _target(username)
    audit_record(
        actor=agent or User.system(),
        action=actions.SIGN_IN,
        target=target,
        after={"username": username, "refused": why},
        outcome=Outcome.DENIED,
    )


def sign_in_locked_out(*, username: str) -> None:
    """django-axes locked this username and address (or refused an attempt while locked)."""
    username = username[:USERNAME_MAX]
    _, target = _target(username)
    audit_record(
        actor=User.system(),
        action=actions.SIGN_IN_LOCKOUT,
        target=target,
        after={"username": username, "refused": LOCKED_OUT},
        outcome=Outcome.DENIED,
    )


# --- Signal receivers (connected in ReleaseControlConfig.ready) -----------------------------


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    # Sign-ins whose password was checked here (the sign-in form, admin's); a session made
    # by code (tests' force_login) is not a person signing in.
    if request is not None and getattr(request, "sign_in_checked", False):
        sign_in_succeeded(user=user)


def on_user_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    if request is not None and getattr(request, "axes_locked_out", False):
        return  # the lockout event (below) records this attempt
    username = str(credentials.get("username") or "")
    refused = getattr(request, "sign_in_refused", None)
    if refused:
        sign_in_failed(username=username, why=refused, agent=request.sign_in_refused_user)
    else:
        sign_in_failed(username=username)


def on_user_locked_out(
    sender: Any, request: HttpRequest | None = None, username: str | None = None, **kwargs: Any
) -> None:
    sign_in_locked_out(username=str(username or ""))


def connect() -> None:
    from axes.signals import user_locked_out

    user_logged_in.connect(on_user_logged_in, dispatch_uid="releasecontrol.sign_in")
    user_login_failed.connect(on_user_login_failed, dispatch_uid="releasecontrol.sign_in_failed")
    user_locked_out.connect(on_user_locked_out, dispatch_uid="releasecontrol.sign_in_lockout")
