"""Feature flags, their state in each environment, kill switches and SDK keys."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from releasecontrol.credentials import digest_of
from releasecontrol.models import Environment, User

from .rules import canonical_json, values_need_acceptance, values_served

# Starts with a letter or digit, so never "." or "..": keys appear in URLs and file names.
FLAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
FLAG_KEY_HELP = "Start with a letter or digit; then letters, digits, dot, underscore, hyphen."


class FlagType(models.TextChoices):
    BOOLEAN = "boolean", "Boolean"
    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    FLOAT = "float", "Float"
    OBJECT = "object", "Object"


def value_matches_type(value: object, flag_type: str) -> bool:
    if flag_type == FlagType.BOOLEAN:
        return isinstance(value, bool)
    if flag_type == FlagType.STRING:
        return isinstance(value, str)
    if flag_type == FlagType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if flag_type == FlagType.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if flag_type == FlagType.OBJECT:
        return isinstance(value, dict)
    return False


def same_value(a: object, b: object) -> bool:
    """Equal as JSON, exactly (1 and 1.0 differ, as do true and 1)."""
    return canonical_json(a) == canonical_json(b)


def default_on_value() -> bool:
    return True


def default_off_value() -> bool:
    return False


class Tag(models.Model):
    """A label that groups flags, e.g. `calling` or `ocr`: a tag kill switch turns them all off."""

    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Flag(models.Model):
    key = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(FLAG_KEY_PATTERN, FLAG_KEY_HELP)],
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_flags"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="flags")
    type = models.CharField(max_length=10, choices=FlagType.choices, default=FlagType.BOOLEAN)
    on_value = models.JSONField(default=default_on_value, blank=True)
    off_value = models.JSONField(default=default_off_value, blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        """A boolean answers true when on and false when off, always; any other type needs two
        values that differ (the off-value is what every kill switch serves)."""
        errors = {}
        for field in ("on_value", "off_value"):
            if not value_matches_type(getattr(self, field), self.type):
                errors[field] = f"must be a {self.type} value for a {self.type} flag"
        if errors:
            raise ValidationError(errors)
        if self.type == FlagType.BOOLEAN:
            if self.on_value is not True:
                errors["on_value"] = "a boolean flag's on_value is always true"
            if self.off_value is not False:
                errors["off_value"] = "a boolean flag's off_value is always false"
        elif self._values_equal():
            errors["off_value"] = "must differ from on_value: it is what a kill switch serves"
        if errors:
            raise ValidationError(errors)

    def _values_equal(self) -> bool:
        if self.type == FlagType.FLOAT:  # served as floats: 1 and 1.0 are one answer
            return float(self.on_value) == float(self.off_value)
        return same_value(self.on_value, self.off_value)

    def needs_acceptance_in(self, environment: Environment) -> bool:
        return values_need_acceptance(self.type, production=environment.is_production)


class Mode(models.TextChoices):
    OFF = "off", "Off"
    SHADOW = "shadow", "Shadow"
    ALLOWLIST = "allowlist", "Allowlist"
    PERCENTAGE = "percentage", "Percentage"
    FULL = "full", "Full"


class FlagState(models.Model):
    """A flag's state in one environment. A missing row means off."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="flag_states"
    )
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.OFF)
    percentage = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    allowlist = models.JSONField(default=list, blank=True)
    # Every change adds one; an edit made against an older version is stale (409).
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Where a non-boolean flag's values need acceptance (production), who accepted which
    # values: evaluation serves the flag only while these equal the flag's values.
    values_accepted_at = models.DateTimeField(null=True, blank=True)
    values_accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    accepted_on_value = models.JSONField(null=True, blank=True)
    accepted_off_value = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["flag__key", "environment__position"]
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="flagstate_unique"),
            models.CheckConstraint(
                condition=Q(percentage__gte=0) & Q(percentage__lte=100),
                name="flagstate_percentage_0_100",
            ),
            models.CheckConstraint(
                condition=Q(mode__in=[m.value for m in Mode]), name="flagstate_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id}@{self.environment_id}: {self.mode}"

    @property
    def accepted_values(self) -> tuple[object, object] | None:
        if self.values_accepted_at is None:
            return None
        return (self.accepted_on_value, self.accepted_off_value)

    def serves_values_of(self, flag: Flag) -> bool:
        """Whether evaluation here answers with the flag's values (else FLAG_NOT_FOUND)."""
        return values_served(
            flag_type=flag.type,
            production=self.environment.is_production,
            accepted=self.accepted_values,
            on_value=flag.on_value,
            off_value=flag.off_value,
        )


class KillSwitchScope(models.TextChoices):
    FLAG = "flag", "One flag"
    TAG = "tag", "Every flag with a tag"
    ENVIRONMENT = "environment", "Every flag in the environment"


class KillSwitchQuerySet(models.QuerySet):
    def engaged(self) -> KillSwitchQuerySet:
        return self.filter(released_at__isnull=True)


class KillSwitch(models.Model):
    """An engaged kill switch turned its flags off and refuses increases until released."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="kill_switches"
    )
    scope = models.CharField(max_length=12, choices=KillSwitchScope.choices)
    flag = models.ForeignKey(
        Flag, null=True, blank=True, on_delete=models.CASCADE, related_name="kill_switches"
    )
    tag = models.ForeignKey(
        Tag, null=True, blank=True, on_delete=models.CASCADE, related_name="kill_switches"
    )
    engaged_at = models.DateTimeField(default=timezone.now)
    engaged_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    release_reason = models.TextField(blank=True)
    # The flags a flag or tag switch covered when engaged: it keeps covering them until it is
    # released, whatever happens to their tags afterwards. (An environment switch covers all.)
    covered_flags = models.ManyToManyField(Flag, blank=True, related_name="covering_kill_switches")

    objects = KillSwitchQuerySet.as_manager()

    class Meta:
        ordering = ["-engaged_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="flag", flag__isnull=False, tag__isnull=True)
                    | Q(scope="tag", flag__isnull=True, tag__isnull=False)
                    | Q(scope="environment", flag__isnull=True, tag__isnull=True)
                ),
                name="killswitch_scope_matches_target",
            ),
            # One engaged switch per thing: engaging again is a no-op, not a second row.
            models.UniqueConstraint(
                F("environment"),
                F("scope"),
                Coalesce("flag", Value(0)),
                Coalesce("tag", Value(0)),
                condition=Q(released_at__isnull=True),
                name="killswitch_one_engaged",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} kill switch in {self.environment}: {self.subject}"

    @property
    def subject(self) -> str:
        if self.scope == KillSwitchScope.FLAG:
            return self.flag.key
        if self.scope == KillSwitchScope.TAG:
            return f"the {self.tag.name} tag"
        return "every flag"


class SdkKey(models.Model):
    """A per-environment key services use to evaluate flags over OFREP. Stored as a digest."""

    PREFIX = "rcs_"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="sdk_keys")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["environment__position", "-created_at"]

    def __str__(self) -> str:
        return f"{self.environment.slug}: {self.name} ({self.hint}…)"

    digest_of = staticmethod(digest_of)
