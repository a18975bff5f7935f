"""Role grants become django-guardian permissions on each environment; an agent's kind caps
whatever role it holds; admins grant and revoke a role on one environment, audited."""

import pytest
from django.core.exceptions import ValidationError
from guardian.shortcuts import get_perms

from releasecontrol.models import AuditEvent, RoleGrant, User, UserKind
from releasecontrol.services import role_grant, role_revoke, user_create

EVERY_PERMISSION = {
    "view_environment",
    "change_flags",
    "drive_releases",
    "operate_kill_switch",
    "request_changes",
    "submit_metrics",
    "approve_changes",
    "deploy",
    "view_audit",
    "export_audit",
}
# DESIGN.md's roles table, written out: what each role holds outside production and in it.
PREPARES = {"view_environment", "request_changes", "submit_metrics"}
EXPECTED_ROLE_PERMISSIONS = {
    "release_manager": (EVERY_PERMISSION, EVERY_PERMISSION),
    "oncall": (
        EVERY_PERMISSION - {"approve_changes", "export_audit"},
        EVERY_PERMISSION - {"approve_changes", "export_audit"},
    ),
    "developer": (PREPARES | {"change_flags", "drive_releases"}, PREPARES),
    "agent": (PREPARES | {"change_flags", "drive_releases"}, PREPARES),
    "auditor": (
        {"view_environment", "view_audit", "export_audit"},
        {"view_environment", "view_audit", "export_audit"},
    ),
}


def perms(user, environment) -> set[str]:
    return set(get_perms(User.objects.get(pk=user.pk), environment))


@pytest.mark.parametrize("role", sorted(EXPECTED_ROLE_PERMISSIONS))
def test_role_grant__no_environments_named__holds_the_table_everywhere(
    request, role, development, staging, production
):
    user = request.getfixturevalue(role)
    elsewhere, in_production = EXPECTED_ROLE_PERMISSIONS[role]

    assert perms(user, development) == elsewhere
    assert perms(user, staging) == elsewhere
    assert perms(user, production) == in_production
    assert RoleGrant.objects.filter(user=user, role=role).count() == 3


def test_developer__granted_on_production_again__still_cannot_change_its_flags(
    developer, system_user, production
):
    role_grant(actor=system_user, user=developer, role="developer", environments=[production])

    assert perms(developer, production) == PREPARES
    assert not developer.has_perm("releasecontrol.change_flags", production)


def test_agent_given_release_manager__capped_to_what_an_agent_may(
    system_user, development, staging, production
):
    bot = user_create(actor=system_user, username="rm-bot", kind=UserKind.AGENT)
    role_grant(actor=system_user, user=bot, role="release_manager")

    for environment in (development, staging, production):
        held = perms(bot, environment)
        assert not held & {"approve_changes", "operate_kill_switch", "deploy", "export_audit"}
        assert "view_audit" not in held
    assert perms(bot, staging) == PREPARES | {"change_flags", "drive_releases"}
    assert perms(bot, production) == PREPARES


def test_outsider__no_permission_anywhere(outsider, environments):
    for environment in environments.values():
        assert perms(outsider, environment) == set()


def test_role_revoke__one_of_two_grants__keeps_the_others_permissions(
    developer, system_user, staging
):
    role_grant(actor=system_user, user=developer, role="release_manager", environments=[staging])
    assert "approve_changes" in perms(developer, staging)

    role_revoke(
        actor=system_user,
        grant=RoleGrant.objects.get(user=developer, role="release_manager", environment=staging),
    )

    assert perms(developer, staging) == PREPARES | {"change_flags", "drive_releases"}


def test_role_revoke__last_grant__removes_every_permission(developer, system_user, staging):
    role_revoke(
        actor=system_user,
        grant=RoleGrant.objects.get(user=developer, role="developer", environment=staging),
    )

    assert perms(developer, staging) == set()
    assert not developer.has_perm("releasecontrol.change_flags", staging)


def test_role_grant__twice__is_one_grant_audited_once(developer, system_user, production):
    role_grant(actor=system_user, user=developer, role="oncall", environments=[production])
    role_grant(actor=system_user, user=developer, role="oncall", environments=[production])

    assert RoleGrant.objects.filter(user=developer, role="oncall").count() == 1
    assert (
        AuditEvent.objects.filter(
            action="role.grant",
            target_id=str(developer.pk),
            environment="production",
            after__role="oncall",
        ).count()
        == 1
    )


def test_role_grant__unknown_role_or_system_user__refused(developer, system_user):
    with pytest.raises(ValidationError, match="Unknown role"):
        role_grant(actor=system_user, user=developer, role="god")
    with pytest.raises(ValidationError, match="no roles"):
        role_grant(actor=system_user, user=system_user, role="developer")


# --- Django admin ------------------------------------------------------------------------


def test_role_admin__grant_then_revoke_on_one_environment__both_audited(
    client, admin_user, outsider, production, staging
):
    client.force_login(admin_user)

    response = client.post(
        "/admin/releasecontrol/rolegrant/add/",
        {"user": outsider.pk, "role": "oncall", "environment": production.pk},
    )

    assert response.status_code == 302, response.content
    grant = RoleGrant.objects.get(user=outsider)
    assert (grant.role, grant.environment, grant.granted_by) == ("oncall", production, admin_user)
    assert "operate_kill_switch" in perms(outsider, production)
    assert perms(outsider, staging) == set()
    granted = AuditEvent.objects.get(action="role.grant", target_id=str(outsider.pk))
    assert granted.actor == admin_user
    assert granted.environment_id == "production"
    assert granted.after == {"role": "oncall"}
    assert granted.request_id and granted.client_ip == "127.0.0.1"

    response = client.post(f"/admin/releasecontrol/rolegrant/{grant.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302, response.content
    assert not RoleGrant.objects.filter(user=outsider).exists()
    assert perms(outsider, production) == set()
    revoked = AuditEvent.objects.get(action="role.revoke", target_id=str(outsider.pk))
    assert revoked.actor == admin_user
    assert revoked.environment_id == "production"
    assert revoked.before == {"role": "oncall"}


def test_role_admin__revoke_action__audited(client, admin_user, developer, staging):
    client.force_login(admin_user)
    grant = RoleGrant.objects.get(user=developer, environment=staging)

    response = client.post(
        "/admin/releasecontrol/rolegrant/",
        {"action": "revoke_selected", "_selected_action": [grant.pk]},
    )

    assert response.status_code == 302
    assert not RoleGrant.objects.filter(pk=grant.pk).exists()
    assert "change_flags" not in perms(developer, staging)
    assert AuditEvent.objects.filter(action="role.revoke", actor=admin_user).count() == 1


def test_role_admin__change_form__cannot_edit_a_grant(client, admin_user, developer, staging):
    client.force_login(admin_user)
    grant = RoleGrant.objects.get(user=developer, environment=staging)

    response = client.post(
        f"/admin/releasecontrol/rolegrant/{grant.pk}/change/",
        {"user": developer.pk, "role": "release_manager", "environment": staging.pk},
    )

    assert response.status_code == 403
    grant.refresh_from_db()
    assert grant.role == "developer"


def test_role_admin__not_a_superuser__cannot_grant(client, release_manager, outsider, production):
    client.force_login(release_manager)

    response = client.post(
        "/admin/releasecontrol/rolegrant/add/",
        {"user": outsider.pk, "role": "oncall", "environment": production.pk},
    )

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not RoleGrant.objects.filter(user=outsider).exists()


def test_migration_0007__grants_made_before_it__resynced_to_the_table(
    developer, oncall, agent, production, staging
):
    """Grants made under the old table (no view_audit, no submit_metrics...) get exactly the
    new permissions when the re-sync runs; permissions beyond the table go."""
    import importlib

    from django.apps import apps
    from guardian.models import UserObjectPermission
    from guardian.shortcuts import assign_perm

    migration = importlib.import_module("releasecontrol.migrations.0007_role_permissions_resync")
    # Given grants as the old table left them: new permissions missing, one beyond the cap
    UserObjectPermission.objects.filter(
        permission__codename__in=["view_audit", "submit_metrics", "deploy", "drive_releases"]
    ).delete()
    assign_perm("releasecontrol.change_flags", agent, production)
    assert "view_audit" not in perms(oncall, production)

    # When the migration's re-sync runs
    migration.resync(apps, None)

    # Then every grant holds exactly what the table says
    assert perms(oncall, production) == EVERY_PERMISSION - {"approve_changes", "export_audit"}
    assert perms(developer, staging) == PREPARES | {"change_flags", "drive_releases"}
    assert perms(agent, production) == PREPARES
