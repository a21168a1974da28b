"""Small builders for records, CSV files and comparable snapshots of the database."""

from __future__ import annotations

import csv
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.db import connection, transaction

from users_app.ingestion import IncomingRecord, records_ingest, run_with_retries
from users_app.locks import exclusive_writer
from users_app.models import (
    Identifier,
    ImportReject,
    ImportRun,
    Interest,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
)
from users_app.normalize import RECORD_FIELDS

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_DIR.parent / "shared"
SAMPLE_FILE = SHARED_DIR / "data" / "sample_user_data.csv"

_counter = itertools.count(1)


def record(**fields) -> dict:
    """A record in the seed's flat CSV shape; any field can be overridden, None drops it."""
    n = next(_counter)
    base = {
        "cookie": f"cookie-{n}",
        "email": f"person{n}@example.com",
        "phone_number": "",
        "created_at": "1/15/2025 10:00",
        "country": "",
        "state": "",
        "city": "",
        "age": "",
        "gender": "",
        "income": "",
        "education": "",
        "interests": "",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def ingest(*records: dict):
    """Ingest records one request at a time, as the API would, and return the outcomes."""
    outcomes = []
    for data in records:
        result = run_with_retries(lambda data=data: records_ingest(records=[IncomingRecord(data=data, source="api")]))
        outcomes.extend(result.outcomes)
    return outcomes


def ingest_batch(records: list[dict]):
    return run_with_retries(
        lambda: records_ingest(records=[IncomingRecord(data=data, source="api") for data in records])
    )


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None, bom: bool = False) -> Path:
    header = header or list(RECORD_FIELDS)
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in header})
    return path


def profile_for(kind: str, value: str) -> Profile:
    return Profile.objects.get(identifiers__kind=kind, identifiers__value=value)


def identifiers_of(profile: Profile) -> set[str]:
    return {f"{kind}:{value}" for kind, value in profile.identifiers.values_list("kind", "value")}


TRAITS = (
    "cookie", "email", "phone_number", "country", "state", "city", "age", "gender",
    "income", "income_min", "income_max", "education",
)  # fmt: skip


def profiles_snapshot() -> dict[tuple[str, ...], dict]:
    """Every profile keyed by its identifier set, with its traits: independent of surrogate ids."""
    identifiers = defaultdict(set)
    for kind, value, pid in Identifier.objects.values_list("kind", "value", "profile_id"):
        identifiers[pid].add(f"{kind}:{value}")
    interests = defaultdict(set)
    for pid, key in ProfileInterest.objects.values_list("profile_id", "interest__key"):
        interests[pid].add(key)
    records = defaultdict(list)
    for pid, key, data in RawRecord.objects.values_list("profile_id", "source_key", "data"):
        records[pid].append(key or repr(sorted(data.items())))
    snapshot = {}
    for profile in Profile.objects.all():
        snapshot[tuple(sorted(identifiers[profile.id]))] = {
            **{name: getattr(profile, name) for name in TRAITS},
            "first_seen": profile.first_seen,
            "last_seen": profile.last_seen,
            "cookie_count": profile.cookie_count,
            "interests": sorted(interests[profile.id]),
            "raw_records": sorted(records[profile.id]),
        }
    return snapshot


def database_snapshot() -> dict:
    """Profiles plus the raw log, the ledger and import bookkeeping, with ids mapped to source keys."""
    key_of = dict(RawRecord.objects.values_list("id", "source_key"))
    founder = {pid: key_of.get(pid) for pid in Profile.objects.values_list("id", flat=True)}
    return {
        "profiles": profiles_snapshot(),
        "profile_founders": sorted(filter(None, founder.values())),
        "raw_records": sorted(
            (key, repr(sorted(data.items())), line, tuple(warnings), outcome, key_of.get(pid))
            for key, data, line, warnings, outcome, pid in RawRecord.objects.values_list(
                "source_key", "data", "line_number", "warnings", "outcome", "profile_id"
            )
        ),
        "ledger": sorted(
            (
                key_of.get(m.survivor_id),
                key_of.get(m.absorbed_id),
                m.identifier_kind,
                m.identifier_value,
                key_of.get(m.raw_record_id),
            )
            for m in ProfileMerge.objects.all()
        ),
        "import_runs": sorted(
            ImportRun.objects.values_list(
                "sha256", "status", "rows", "accepted", "rejected", "warnings", "profiles_created", "merges"
            )
        ),
        "rejects": sorted(ImportReject.objects.values_list("line_number", "reason", "original")),
    }


def full_snapshot() -> dict:
    """``database_snapshot`` plus what it leaves out: where each trait came from, interest names."""
    key_of = dict(RawRecord.objects.values_list("id", "source_key"))
    return {
        **database_snapshot(),
        "trait_sources": sorted(
            (key_of[pid], trait, created, key_of[raw_id])
            for pid, sources in Profile.objects.values_list("id", "trait_sources")
            for trait, (created, raw_id) in sources.items()
        ),
        "interests": sorted(Interest.objects.values_list("key", "name")),
    }


def keyed(records: list[dict]) -> list[IncomingRecord]:
    """API records with source keys ``k0000``, ``k0001``... in order: snapshots name records by them."""
    return [IncomingRecord(data=data, source="api", source_key=f"k{i:04}") for i, data in enumerate(records)]


def snapshot_after(
    records: list[dict], *, batch: int, resolve: Callable, then: Callable[[], object] | None = None
) -> dict:
    """Ingest ``records`` in batches of ``batch`` through ``resolve``, run ``then`` (what completes
    that road: a first load's ``finish``, resolving the queue), snapshot the whole store, roll back."""
    with transaction.atomic():
        incoming = keyed(records)
        for start in range(0, len(incoming), batch):
            records_ingest(records=incoming[start : start + batch], resolve=resolve)
        if then:
            then()
        snapshot = full_snapshot()
        transaction.set_rollback(True)
    return snapshot


def started_thread(work: Callable[[], object], errors: list[Exception]) -> threading.Thread:
    """Run ``work`` in a thread started now, on its own database connection (closed at the end);
    what it raises goes into ``errors``, for the test to assert on."""

    def run() -> None:
        try:
            work()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@contextmanager
def writer_lock_held_elsewhere(seconds: float = 30):
    """Another thread holds the writer lock (an import or rebuild running) until the block ends."""
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with exclusive_writer("test"):
                holding.set()
                release.wait(seconds)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert holding.wait(seconds)
        yield
    finally:
        release.set()
        holder.join()


def catalog_rows(sql: str) -> list[tuple]:
    """The rows of a query on PostgreSQL's catalog."""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def indexes() -> list[tuple]:
    """Every index of the project's tables (PostgreSQL): table, name, definition."""
    return catalog_rows(
        "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE tablename LIKE 'users\\_app\\_%' OR tablename LIKE 'cohorts\\_app\\_%' ORDER BY 1, 2"
    )


def foreign_keys() -> list[tuple]:
    """Every foreign key of the database (PostgreSQL): table, name, definition."""
    return catalog_rows(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' ORDER BY 1, 2"
    )
