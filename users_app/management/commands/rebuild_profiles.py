"""Rebuild profiles, identifiers, interests and the merge ledger from the raw records.

    python manage.py rebuild_profiles [--json] [--batch-size N] [--offline]

Replays every raw record in arrival order with the same rules as import and ingestion (in memory
up to ``FIRST_LOAD_MAX_RECORDS`` records, ``users_app.first_load``), in one transaction, so the
result equals what incremental ingestion built (and picks up a changed block list). Refused while
an import runs. Readers see the old profiles until it ends, and ingests that resolve wait for it
(asynchronous ones are stored meanwhile and left to ``resolve_queued``); with ``--offline``
(PostgreSQL) readers wait too, and the rebuild runs faster (BENCHMARKS.md).
"""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from users_app.ingestion import profiles_rebuild
from users_app.locks import WriterBusy
from users_app.models import RawRecord
from users_app.selectors import database_summary


class Command(BaseCommand):
    help = "Rebuild every profile from the raw records."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="end with the summary as one JSON line")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument(
            "--offline",
            action="store_true",
            help="PostgreSQL: lock the profile tables for the whole rebuild (readers wait) to rebuild faster",
        )

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        total = RawRecord.objects.not_queued().count()
        with tqdm(total=total, unit="rec", desc="rebuild", disable=None, leave=False) as bar:
            try:
                result = profiles_rebuild(
                    batch_size=options["batch_size"], progress=bar.update, offline=options["offline"]
                )
            except WriterBusy as exc:
                raise CommandError(str(exc)) from None
        counts = database_summary()
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt {counts['profiles']} profiles ({counts['multi_cookie_profiles']} multi-device) "
                f"from {result.raw_records} raw records; {result.merges} merges; "
                f"{result.unlinked} records no longer link to anyone under the current rules."
                + (" (First load: resolved in memory.)" if result.first_load else "")
            )
        )
        if options["json"]:
            summary = asdict(result)
            del summary["unlinked_ids"]
            summary.update(profiles=counts["profiles"], multi_cookie_profiles=counts["multi_cookie_profiles"])
            self.stdout.write(json.dumps(summary))
