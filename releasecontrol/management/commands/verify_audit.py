from django.core.management.base import BaseCommand, CommandError

from releasecontrol.audit import audit_verify


class Command(BaseCommand):
    help = "Re-walk the audit chain; name the first event that breaks it (exit status 1)."

    def handle(self, *args, **options) -> None:
        report = audit_verify()
        if not report.ok:
            raise CommandError(
                f"Audit chain BROKEN at event #{report.first_broken_id}: {report.problem} "
                f"({report.checked} events before it are intact)."
            )
        self.stdout.write(f"Audit chain intact: {report.checked} events verified.")
