"""The permissions of DESIGN.md's roles table (drive_releases, submit_metrics, deploy,
view_audit) on Environment, and every existing role grant re-synced to them: each user's
guardian permissions on an environment become exactly what its grants there give now."""

from django.db import migrations

PERMISSIONS = [
    ("change_flags", "Change flag states"),
    ("drive_releases", "Start, advance, pause and roll back releases"),
    ("operate_kill_switch", "Engage and release kill switches"),
    ("request_changes", "Prepare checklists and request approval"),
    ("submit_metrics", "Submit metric samples"),
    ("approve_changes", "Approve or reject requests"),
    ("deploy", "Execute an approved deployment"),
    ("view_audit", "Read the audit trail"),
    ("export_audit", "Export the audit trail"),
]


def resync(apps, schema_editor):
    from releasecontrol.roles import ALL_PERMISSIONS, role_permissions

    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    RoleGrant = apps.get_model("releasecontrol", "RoleGrant")
    UserObjectPermission = apps.get_model("guardian", "UserObjectPermission")
    # Django makes content types and permission rows after migrate; the re-sync needs them now.
    content_type, _ = ContentType.objects.get_or_create(
        app_label="releasecontrol", model="environment"
    )
    by_codename = {
        codename: Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )[0]
        for codename, name in PERMISSIONS
    }
    by_codename["view_environment"] = Permission.objects.get_or_create(
        content_type=content_type,
        codename="view_environment",
        defaults={"name": "Can view environment"},
    )[0]
    wanted: dict[tuple[int, int], set[str]] = {}
    for grant in RoleGrant.objects.select_related("user", "environment"):
        key = (grant.user_id, grant.environment_id)
        wanted.setdefault(key, set()).update(
            role_permissions(grant.role, tier=grant.environment.tier, user_kind=grant.user.kind)
        )
    held = UserObjectPermission.objects.filter(
        content_type=content_type, permission__codename__in=ALL_PERMISSIONS
    ).select_related("permission")
    have: dict[tuple[int, int], set[str]] = {}
    for row in held:
        key = (row.user_id, int(row.object_pk))
        if row.permission.codename in wanted.get(key, set()):
            have.setdefault(key, set()).add(row.permission.codename)
        else:
            row.delete()
    UserObjectPermission.objects.bulk_create(
        UserObjectPermission(
            user_id=user_id,
            object_pk=str(environment_id),
            content_type=content_type,
            permission=by_codename[codename],
        )
        for (user_id, environment_id), codenames in sorted(wanted.items())
        for codename in sorted(codenames - have.get((user_id, environment_id), set()))
    )


class Migration(migrations.Migration):
    # The idempotency-key migration (0006) lands beside this one; either order works.
    dependencies = [
        ("releasecontrol", "0006_idempotency_key"),
        ("guardian", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="environment",
            options={"ordering": ["position"], "permissions": PERMISSIONS},
        ),
        migrations.RunPython(resync, migrations.RunPython.noop),
    ]
