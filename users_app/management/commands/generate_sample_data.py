"""Write a synthetic user-data CSV for the demo and the benchmarks.

The rows follow the format and value shares of the product's sample file, with people who use
several devices, a few repeated cookies and cookie/email chains (``users_app.sample_data`` has the
details). The same ``--rows``, ``--seed`` and ``--malformed`` always give a byte-identical file, and
rows are streamed to it, so 10M rows need no more memory than 1,000. ``--malformed`` adds ~0.1% bad
rows (no identifier, unreadable date, impossible age, ...) to exercise the importer's reject path.

    python manage.py generate_sample_data --rows 1000000 --out /tmp/users_1m.csv
    python manage.py generate_sample_data --rows 5000 --out demo.csv --seed 7 --malformed
"""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand, CommandError

from users_app.sample_data import DEFAULT_SEED, generate_sample_csv

ROWS_TOO_FEW = "--rows must be at least 1 (got {rows})."
NO_PARENT_DIRECTORY = "Cannot write {out}: directory {parent} does not exist."
CANNOT_WRITE = "Cannot write {out}: {reason}."


class Command(BaseCommand):
    help = "Write a synthetic user-data CSV shaped like the product's sample file (deterministic per seed)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, required=True, help="Data rows to write (header excluded).")
        parser.add_argument("--out", required=True, help="Path of the CSV file to write (overwritten).")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Seed (default %(default)s).")
        parser.add_argument("--malformed", action="store_true", help="Also write ~0.1%% malformed rows.")

    def handle(self, *args, rows: int, out: str, seed: int, malformed: bool, **options):
        if rows < 1:
            raise CommandError(ROWS_TOO_FEW.format(rows=rows))
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent):
            raise CommandError(NO_PARENT_DIRECTORY.format(out=out, parent=parent))
        started = time.perf_counter()
        try:
            stats = generate_sample_csv(out=out, rows=rows, seed=seed, malformed=malformed)
        except OSError as exc:
            raise CommandError(CANNOT_WRITE.format(out=out, reason=exc.strerror or exc)) from exc
        seconds = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {stats.rows:,} rows ({stats.distinct_cookies:,} distinct cookies, "
                f"{stats.distinct_emails:,} distinct emails, {stats.malformed_rows:,} malformed) "
                f"to {out} in {seconds:.1f}s"
            )
        )
