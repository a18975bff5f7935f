"""Sign-in rules: people and agent accounts may sign in; the system actor never can."""

from django.contrib.auth.backends import ModelBackend

from .models import UserKind


class HumanAndAgentBackend(ModelBackend):
    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and user.kind != UserKind.SYSTEM
