"""The three environments the migration makes, and the database rule that production needs an
approval besides the requester."""

import pytest
from django.db import IntegrityError, transaction

from releasecontrol.models import Environment
from tests.factories import EnvironmentFactory


def test_environments__made_by_migration__in_promotion_order(db):
    rows = list(Environment.objects.values_list("slug", "tier", "position", "approvals_required"))

    assert [row[:2] for row in rows] == [
        ("development", "development"),
        ("staging", "staging"),
        ("production", "production"),
    ]
    positions = [row[2] for row in rows]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert rows[2][3] >= 1
    assert not any(env.kill_switch_engaged for env in Environment.objects.all())


def test_environment__production_without_approvals__refused_by_the_database(production):
    with pytest.raises(IntegrityError), transaction.atomic():
        Environment.objects.filter(pk=production.pk).update(approvals_required=0)

    production.refresh_from_db()
    assert production.approvals_required >= 1


def test_environment__new_production_tier_without_approvals__refused(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        EnvironmentFactory(slug="production-eu", tier="production", approvals_required=0)


def test_environment__staging_without_approvals__allowed(staging):
    Environment.objects.filter(pk=staging.pk).update(approvals_required=0)

    staging.refresh_from_db()
    assert staging.approvals_required == 0


def test_environment__two_on_the_same_position__refused(development):
    with pytest.raises(IntegrityError), transaction.atomic():
        EnvironmentFactory(slug="dev-2", position=development.position)


def test_environment_admin__require_approval_for_increase__changed_through_audited_service(
    client, admin_user, production
):
    from releasecontrol.models import AuditEvent

    client.force_login(admin_user)
    response = client.post(
        f"/admin/releasecontrol/environment/{production.pk}/change/",
        {"approvals_required": 2, "require_approval_for_increase": "on"},
    )

    assert response.status_code == 302, response.content[:500]
    production.refresh_from_db()
    assert production.require_approval_for_increase and production.approvals_required == 2
    event = AuditEvent.objects.get(action="environment.configure")
    assert event.actor == admin_user
    assert event.after == {"approvals_required": 2, "require_approval_for_increase": True}


def test_environment_configure__production_without_approvals__refused_by_constraint(production):
    import pytest
    from django.core.exceptions import ValidationError

    from releasecontrol.models import User
    from releasecontrol.services import environment_configure

    with pytest.raises(ValidationError):
        environment_configure(actor=User.system(), environment=production, approvals_required=0)


def test_environment_configure__approval_for_increase_without_approvals__refused(staging):
    """Requiring approval for increases with nobody to approve would block every increase."""
    import pytest
    from django.core.exceptions import ValidationError

    from releasecontrol.models import AuditEvent, User
    from releasecontrol.services import environment_configure

    with pytest.raises(ValidationError):
        environment_configure(
            actor=User.system(), environment=staging, require_approval_for_increase=True
        )
    staging.refresh_from_db()
    assert not staging.require_approval_for_increase
    assert not AuditEvent.objects.filter(action="environment.configure").exists()


def test_environment__approval_for_increase_without_approvals__refused_by_the_database(staging):
    from django.db import IntegrityError, transaction

    from releasecontrol.models import Environment

    with pytest.raises(IntegrityError), transaction.atomic():
        Environment.objects.filter(pk=staging.pk).update(require_approval_for_increase=True)
