"""Checklist templates (the seeds' deployment checklist first), and their audited services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from releasecontrol.audit import Target, audit_record
from releasecontrol.models import Environment, Tier, User
from releasecontrol.policy import authorize

from . import actions
from .models import ChecklistTemplate, ChecklistTemplateItem, EnvironmentApprovalSettings

DEPLOYMENT = "deployment"

# The deployment checklist teams prepare before asking for production (section, text,
# required, evidence required). Items that may not apply are checked with "n/a" as evidence.
DEPLOYMENT_ITEMS: tuple[tuple[str, str, bool, bool], ...] = (
    ("Changes included", "Every change included is listed with a description", True, True),
    ("Tests passed", "Unit tests passed (X/Y)", True, True),
    ("Tests passed", "Integration tests passed (X/Y)", True, True),
    ("Tests passed", "End-to-end tests passed (X/Y)", True, True),
    ("Database changes", "No migrations, or each migration is named", True, True),
    ("Database changes", "Rollback of each migration tested", True, False),
    ("Database changes", "Backup verified", True, False),
    ("Dependencies", "No new dependencies, or each new one is named", True, True),
    ("Dependencies", "New dependencies security-scanned", True, False),
    ("Dependencies", "Licences of new dependencies verified", True, False),
    ("Breaking changes", "None, or each breaking change is described", True, True),
    ("Breaking changes", "Migration guide prepared for breaking changes", True, False),
    ("Breaking changes", "Clients notified of breaking changes", False, False),
    ("Rollback plan", "Rollback command written down", True, True),
    ("Rollback plan", "Database rollback named (migration), or none needed", True, False),
    ("Rollback plan", "Estimated rollback time (minutes)", True, True),
    ("Monitoring", "Alerts configured", True, False),
    ("Monitoring", "Dashboards updated", True, True),
    ("Monitoring", "On-call notified", True, False),
)


def checklist_defaults_create(apps: Any = None) -> None:
    """The deployment template and each environment's default (idempotent).

    Called by the data migration and again after `flush`, like the core's own rows.
    """
    from django.apps import apps as global_apps

    apps = apps or global_apps
    Template = apps.get_model("approvals", "ChecklistTemplate")
    Item = apps.get_model("approvals", "ChecklistTemplateItem")
    Settings = apps.get_model("approvals", "EnvironmentApprovalSettings")
    Env = apps.get_model("releasecontrol", "Environment")
    template, created = Template.objects.get_or_create(
        slug=DEPLOYMENT,
        defaults={
            "name": "Deployment checklist",
            "description": "Prepared before a production change: tests, database, "
            "dependencies, breaking changes, rollback plan and monitoring.",
        },
    )
    if created:
        Item.objects.bulk_create(
            Item(
                template=template,
                position=position,
                section=section,
                text=text,
                required=required,
                evidence_required=evidence,
            )
            for position, (section, text, required, evidence) in enumerate(DEPLOYMENT_ITEMS, 1)
        )
    for environment in Env.objects.all():
        production = environment.tier == Tier.PRODUCTION
        Settings.objects.get_or_create(
            environment=environment,
            defaults={
                "default_checklist": template if production else None,
                "checklist_optional": not production,
            },
        )


def approval_settings_for(environment: Environment) -> EnvironmentApprovalSettings:
    """This environment's settings; one made after the migration gets the unsaved defaults."""
    settings = EnvironmentApprovalSettings.objects.filter(environment=environment).first()
    return settings or EnvironmentApprovalSettings(
        environment=environment,
        checklist_optional=not environment.is_production,
    )


def template_view(template: ChecklistTemplate) -> dict[str, Any]:
    return {
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "items": [
            {
                "section": i.section,
                "text": i.text,
                "required": i.required,
                "evidence_required": i.evidence_required,
            }
            for i in template.items.all()
        ],
    }


def _clean_items(items: Iterable[Mapping[str, Any]]) -> list[ChecklistTemplateItem]:
    cleaned = []
    for position, raw in enumerate(items, 1):
        item = ChecklistTemplateItem(
            position=position,
            section=str(raw.get("section", "")).strip(),
            text=str(raw.get("text", "")).strip(),
            required=bool(raw.get("required", True)),
            evidence_required=bool(raw.get("evidence_required", False)),
        )
        try:
            item.full_clean(exclude=["template"])
        except ValidationError as error:
            raise ValidationError({f"items.{position}": error.messages}) from None
        cleaned.append(item)
    if not cleaned:
        raise ValidationError({"items": "A checklist has at least one item."})
    return cleaned


@transaction.atomic
def checklist_template_save(
    *,
    actor: User,
    slug: str,
    name: str,
    items: Iterable[Mapping[str, Any]],
    description: str = "",
    reason: str = "",
) -> ChecklistTemplate:
    """Create a template or replace one's items. Requests made from it keep their copies."""
    new_items = _clean_items(items)
    authorize(
        actor,
        actions.CHECKLIST_TEMPLATE_SAVE,
        target=Target("checklisttemplate", "", slug),
        reason=reason,
    )
    template = ChecklistTemplate.objects.select_for_update().filter(slug=slug).first()
    before = template_view(template) if template else None
    template = template or ChecklistTemplate(slug=slug)
    template.name, template.description, template.updated_at = name, description, timezone.now()
    template.full_clean()
    template.save()
    template.items.all().delete()
    for item in new_items:
        item.template = template
    ChecklistTemplateItem.objects.bulk_create(new_items)
    after = template_view(template)
    audit_record(
        actor=actor,
        action=actions.CHECKLIST_TEMPLATE_SAVE.name,
        target=Target.of(template, slug),
        before=before,
        after=after,
        reason=reason,
    )
    return template


@transaction.atomic
def checklist_default_set(
    *,
    actor: User,
    environment: Environment,
    template: ChecklistTemplate | None,
    optional: bool | None = None,
    reason: str = "",
) -> EnvironmentApprovalSettings:
    """Which checklist a request in this environment gets by default, and whether it may
    go without one."""
    authorize(
        actor,
        actions.CHECKLIST_DEFAULT_SET,
        environment,
        target=Target.of(environment, environment.slug),
        reason=reason,
    )
    settings, _ = EnvironmentApprovalSettings.objects.select_for_update().get_or_create(
        environment=environment,
        defaults={"checklist_optional": not environment.is_production},
    )
    before = {
        "default_checklist": settings.default_checklist.slug
        if settings.default_checklist
        else None,
        "checklist_optional": settings.checklist_optional,
    }
    settings.default_checklist = template
    if optional is not None:
        settings.checklist_optional = optional
    settings.save()
    audit_record(
        actor=actor,
        action=actions.CHECKLIST_DEFAULT_SET.name,
        environment=environment,
        target=Target.of(environment, environment.slug),
        before=before,
        after={
            "default_checklist": template.slug if template else None,
            "checklist_optional": settings.checklist_optional,
        },
        reason=reason,
    )
    return settings
