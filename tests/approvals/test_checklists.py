"""Checklist templates: the seeded deployment checklist, each environment's default, and
the administrators' audited services."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from approvals.checklists import DEPLOYMENT_ITEMS, checklist_default_set, checklist_template_save
from approvals.models import ChecklistItem, ChecklistTemplate, EnvironmentApprovalSettings

from .helpers import last_event, request_change


def test_deployment_checklist__seeded__production_default_and_optional_elsewhere(environments):
    template = ChecklistTemplate.objects.get(slug="deployment")

    assert [(i.section, i.text) for i in template.items.all()] == [
        (section, text) for section, text, _, _ in DEPLOYMENT_ITEMS
    ]
    defaults = {
        s.environment.slug: (s.default_checklist_id, s.checklist_optional)
        for s in EnvironmentApprovalSettings.objects.select_related("environment")
    }
    assert defaults == {
        "development": (None, True),
        "staging": (None, True),
        "production": (template.pk, False),
    }


@pytest.mark.django_db(transaction=True)
def test_deployment_checklist__after_flush__restored(environments):
    # A transactional test starts from a flushed database: the seed is back all the same.
    assert ChecklistTemplate.objects.get(slug="deployment").items.count() == len(DEPLOYMENT_ITEMS)
    assert EnvironmentApprovalSettings.objects.count() == 3


def test_checklist_template_save__admin_replaces_items__requests_keep_their_copies(world):
    request = request_change(world["dev"])  # made from "short", two items

    checklist_template_save(
        actor=world["root"],
        slug="short",
        name="Short checklist",
        items=[{"section": "Monitoring", "text": "On-call notified"}],
        reason="one item is enough",
    )

    assert [i.text for i in ChecklistTemplate.objects.get(slug="short").items.all()] == [
        "On-call notified"
    ]
    assert request.checklist.count() == 2
    event = last_event("checklist.template.save")
    assert (event.actor_name, len(event.before["items"]), event.after["items"]) == (
        "root",
        2,
        [
            {
                "section": "Monitoring",
                "text": "On-call notified",
                "required": True,
                "evidence_required": False,
            }
        ],
    )


@pytest.mark.parametrize("who", ["rita", "ci-bot", "dev"])
def test_checklist_template_save__not_an_administrator__refused(world, who):
    with pytest.raises(PermissionDenied):
        checklist_template_save(
            actor=world[who], slug="mine", name="Mine", items=[{"section": "a", "text": "b"}]
        )
    assert not ChecklistTemplate.objects.filter(slug="mine").exists()


def test_checklist_template_save__no_items_or_blank_text__names_the_field(world):
    with pytest.raises(ValidationError) as error:
        checklist_template_save(actor=world["root"], slug="empty", name="Empty", items=[])
    assert "items" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        checklist_template_save(
            actor=world["root"], slug="blank", name="Blank", items=[{"section": "a", "text": ""}]
        )
    assert "items.1" in error.value.message_dict


def test_checklist_default_set__staging_gets_short__requests_there_get_it(world, staging):
    checklist_default_set(
        actor=world["root"],
        environment=staging,
        template=ChecklistTemplate.objects.get(slug="short"),
        optional=False,
        reason="staging asks too",
    )

    request = request_change(world["dev"], "staging", checklist=None)
    assert request.checklist.count() == 2
    with pytest.raises(ValidationError):
        request_change(world["dev"], "staging", checklist="none")
    event = last_event("checklist.default.set")
    assert (event.environment_id, event.before, event.after) == (
        "staging",
        {"default_checklist": None, "checklist_optional": True},
        {"default_checklist": "short", "checklist_optional": False},
    )


def test_checklist_item__checked_without_required_evidence__refused_by_the_database(world):
    item = request_change(world["dev"]).checklist.get(evidence_required=True)

    with transaction.atomic(), pytest.raises(IntegrityError):
        ChecklistItem.objects.filter(pk=item.pk).update(
            checked=True, checked_by=world["dev"], checked_at=item.request.created_at
        )
