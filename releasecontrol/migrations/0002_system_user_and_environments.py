from django.contrib.auth.hashers import make_password
from django.db import migrations

ENVIRONMENTS = [
    # slug, name, tier, position, approvals required besides the requester, colour
    ("development", "Development", "development", 10, 0, "#16a34a"),
    ("staging", "Staging", "staging", 20, 0, "#d97706"),
    ("production", "Production", "production", 30, 1, "#dc2626"),
]


def create(apps, schema_editor):
    User = apps.get_model("releasecontrol", "User")
    Environment = apps.get_model("releasecontrol", "Environment")
    User.objects.get_or_create(
        username="system",
        defaults={
            "kind": "system",
            # An unusable password and an inactive account: it never signs in.
            "password": make_password(None),
            "is_active": False,
            "first_name": "Release Control",
            "last_name": "automation",
        },
    )
    for slug, name, tier, position, approvals, colour in ENVIRONMENTS:
        Environment.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "tier": tier,
                "position": position,
                "approvals_required": approvals,
                "colour": colour,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("releasecontrol", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
