from django.db import migrations


def create(apps, schema_editor):
    from approvals.checklists import checklist_defaults_create

    checklist_defaults_create(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("releasecontrol", "0002_system_user_and_environments"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
