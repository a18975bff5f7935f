"""SDK keys: what services present to evaluate flags over OFREP, stored as digests."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.credentials import credential_new
from releasecontrol.models import Environment, User
from releasecontrol.policy import authorize

from . import actions
from .models import SdkKey
from .writes import bump_flags_version


@dataclass(frozen=True)
class IssuedSdkKey:
    key: SdkKey
    raw: str  # shown once, never stored


@transaction.atomic
def sdk_key_issue(
    *, actor: User, environment: Environment, name: str = "default", reason: str = ""
) -> IssuedSdkKey:
    target = Target("sdkkey", "", f"{environment.slug}: {name}")
    authorize(actor, actions.SDK_KEY_ISSUE, environment, target=target, reason=reason)
    credential = credential_new(SdkKey.PREFIX)
    key = SdkKey.objects.create(
        environment=environment,
        name=name,
        digest=credential.digest,
        hint=credential.hint,
        created_by=actor,
    )
    bump_flags_version(environment)  # evaluating processes learn the new key
    audit_record(
        actor=actor,
        action=actions.SDK_KEY_ISSUE.name,
        environment=environment,
        target=Target("sdkkey", str(key.pk), f"{environment.slug}: {name}"),
        after={"name": name, "hint": key.hint},
        reason=reason,
    )
    return IssuedSdkKey(key, credential.raw)


@transaction.atomic
def sdk_key_revoke(*, actor: User, key: SdkKey, reason: str = "") -> SdkKey:
    target = Target("sdkkey", str(key.pk), f"{key.environment.slug}: {key.name}")
    authorize(actor, actions.SDK_KEY_REVOKE, key.environment, target=target, reason=reason)
    key = SdkKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        bump_flags_version(key.environment)  # evaluating processes drop the key
        audit_record(
            actor=actor,
            action=actions.SDK_KEY_REVOKE.name,
            environment=key.environment,
            target=target,
            after={"revoked_at": key.revoked_at},
            reason=reason,
        )
    return key
