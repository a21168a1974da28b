"""Resolve the records stored by asynchronous ingestion (``Prefer: respond-async``).

    python manage.py resolve_queued [--batch-size N] [--json]
    python manage.py resolve_queued --follow [--interval SECONDS]

Without ``--follow``: resolves what is queued when it starts, with a progress bar, and ends with a
summary. With ``--follow``: the worker to run beside the web server; resolves whatever arrives,
polling every ``--interval`` seconds while the queue is empty (or the database is unreachable),
with a summary line whenever the queue runs empty, until stopped (Ctrl-C or SIGTERM end it after
the batch in hand). One worker resolves in arrival order; several share the queue, each batch
resolved as a concurrent ingest would be.
"""

import json
import signal
import threading
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection
from tqdm import tqdm

from users_app.queued import QueuedResult, queued_backlog, queued_drain, queued_resolve

REPORT_EVERY = 100_000


class Command(BaseCommand):
    help = "Resolve the records queued by asynchronous ingestion."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, help="records per transaction")
        parser.add_argument("--follow", action="store_true", help="keep running and resolve what arrives")
        parser.add_argument("--interval", type=float, default=1.0, help="with --follow: seconds between polls")
        parser.add_argument("--json", action="store_true", help="end with the summary as one JSON line")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be positive.")
        if options["follow"]:
            self.follow(options["batch_size"], options["interval"])
            return
        count, newest = queued_backlog()
        with tqdm(total=count, unit="rec", desc="resolve", disable=None, leave=False) as bar:
            result = queued_drain(batch_size=options["batch_size"], up_to=newest, progress=bar.update)
        self.report(result)
        if options["json"]:
            self.stdout.write(json.dumps(asdict(result)))

    def report(self, result: QueuedResult) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Resolved {result.records} queued records: {result.profiles_created} profiles created, "
                f"{result.merges} merges, {result.rejected} rejected by the current rules, "
                f"{result.suppressed} deleted (an erased person's identifiers)."
            )
        )

    def follow(self, batch_size: int, interval: float) -> None:
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.stdout.write(f"Resolving queued records as they arrive (every {interval:g} s when idle); Ctrl-C stops.")
        burst = QueuedResult()
        try:
            while not stop.is_set():
                try:
                    result = queued_resolve(batch_size=batch_size)
                except OperationalError as exc:
                    # The database went away (a restart): wait for it rather than end the worker.
                    self.stderr.write(f"Database unavailable ({str(exc).strip()}); trying again in {interval:g} s.")
                    connection.close()
                    stop.wait(interval)
                    continue
                burst.add(result)
                # A summary line whenever the queue runs empty, and every REPORT_EVERY records under
                # a steady flow.
                if burst.records and (not result.records or burst.records >= REPORT_EVERY):
                    self.report(burst)
                    burst = QueuedResult()
                if not result.records:
                    stop.wait(interval)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            if burst.records:
                self.report(burst)
