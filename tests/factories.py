"""factory-boy factories for every model."""

import factory
from django.utils import timezone

from releasecontrol.models import (
    ApiToken,
    AuditEvent,
    DeliveryAttempt,
    Environment,
    MonitorHeartbeat,
    Notification,
    Role,
    RoleGrant,
    User,
    UserKind,
)

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    kind = UserKind.HUMAN
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class AgentFactory(UserFactory):
    username = factory.Sequence(lambda n: f"agent{n}")
    kind = UserKind.AGENT


class EnvironmentFactory(factory.django.DjangoModelFactory):
    """Extra environments beyond the three the migration makes."""

    class Meta:
        model = Environment
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"env-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    tier = "staging"
    position = factory.Sequence(lambda n: 100 + n)


class RoleGrantFactory(factory.django.DjangoModelFactory):
    """A bare row; use releasecontrol.services.role_grant to get its permissions too."""

    class Meta:
        model = RoleGrant

    user = factory.SubFactory(UserFactory)
    role = Role.DEVELOPER
    environment = factory.LazyFunction(lambda: Environment.objects.get(slug="development"))


class ApiTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiToken

    class Params:
        raw = factory.Sequence(lambda n: f"{ApiToken.PREFIX}factory-token-{n:08d}")

    user = factory.SubFactory(UserFactory)
    name = "factory"
    digest = factory.LazyAttribute(lambda o: ApiToken.digest_of(o.raw))
    hint = factory.LazyAttribute(lambda o: o.raw[:8])


class MonitorHeartbeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MonitorHeartbeat
        django_get_or_create = ("name",)

    name = "gate-monitor"
    beat_at = factory.LazyFunction(timezone.now)


def audit_event(**kwargs) -> AuditEvent:
    """Audit events are only ever appended through the chain: this calls audit_record."""
    from releasecontrol.audit import audit_record

    kwargs.setdefault("actor", User.system())
    kwargs.setdefault("action", "test.event")
    return audit_record(**kwargs)


# --- flags ------------------------------------------------------------------------------
# Flags and their states are normally made through flags.services (audited); these build
# rows directly for read-side tests (board pages, evaluation snapshots, query counts).


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.Tag"
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")


class FlagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.Flag"
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"flag-{n:05d}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())


class FlagStateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.FlagState"
        django_get_or_create = ("flag", "environment")

    flag = factory.SubFactory(FlagFactory)
    environment = factory.LazyFunction(lambda: Environment.objects.get(slug="development"))
    mode = "off"


class KillSwitchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.KillSwitch"

    environment = factory.LazyFunction(lambda: Environment.objects.get(slug="production"))
    scope = "environment"
    engaged_by = factory.LazyFunction(User.system)
    reason = "factory"


class SdkKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "flags.SdkKey"

    class Params:
        raw = factory.Sequence(lambda n: f"rcs_factory-key-{n:08d}")

    environment = factory.LazyFunction(lambda: Environment.objects.get(slug="development"))
    name = "factory"
    digest = factory.LazyAttribute(lambda o: ApiToken.digest_of(o.raw))
    hint = factory.LazyAttribute(lambda o: o.raw[:8])
    created_by = factory.LazyFunction(User.system)


def notification_rows(environment: Environment) -> Notification:
    """A webhook notification with one failed delivery attempt, for read-side tests (admin
    pages, URL walks); delivery itself is tested through the real servers."""
    notification = Notification.objects.create(
        environment=environment,
        event="approval.requested",
        channel="webhook",
        webhook_url="https://hooks.example.com/rc",
        subject="Request #1 was requested",
        text="Someone asks.",
        payload={"request": {"id": 1}},
        attempts=1,
    )
    DeliveryAttempt.objects.create(
        notification=notification,
        number=1,
        attempted_at=timezone.now(),
        outcome="failed",
        status_code=500,
        error="HTTP 500 Internal Server Error",
        duration_ms=12,
    )
    return notification
