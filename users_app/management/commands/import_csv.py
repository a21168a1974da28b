"""Import a CSV file of user records into the raw log and profiles.

    python manage.py import_csv FILE [--reject-file PATH] [--json] [--batch-size N] [--dry-run] [--wait]
        [--offline]

Rows are resolved into profiles as the contract (docs/identity.md) says: records sharing a
cookie or email are one person, the latest created_at wins each trait, an empty value never
erases a known one. Importing the same file again adds nothing; an interrupted import run again
resumes where it stopped. Rejected rows (no usable identifier, unreadable created_at) go to the
reject file with their line number, reason and original text. ``--dry-run`` does everything in a
transaction that is rolled back, so its figures are exact and nothing is stored. One import or
rebuild runs at a time: another one running, the import is refused, or with ``--wait`` queued.
``--offline`` (for a first load of a large file) imports the whole file in one transaction,
checking foreign keys and building the indexes it does not read once at the end (PostgreSQL), and
into an empty profile store resolves it in memory (``users_app.first_load``): faster, but the
admin and API wait for it and an interrupted run starts over instead of resuming.
"""

import csv
import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from users_app.importing import (
    DEFAULT_BATCH_SIZE,
    REJECT_REPORT_COLUMNS,
    ImportFileError,
    csv_import,
    reject_report_rows,
)
from users_app.locks import WriterBusy


class Command(BaseCommand):
    help = "Import a CSV file of user records (streamed, resumable, idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file with a header row")
        parser.add_argument("--reject-file", help="write rejected rows to this CSV file")
        parser.add_argument("--json", action="store_true", help="end with the summary as one JSON line")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument("--dry-run", action="store_true", help="validate and report, store nothing")
        parser.add_argument(
            "--offline",
            action="store_true",
            help="PostgreSQL: one transaction, keys and indexes done at the end; faster, readers wait, no resume",
        )
        parser.add_argument(
            "--wait", action="store_true", help="if another import or rebuild is running, wait for it (default: refuse)"
        )

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        with tqdm(total=0, unit="B", unit_scale=True, desc="import", disable=None, leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                summary = csv_import(
                    path=options["path"],
                    batch_size=options["batch_size"],
                    dry_run=options["dry_run"],
                    offline=options["offline"],
                    progress=progress,
                    wait_for_writer=self._say_waiting if options["wait"] else None,
                )
            except (ImportFileError, WriterBusy) as exc:
                raise CommandError(str(exc)) from None

        if options["reject_file"] and summary.import_run and not summary.dry_run:
            write_reject_file(options["reject_file"], summary.import_run)
        if summary.already_imported:
            self.stdout.write(f"{summary.file_name} was already imported (run #{summary.import_run}); nothing added.")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{'Dry run of ' if summary.dry_run else 'Imported '}{summary.file_name}: "
                    f"{summary.rows} rows, {summary.accepted} accepted, {summary.rejected} rejected, "
                    f"{summary.warnings} with warnings, {summary.profiles_created} profiles created, "
                    f"{summary.merges} merges in {summary.seconds:.1f} s"
                    + (f" (resumed after line {summary.resumed_after_line})" if summary.resumed_after_line else "")
                    + (" (first load: resolved in memory)" if summary.first_load else "")
                    + (
                        f"; {summary.suppressed} rows dropped: they hold identifiers of people erased on request"
                        if summary.suppressed
                        else ""
                    )
                )
            )
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))

    def _say_waiting(self) -> None:
        self.stderr.write("Another import or rebuild is running; waiting for it to finish…")


def write_reject_file(path: str, import_run: int) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            # Original lines as they were (no spreadsheet quoting): the file is for fixing and re-importing.
            writer = csv.writer(handle)
            writer.writerow(REJECT_REPORT_COLUMNS)
            writer.writerows(reject_report_rows(import_run))
    except OSError as exc:
        raise CommandError(f"Cannot write the reject file {path}: {exc.strerror}") from None
