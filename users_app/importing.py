"""CSV import: stream a file into the raw log and profiles, batch by batch, resumably.

- A file is known by its sha256: importing the same bytes again adds nothing, and an import
  that was interrupted (killed, crashed) resumes after the last committed batch, ending in the
  state one clean run gives.
- Each batch (raw records, profile changes, rejects, the run's counters and resume point) is one
  transaction, so a kill loses at most the batch in flight and never half of one.
- The whole file is checked before anything is written: UTF-8 without NUL characters, a usable
  header, at least one row after it. A row too long or too wide to be a record is rejected alone.
- One import or rebuild at a time (``locks.exclusive_writer``); a second one is refused, or with
  ``wait_for_writer`` waits for its turn.
- ``csv_import_start`` runs the same import in a background thread (the admin's upload page).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

from django.db import connection, reset_queries, transaction
from django.db.models import F
from django.utils import timezone

from . import bulk
from .first_load import FirstLoad, first_load_possible
from .ingestion import (
    IdentityRules,
    IncomingRecord,
    first_load_run,
    offline_load,
    records_ingest,
    run_with_retries,
)
from .locks import exclusive_writer
from .models import Identifier, ImportReject, ImportRun, Profile, ProfileInterest, RawRecord
from .normalize import RECORD_FIELDS
from .resolution import resolve_records

logger = logging.getLogger(__name__)

# Header spellings seen in exports from other tools -> our field names (compared lower-cased).
HEADER_ALIASES = {
    "phone": "phone_number",
    "phone number": "phone_number",
    "phonenumber": "phone_number",
    "mobile": "phone_number",
    "e-mail": "email",
    "email address": "email",
    "email_address": "email",
    "cookie_id": "cookie",
    "cookieid": "cookie",
    "created": "created_at",
    "timestamp": "created_at",
    "date": "created_at",
    "interest": "interests",
}
EXTRA_VALUES_KEY = "_extra_values"
DEFAULT_BATCH_SIZE = 5000
IMPORT_THREAD_NAME = "csv-import"  # csv_import_start's threads are named "csv-import <file name>"
REJECT_REPORT_COLUMNS = ("line_number", "reason", "original")
MAX_COLUMNS = 1000
# A row's length bound: the API's single-record body limit (``api.MAX_INGEST_BYTES``), so that a row
# too big for /api/ingest is not stored through the CSV road either.
MAX_ROW_CHARS = 64 * 1024
# csv's default 128 KiB field limit would abort the whole file on one oversized cell; a larger
# bound lets that row be rejected on its own.
csv.field_size_limit(16 * 1024 * 1024)

ERROR_EMPTY = "{name}: the file is empty."
ERROR_NOT_UTF8 = "{name}: line {line} is not valid UTF-8 ({detail}). Save the file as UTF-8 and try again."
ERROR_NUL = (
    "{name}: line {line} contains a NUL character, so the file is binary or UTF-16, not a CSV text file. "
    "Save it as UTF-8 and try again."
)
ERROR_NO_HEADER = "{name}: the first line is not a CSV header."
ERROR_NO_ROWS = "{name}: the header is not followed by any row."
ERROR_MISSING_COLUMNS = "{name}: the header has no {missing} column. Expected columns: {expected}."
ERROR_DUPLICATE_COLUMN = "{name}: the header names the column '{column}' twice."
ERROR_TOO_MANY_COLUMNS = "{name}: the header has {count} columns; at most {limit} are accepted."
# Reasons of a rejected row (the reject report gives its line number beside them).
REJECT_ROW_TOO_LONG = (
    "the row is {length:,} characters long; at most {limit:,} are accepted (this report keeps its first {limit:,})"
)
REJECT_ROW_TOO_WIDE = "the row has {count:,} values; at most {limit:,} are accepted"


class ImportFileError(ValueError):
    """The file cannot be imported at all; nothing was written."""


@dataclass
class ImportSummary:
    import_run: int | None
    file_name: str
    status: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    suppressed: int = 0  # dropped, not stored: identifiers of people erased on request
    warnings: int = 0
    profiles_created: int = 0
    merges: int = 0
    already_imported: bool = False
    resumed_after_line: int = 0
    dry_run: bool = False
    first_load: bool = False  # resolved in memory into an empty profile store (``first_load``)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CsvRow:
    line_number: int  # physical line where the record starts (the header is line 1)
    values: list[str] | None  # None when the csv module could not read the row
    original: str
    error: str = ""


class FileFacts(NamedTuple):
    sha256: str
    size: int
    lines: int  # physical lines, the measure of an import's progress (``ImportRun.lines_done``)


def inspect_file(path: Path) -> FileFacts:
    """sha256, size and line count of the file, after checking every byte is UTF-8 text (no NUL)."""
    name = path.name
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    line = 1
    last_byte = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += chunk[: exc.start].count(b"\n")
                raise ImportFileError(ERROR_NOT_UTF8.format(name=name, line=line, detail=exc.reason)) from None
            # PostgreSQL cannot store NUL in text; in a CSV file it means binary data or UTF-16.
            if (nul := chunk.find(b"\x00")) >= 0:
                raise ImportFileError(ERROR_NUL.format(name=name, line=line + chunk[:nul].count(b"\n")))
            line += chunk.count(b"\n")
            last_byte = chunk[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ImportFileError(ERROR_NOT_UTF8.format(name=name, line=line, detail=exc.reason)) from None
    if size == 0:
        raise ImportFileError(ERROR_EMPTY.format(name=name))
    return FileFacts(digest.hexdigest(), size, lines=line - 1 if last_byte == b"\n" else line)


class _LineTap:
    """Feeds the csv reader line by line and remembers the text of the record being read."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.buffer: list[str] = []
        self.line_number = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.buffer.append(line)
        self.line_number += 1
        return line

    def take(self) -> tuple[int, str]:
        start = self.line_number - len(self.buffer) + 1
        text = "".join(self.buffer)
        self.buffer.clear()
        return start, text


def read_rows(text: io.TextIOBase) -> Iterator[CsvRow]:
    """Every record of a CSV stream, header included, with its line number and original text."""
    tap = _LineTap(iter(text))
    reader = csv.reader(tap)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, original = tap.take()
            yield CsvRow(start, None, original, error=f"unreadable CSV ({exc})")
            continue
        start, original = tap.take()
        if values:  # blank lines carry no record
            yield CsvRow(start, values, original)


def header_columns(header: list[str], name: str) -> list[str]:
    """Our field name for each header cell (unknown columns keep their own name)."""
    if len(header) > MAX_COLUMNS:
        raise ImportFileError(ERROR_TOO_MANY_COLUMNS.format(name=name, count=len(header), limit=MAX_COLUMNS))
    columns = []
    for cell in header:
        label = " ".join(cell.split())
        column = HEADER_ALIASES.get(label.lower(), label.lower() if label.lower() in RECORD_FIELDS else label)
        if column in columns:
            raise ImportFileError(ERROR_DUPLICATE_COLUMN.format(name=name, column=column))
        columns.append(column)
    missing = []
    if "cookie" not in columns and "email" not in columns:
        missing.append("cookie or email")
    if "created_at" not in columns:
        missing.append("created_at")
    if missing:
        raise ImportFileError(
            ERROR_MISSING_COLUMNS.format(name=name, missing=" nor ".join(missing), expected=", ".join(RECORD_FIELDS))
        )
    return columns


def row_data(columns: list[str], values: list[str]) -> tuple[dict, list[str]]:
    data = dict(zip(columns, values, strict=False))
    if len(values) == len(columns):
        return data, []
    if len(values) > len(columns):
        data[EXTRA_VALUES_KEY] = values[len(columns) :]
    else:
        data.update(dict.fromkeys(columns[len(values) :], ""))
    return data, [f"row has {len(values)} values but the header has {len(columns)} columns"]


class _DryRun(Exception):
    pass


def csv_import(
    *,
    path: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[ImportSummary], None] | None = None,
    wait_for_writer: Callable[[], None] | None = None,
    offline: bool = False,
) -> ImportSummary:
    """Import a CSV file. ``progress(bytes_done, bytes_total)`` is called after each batch;
    ``on_start(summary)`` once the file's run exists (new, resumed or already imported), before any row.
    While another import or rebuild runs, the import is refused (WriterBusy), or, given
    ``wait_for_writer``, calls it and waits for its turn.

    ``offline`` (for a first load of a large file) runs the whole file in one transaction with the
    foreign keys checked and the indexes it does not read built once at the end (PostgreSQL,
    ``ingestion.offline_load``) instead of row by row, and into an empty profile store resolves it in
    memory (``first_load``): faster, but readers of the profile tables wait until it ends, and an
    interrupted run leaves nothing behind (the next run starts over) instead of resuming."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file.")
    facts = inspect_file(path)
    columns = read_columns(path)
    started = time.monotonic()
    summary = ImportSummary(import_run=None, file_name=path.name, status="", dry_run=dry_run)
    with exclusive_writer("import", wait=wait_for_writer is not None, on_wait=wait_for_writer):
        try:
            # A dry run does all the work in a transaction it then rolls back: its figures are exact.
            with transaction.atomic() if dry_run or offline else nullcontext():
                _import_locked(path, columns, facts, batch_size, summary, progress, on_start, offline)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


@dataclass(frozen=True)
class BackgroundImport:
    thread: threading.Thread
    summary: ImportSummary  # as it stood when the run was known: its id, whether already imported


def csv_import_start(*, path: str | Path, when_done: Callable[[], None] | None = None) -> BackgroundImport:
    """Run ``csv_import`` in a background thread; return once the file's run exists.

    What stops an import before its run exists (a file that cannot be imported, another import or
    rebuild holding the writer lock) is raised here, and nothing is stored. After that the import
    goes on alone and how it ends (completed, or failed and why) is in the run's status and error.
    ``when_done()`` is called in the thread once the import has ended, however it ended.
    """
    known = threading.Event()
    outcome: dict[str, object] = {}

    def on_start(summary: ImportSummary) -> None:
        outcome["summary"] = replace(summary)  # a copy: the thread goes on filling in its own
        known.set()

    def work() -> None:
        try:
            csv_import(path=path, on_start=on_start)
        except BaseException as exc:
            if known.is_set():  # the run's status and error already say it; keep the traceback too
                logger.exception("CSV import of %s failed", path)
            else:
                outcome["error"] = exc
        finally:
            try:
                connection.close()  # the thread's own connection, which nothing else would close
                if when_done:
                    when_done()
            finally:
                known.set()

    # A daemon: a server stopped mid-import leaves its run "running"; the next import of the same
    # file marks it interrupted and resumes it after its last committed batch.
    thread = threading.Thread(target=work, name=f"{IMPORT_THREAD_NAME} {Path(path).name}", daemon=True)
    thread.start()
    known.wait()
    if "error" in outcome:
        raise outcome["error"]
    return BackgroundImport(thread=thread, summary=outcome["summary"])


def reject_report_rows(import_run_id: int) -> Iterator[tuple[int, str, str]]:
    """A run's rejects in file order, streamed: line number, reason, original text."""
    rejects = ImportReject.objects.filter(import_run_id=import_run_id).order_by("line_number")
    for line_number, reason, original in rejects.values_list(*REJECT_REPORT_COLUMNS).iterator(chunk_size=2000):
        yield line_number, reason, original.rstrip("\r\n")


def read_columns(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        rows = read_rows(text)
        header = next(rows, None)
        if header is None or header.values is None:
            raise ImportFileError(ERROR_NO_HEADER.format(name=path.name))
        columns = header_columns(header.values, path.name)
        if next(rows, None) is None:
            raise ImportFileError(ERROR_NO_ROWS.format(name=path.name))
    return columns


def row_problem(row: CsvRow) -> str | None:
    """Why a row cannot be a record whatever its values (unreadable, too long, too wide), or None."""
    if row.values is None:
        return row.error
    length = len(row.original.rstrip("\r\n"))
    if length > MAX_ROW_CHARS:
        return REJECT_ROW_TOO_LONG.format(length=length, limit=MAX_ROW_CHARS)
    if len(row.values) > MAX_COLUMNS:
        return REJECT_ROW_TOO_WIDE.format(count=len(row.values), limit=MAX_COLUMNS)
    return None


def _import_locked(path, columns, facts, batch_size, summary, progress, on_start, offline) -> None:
    # Holding the lock, any run still marked running died without finishing.
    ImportRun.objects.filter(status=ImportRun.Status.RUNNING).update(status=ImportRun.Status.INTERRUPTED)
    run = ImportRun.objects.filter(sha256=facts.sha256).first()
    if run and run.status == ImportRun.Status.COMPLETED:
        summary.import_run, summary.status, summary.already_imported = run.pk, run.status, True
        summary.rows = run.rows
        if on_start:
            on_start(summary)
        return
    if run is None:
        run = ImportRun.objects.create(
            file_name=path.name, sha256=facts.sha256, size_bytes=facts.size, total_lines=facts.lines
        )
    else:
        summary.resumed_after_line = run.lines_done
        ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING, error="", total_lines=facts.lines)
    summary.import_run, summary.status = run.pk, ImportRun.Status.RUNNING
    if on_start:
        on_start(summary)

    try:
        with offline_load() if offline else nullcontext():
            # An offline import of a file into an empty profile store resolves it all in memory.
            first_load = (
                FirstLoad() if offline and not run.lines_done and first_load_possible(facts.lines - 1) else None
            )
            summary.first_load = first_load is not None
            with first_load_run(first_load, offline=offline):
                _import_rows(path, run, columns, facts.size, batch_size, progress, first_load)
    except BaseException as exc:
        if not summary.dry_run:
            stopped = ImportRun.Status.FAILED if isinstance(exc, Exception) else ImportRun.Status.INTERRUPTED
            ImportRun.objects.filter(pk=run.pk).update(status=stopped, error=str(exc)[:2000])
        raise
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.COMPLETED, finished_at=timezone.now())
    if not summary.dry_run:
        bulk.analyze(RawRecord, Profile, Identifier, ProfileInterest)
    run.refresh_from_db()
    for name in ("status", "rows", "accepted", "rejected", "suppressed", "warnings", "profiles_created", "merges"):
        setattr(summary, name, getattr(run, name))


def _import_rows(path, run, columns, size, batch_size, progress, first_load) -> None:
    rules = IdentityRules.current()
    with path.open("rb") as binary:
        rows = read_rows(io.TextIOWrapper(binary, encoding="utf-8-sig", newline=""))
        next(rows)  # the header, already read
        batch: list[CsvRow] = []
        for row in rows:
            if row.line_number <= run.lines_done:
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                _import_batch(run, columns, batch, rules, first_load)
                batch = []
                reset_queries()  # with DEBUG on, Django would keep every batch's SQL text
                if progress:
                    progress(binary.tell(), size)
        if batch:
            _import_batch(run, columns, batch, rules, first_load)
        if first_load:
            first_load.finish()
        if progress:
            progress(size, size)


def _import_batch(
    run: ImportRun, columns: list[str], batch: list[CsvRow], rules: IdentityRules, first_load: FirstLoad | None
) -> None:
    incoming: list[IncomingRecord] = []
    unreadable: list[ImportReject] = []
    originals: dict[int, str] = {}
    for row in batch:
        if problem := row_problem(row):
            unreadable.append(
                ImportReject(
                    import_run=run, line_number=row.line_number, reason=problem, original=row.original[:MAX_ROW_CHARS]
                )
            )
            continue
        data, warnings = row_data(columns, row.values)
        originals[row.line_number] = row.original
        incoming.append(
            IncomingRecord(
                data=data,
                source=RawRecord.Source.CSV,
                source_key=f"csv:{run.sha256}:{row.line_number}",
                import_run_id=run.pk,
                line_number=row.line_number,
                warnings=tuple(warnings),
            )
        )

    def work():
        # A line is stored in the batch that moves the run's resume point past it, never before.
        result = records_ingest(
            records=incoming, rules=rules, keys_new=True, resolve=first_load.resolve if first_load else resolve_records
        )
        rejects = unreadable + [
            ImportReject(
                import_run=run,
                line_number=record.line_number,
                reason=outcome.reason,
                original=originals[record.line_number],
            )
            for record, outcome in zip(incoming, result.outcomes, strict=True)
            if outcome.status == "rejected"
        ]
        ImportReject.objects.bulk_create(rejects)
        ImportRun.objects.filter(pk=run.pk).update(
            rows=F("rows") + len(batch),
            accepted=F("accepted") + result.accepted,
            rejected=F("rejected") + len(rejects),
            suppressed=F("suppressed") + result.suppressed,
            warnings=F("warnings") + result.with_warnings,
            profiles_created=F("profiles_created") + result.profiles_created,
            merges=F("merges") + result.merges,
            lines_done=batch[-1].line_number,
        )

    run_with_retries(work)
