"""Sign-in rules: only people sign in to pages. Agent accounts use API tokens, whatever
password they have; the system actor never signs in. The sign-in form answers any username
(even one longer than any account's) with the same "did not match" page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .models import UserKind

AGENT_REFUSED = (
    "Agent accounts cannot sign in to pages: they use the JSON API with a personal API token."
)
INVALID_LOGIN = "Your username and password did not match. Try again."
# Usernames are at most this long (the User model's field); longer attempts are recorded cut.
USERNAME_MAX = 150


class HumanBackend(ModelBackend):
    """Username and password, for people only. An agent account that gives its right password
    is refused with a reason (request.sign_in_refused) that the form and the audit show."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ):
        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            user_model().set_password(password)  # as long as a real check: no timing hint
            return None
        if not user.check_password(password):
            return None
        if user.kind == UserKind.AGENT:
            if request is not None:
                request.sign_in_refused = AGENT_REFUSED
                request.sign_in_refused_user = user
            return None
        if not self.user_can_authenticate(user):
            return None
        if request is not None:
            request.sign_in_checked = True  # a sign-in by password: the trail records it
        return user

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and user.kind == UserKind.HUMAN


class SignInForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": INVALID_LOGIN,
        "agent_account": AGENT_REFUSED,
    }

    def __init__(self, request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        # Longer than any account's name, so that clean() answers it (not a field error);
        # UsernameField skips normalising anything longer than max_length.
        self.fields["username"].max_length = USERNAME_MAX

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if len(username) > USERNAME_MAX:
            # No account has such a name: a failed sign-in like any other, recorded (cut) and
            # counted by the throttle under the cut name.
            user_login_failed.send(
                sender=__name__,
                credentials={"username": username[:USERNAME_MAX]},
                request=self.request,
            )
            raise self.get_invalid_login_error()
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "sign_in_refused", None):
                raise ValidationError(
                    self.error_messages["agent_account"], code="agent_account"
                ) from None
            raise
