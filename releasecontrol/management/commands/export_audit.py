from django.core.management.base import BaseCommand, CommandParser

from releasecontrol.audit import export_rows, export_write


class Command(BaseCommand):
    help = "Write every audit event, with its hash fields, to standard output as CSV or JSON Lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")

    def handle(self, *args, format: str, **options) -> None:
        # self.stdout, not sys.stdout: call_command(stdout=...) and tests capture it.
        count = export_write(export_rows(), self.stdout, fmt=format)
        self.stderr.write(f"{count} events exported.")
