import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from releasecontrol import roles
from releasecontrol.models import Environment, User, UserKind
from releasecontrol.services import role_grant, user_create


class Command(BaseCommand):
    help = (
        "Create an account (or add a role to an existing one). Without --environments the role "
        "holds on every environment (developer and agent capped in production to view, "
        "request changes and submit metrics)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--role", required=True, choices=sorted(roles.ROLE_PERMISSIONS))
        parser.add_argument(
            "--environments", help="comma-separated slugs, e.g. development,staging"
        )
        parser.add_argument(
            "--agent", action="store_true", help="an agent account (AI agent, bot, CI)"
        )
        parser.add_argument(
            "--password", help="sign-in password; a person gets a random one otherwise"
        )
        parser.add_argument("--superuser", action="store_true", help="a person with admin powers")

    def handle(
        self,
        *args,
        name: str,
        role: str,
        environments: str | None,
        agent: bool,
        password: str | None,
        superuser: bool,
        **options,
    ) -> None:
        if agent and superuser:
            raise CommandError("An agent account cannot be a superuser.")
        envs = None
        if environments:
            slugs = [s.strip() for s in environments.split(",") if s.strip()]
            envs = list(Environment.objects.filter(slug__in=slugs))
            unknown = sorted(set(slugs) - {e.slug for e in envs})
            if unknown:
                known = ", ".join(Environment.objects.values_list("slug", flat=True))
                raise CommandError(f"Unknown environment(s): {', '.join(unknown)}. Known: {known}.")
        kind = UserKind.AGENT if agent else UserKind.HUMAN
        system = User.system()
        generated = None
        try:
            with transaction.atomic():
                user = User.objects.filter(username=name).first()
                if user is None:
                    if password is None and not agent:
                        password = generated = secrets.token_urlsafe(12)
                    user = user_create(
                        actor=system,
                        username=name,
                        kind=kind,
                        password=password,
                        is_superuser=superuser,
                        reason="manage.py add_user",
                    )
                elif user.kind != kind:
                    raise CommandError(f"{name} exists and is a {user.kind} account, not {kind}.")
                grants = role_grant(
                    actor=system,
                    user=user,
                    role=role,
                    environments=envs,
                    reason="manage.py add_user",
                )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        where = ", ".join(g.environment.slug for g in grants)
        self.stdout.write(f"{user.username} ({user.kind}) is {role} on {where}")
        if generated:
            self.stdout.write(f"password: {generated}")
