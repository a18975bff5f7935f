from django.core.management.base import BaseCommand
from django.db import transaction

from releasecontrol.models import Role, User, UserKind
from releasecontrol.services import role_grant, user_create

# Demo accounts only: the run command's embedded default. Never seed production.
DEMO_ACCOUNTS = [
    # username, password, role, kind, superuser
    ("admin", "admin-demo-pass", Role.RELEASE_MANAGER, UserKind.HUMAN, True),
    ("rita", "rita-demo-pass", Role.RELEASE_MANAGER, UserKind.HUMAN, False),
    ("omar", "omar-demo-pass", Role.ONCALL, UserKind.HUMAN, False),
    ("dev", "dev-demo-pass", Role.DEVELOPER, UserKind.HUMAN, False),
    ("audrey", "audrey-demo-pass", Role.AUDITOR, UserKind.HUMAN, False),
    ("ci-bot", "ci-bot-demo-pass", Role.AGENT, UserKind.AGENT, False),
]


class Command(BaseCommand):
    help = "Create demo accounts (one per role and an agent) and demo data. Safe to run again."

    def handle(self, *args, **options) -> None:
        system = User.system()
        with transaction.atomic():
            for username, password, role, kind, superuser in DEMO_ACCOUNTS:
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = user_create(
                        actor=system,
                        username=username,
                        kind=kind,
                        password=password,
                        is_superuser=superuser,
                        reason="seed_demo",
                    )
                role_grant(actor=system, user=user, role=role, reason="seed_demo")
            for hook in SEED_HOOKS:
                hook(self.stdout)
        self.stdout.write("Demo accounts (sign in at http://127.0.0.1:8000/):")
        for username, password, role, kind, superuser in DEMO_ACCOUNTS:
            extra = " + admin" if superuser else ""
            self.stdout.write(f"  {username:<8} {password:<18} {role.label}{extra} ({kind})")


# Apps add their demo data here (flags register theirs in their AppConfig.ready()).
SEED_HOOKS: list = []
