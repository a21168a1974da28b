"""Store incoming records in the raw log and resolve them into profiles.

``records_ingest`` is the single entry point for new records, whatever their road (CSV import,
API): parse, skip records whose source key is already stored, resolve, insert raw records. A
record holding an identifier of a person erased on request is dropped (not stored) and counted
as "suppressed", even one that would have been rejected. ``profiles_rebuild`` replays the raw
log through the same parser and resolver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, reset_queries, transaction
from django.utils import timezone

from . import bulk
from .first_load import FirstLoad, collector_paused, first_load_possible
from .locks import exclusive_writer
from .models import HeldLink, Identifier, Profile, ProfileInterest, ProfileMerge, RawRecord
from .normalize import (
    COOKIE,
    EMAIL,
    IDENTIFIER_FIELDS,
    IDENTIFIER_NORMALIZERS,
    PHONE,
    ParsedRecord,
    RecordRejected,
    parse_record,
    record_fields,
)
from .resolution import Resolution, ResolutionConflict, StoredRecord, load_blocklist, resolve_records
from .suppression import suppressed_identifiers

# Errors a concurrent writer can cause; the whole transaction is safe to run again.
RETRYABLE_ERRORS = (ResolutionConflict, IntegrityError, OperationalError)
RETRY_ATTEMPTS = 6
# What rebuild clears and recomputes, in an order plain DELETEs can follow.
DERIVED_MODELS = (HeldLink, ProfileMerge, Identifier, ProfileInterest, Profile)
# What an import or rebuild writes row by row: the tables whose foreign keys and plain indexes an
# offline run sets aside.
BULK_LOAD_MODELS = (RawRecord, *DERIVED_MODELS)
# The plain indexes an import or rebuild reads while it writes (to hand a merged profile's
# identifiers and raw records over to the one it went into): an offline run keeps them.
BULK_LOAD_LOOKUPS = {Identifier: "profile", RawRecord: "profile"}
# What ``records_replay`` reads of each raw record: its data, and the profile and outcome it has.
REPLAY_FIELDS = ("id", "data", "profile", "outcome")
# The raw record columns ``records_ingest`` writes, in the order of its rows.
RAW_RECORD_FIELDS = (
    "id",
    "data",
    "source",
    "source_key",
    "import_run",
    "line_number",
    "received_at",
    "created_at",
    "warnings",
    "outcome",
    "profile",
)


@dataclass(frozen=True)
class IdentityRules:
    """What may link records, read once per batch so a batch sees one consistent rule set."""

    blocked: frozenset[tuple[str, str]]
    match_phone: bool

    @classmethod
    def current(cls) -> IdentityRules:
        return cls(blocked=load_blocklist(), match_phone=settings.IDENTITY_MATCH_PHONE)

    def parse(self, data: Mapping[str, object]) -> ParsedRecord:
        return parse_record(record_fields(data), blocked=self.blocked, match_phone=self.match_phone)

    def named_identifiers(self, data: Mapping[str, object]) -> set[tuple[str, str]]:
        """The identifiers a record names, even one rejected for another reason (an unreadable date):
        enough to tell whether it belongs to a person erased on request."""
        fields = record_fields(data)
        named = set()
        for kind in (COOKIE, EMAIL, PHONE) if self.match_phone else (COOKIE, EMAIL):
            try:
                value = IDENTIFIER_NORMALIZERS[kind](fields.get(IDENTIFIER_FIELDS[kind]))
            except ValueError:  # FieldWarning (not an email, not a phone), or a value no text can hold
                continue
            if value:
                named.add((kind, value))
        return named


@dataclass(frozen=True)
class IncomingRecord:
    data: dict
    source: str
    source_key: str | None = None
    import_run_id: int | None = None
    line_number: int | None = None
    warnings: tuple[str, ...] = ()  # found before parsing, e.g. a CSV row of the wrong width


@dataclass
class RecordOutcome:
    status: str  # created | updated | merged | rejected | suppressed (dropped: an erased person's identifier)
    raw_record_id: int | None = None
    profile_id: int | None = None
    reason: str = ""
    reason_fields: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    duplicate: bool = False  # stored before under the same source key; status is what happened then

    @property
    def accepted(self) -> bool:
        return self.status not in ("rejected", "suppressed") and not self.duplicate


@dataclass
class IngestResult:
    outcomes: list[RecordOutcome]
    profiles_created: int = 0
    merges: int = 0

    @property
    def accepted(self) -> int:
        return sum(1 for o in self.outcomes if o.accepted)

    @property
    def with_warnings(self) -> int:
        return sum(1 for o in self.outcomes if o.accepted and o.warnings)

    @property
    def suppressed(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "suppressed")


@contextmanager
def offline_load() -> Iterator[None]:
    """What an offline import or rebuild sets aside until it ends, inside its transaction
    (PostgreSQL): the foreign keys of the tables it writes, checked once at the end, and the
    indexes it never reads, built once at the end. Readers of those tables wait meanwhile."""
    with (
        bulk.foreign_keys_set_aside(*BULK_LOAD_MODELS),
        bulk.indexes_set_aside(*BULK_LOAD_MODELS, keep=BULK_LOAD_LOOKUPS),
    ):
        yield


@contextmanager
def first_load_run(loader: FirstLoad | None, *, offline: bool) -> Iterator[None]:
    """What a first load (``users_app.first_load``) changes while it runs: the cycle collector
    paused and, offline, the indexes an offline load keeps set aside as well, since a first load
    looks nothing up (building the unique ones again checks every row). Enter it inside
    ``offline_load``, whose locks keep other writers out from the first-load check on."""
    if loader is None:
        yield
        return
    with collector_paused(), bulk.indexes_set_aside(*BULK_LOAD_MODELS, unique=True) if offline else nullcontext():
        yield


def run_with_retries(work: Callable[[], object], attempts: int = RETRY_ATTEMPTS):
    """Run ``work`` in a transaction, again from the start when a concurrent writer got in the way."""
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                return work()
        except RETRYABLE_ERRORS:
            if attempt == attempts - 1 or connection.in_atomic_block:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def records_ingest(
    *,
    records: Sequence[IncomingRecord],
    rules: IdentityRules | None = None,
    keys_new: bool = False,
    resolve: Callable[[Sequence[StoredRecord]], Resolution] = resolve_records,
) -> IngestResult:
    """Store and resolve a batch of records atomically. Run it through ``run_with_retries``.

    ``keys_new``: the caller knows no record's source key is stored yet (an import's lines past its
    resume point), so they are not looked up; the keys' unique constraint still refuses a repeat.
    ``resolve``: the resolver, ``resolution.resolve_records`` unless a first load's
    (``first_load.FirstLoad.resolve``)."""
    rules = rules or IdentityRules.current()
    outcomes: list[RecordOutcome | None] = [None] * len(records)
    parsed: list[tuple[int, IncomingRecord, ParsedRecord]] = []
    for index, record in enumerate(records):
        try:
            parsed.append((index, record, rules.parse(record.data)))
        except RecordRejected as exc:
            outcomes[index] = RecordOutcome(
                "rejected", reason=str(exc), reason_fields=exc.fields, warnings=record.warnings
            )
    _suppress_rejected(records, outcomes, rules)

    # No savepoint: callers run it in a transaction of their own (``run_with_retries``), and a
    # savepoint costs a single API record two more round trips.
    with transaction.atomic(savepoint=False):
        stored = {} if keys_new else _already_stored([r.source_key for _, r, _ in parsed if r.source_key])
        fresh: list[tuple[int, IncomingRecord, ParsedRecord]] = []
        first_of_key: dict[str, int] = {}
        for index, record, values in parsed:
            key = record.source_key
            if key in stored:
                outcomes[index] = stored[key]
            elif key in first_of_key:
                outcomes[index] = RecordOutcome("", duplicate=True)  # filled in below, once stored
            else:
                if key:
                    first_of_key[key] = index
                fresh.append((index, record, values))
        raw_ids = bulk.allocate_ids(RawRecord, len(fresh))
        resolution = resolve(
            [StoredRecord(raw_id, values) for raw_id, (_, _, values) in zip(raw_ids, fresh, strict=True)]
        )
        suppressed = resolution.suppressed
        now = timezone.now()
        bulk.insert_rows(
            RawRecord,
            RAW_RECORD_FIELDS,
            (
                (
                    raw_id,
                    record.data,
                    record.source,
                    record.source_key,
                    record.import_run_id,
                    record.line_number,
                    now,
                    values.created_at,
                    [*record.warnings, *values.warnings],
                    resolution.outcome_of[raw_id],
                    resolution.profile_of[raw_id],
                )
                for raw_id, (_, record, values) in zip(raw_ids, fresh, strict=True)
                if raw_id not in suppressed
            ),
        )

    for raw_id, (index, record, values) in zip(raw_ids, fresh, strict=True):
        if raw_id in suppressed:
            # Not stored; nor are its warnings, which could quote the erased person's identifiers.
            outcomes[index] = RecordOutcome("suppressed")
            continue
        outcomes[index] = RecordOutcome(
            resolution.outcome_of[raw_id],
            raw_record_id=raw_id,
            profile_id=resolution.profile_of[raw_id],
            warnings=(*record.warnings, *values.warnings),
        )
    for index, record, _ in parsed:
        if outcomes[index].duplicate and outcomes[index].raw_record_id is None:
            first = outcomes[first_of_key[record.source_key]]
            outcomes[index] = RecordOutcome(
                first.status, first.raw_record_id, first.profile_id, warnings=first.warnings, duplicate=True
            )
    return IngestResult(outcomes=outcomes, profiles_created=resolution.profiles_created, merges=resolution.merges)


def _suppress_rejected(
    records: Sequence[IncomingRecord], outcomes: list[RecordOutcome | None], rules: IdentityRules
) -> None:
    """A rejected record naming an erased person is dropped as "suppressed" too: an import's reject
    report would otherwise keep their identifiers. One lookup, and only for batches with such rejects."""
    named = {
        index: identifiers
        for index, outcome in enumerate(outcomes)
        if outcome is not None and (identifiers := rules.named_identifiers(records[index].data))
    }
    if not named:
        return
    suppressed = suppressed_identifiers(set().union(*named.values()))
    for index, identifiers in named.items():
        if identifiers & suppressed:
            outcomes[index] = RecordOutcome("suppressed")


def _already_stored(keys: list[str]) -> dict[str, RecordOutcome]:
    rows = bulk.rows_matching(RawRecord, ["source_key", "id", "profile", "outcome", "warnings"], "source_key", keys)
    read_warnings = RawRecord._meta.get_field("warnings").from_db_value
    return {
        key: RecordOutcome(
            outcome, raw_id, profile_id, warnings=tuple(read_warnings(warnings, None, connection)), duplicate=True
        )
        for key, raw_id, profile_id, outcome, warnings in rows
    }


@dataclass
class RebuildResult:
    raw_records: int = 0
    unlinked: int = 0  # raw records the current rules no longer accept (e.g. newly blocked values)
    suppressed: int = 0  # of those, records holding an identifier of a person erased on request
    profiles_created: int = 0
    merges: int = 0
    first_load: bool = False  # resolved in memory (``first_load``)
    unlinked_ids: list[int] = field(default_factory=list)


def profiles_rebuild(
    *, batch_size: int = 5000, progress: Callable[[int], None] | None = None, offline: bool = False
) -> RebuildResult:
    """Recompute profiles, identifiers, interests and the merge ledger from the raw log.

    Replays raw records in arrival order through the same parser and rules as ingestion (in
    memory when ``first_load`` allows), in one transaction, while holding the writer lock so no
    import runs meanwhile. Readers see the old profiles until it commits; ingests that resolve
    wait for it (``_resolving_writers_held_off``), while records queued by asynchronous ingestion
    are still stored and left to its worker, to be resolved against the rebuilt profiles. ``offline``
    (PostgreSQL) empties the derived tables with TRUNCATE and checks foreign keys and builds the
    indexes it does not read once at the end (``offline_load``) instead of row by row: faster, but
    readers of those tables wait until the rebuild ends.
    """
    result = RebuildResult()
    with exclusive_writer("rebuild"), transaction.atomic(), offline_load() if offline else nullcontext():
        if not offline:
            _resolving_writers_held_off()
        replayed = RawRecord.objects.not_queued()
        # With the profiles cleared, the whole log can be resolved in memory (``first_load``).
        loader = FirstLoad() if first_load_possible(replayed.count(), clearing=True) else None
        result.first_load = loader is not None
        with first_load_run(loader, offline=offline):
            _clear_profiles(truncate=offline)
            rules = IdentityRules.current()
            last_id = 0
            while True:
                batch = list(replayed.filter(id__gt=last_id).order_by("id").values_list(*REPLAY_FIELDS)[:batch_size])
                if not batch:
                    break
                last_id = batch[-1][0]
                resolution, unlinked = records_replay(
                    batch, rules, resolve=loader.resolve if loader else resolve_records
                )
                result.suppressed += len(resolution.suppressed)
                result.unlinked_ids.extend(unlinked)
                result.raw_records += len(batch)
                result.profiles_created += resolution.profiles_created
                result.merges += resolution.merges
                reset_queries()  # with DEBUG on, Django would keep every batch's SQL text
                if progress:
                    progress(len(batch))
            if loader:
                loader.finish()
    bulk.analyze(RawRecord, Profile, Identifier, ProfileInterest, ProfileMerge, HeldLink)
    result.unlinked = len(result.unlinked_ids)
    return result


def records_replay(
    rows: Sequence[tuple],
    rules: IdentityRules,
    resolve: Callable[[Sequence[StoredRecord]], Resolution] = resolve_records,
) -> tuple[Resolution, list[int]]:
    """Resolve stored raw records again and point each at its profile; the profiles they built must
    be cleared first. ``rows``: ``REPLAY_FIELDS`` of the records, in arrival order. Returns the
    resolution and the ids of the records that link to no one under the current rules. Rebuild
    and the replay after a link decision (``users_app.governance``) both run it."""
    stored = []
    unlinked = []
    before = {}
    for raw_id, data, profile_id, outcome in rows:
        before[raw_id] = (profile_id, outcome)
        try:
            stored.append(StoredRecord(raw_id, rules.parse(data)))
        except RecordRejected:
            unlinked.append(raw_id)
    resolution = resolve(stored)
    # Erasure deleted its person's records; one holding a suppressed identifier all the same
    # (e.g. unlinked back then by the block list) stays in the log but links to no one.
    unlinked.extend(sorted(resolution.suppressed))
    # Most records keep their profile and outcome: only the others are written.
    bulk.update_rows(
        RawRecord,
        ["profile", "outcome"],
        [
            (raw_id, pid, outcome)
            for raw_id, pid in resolution.profile_of.items()
            if before[raw_id] != (pid, outcome := resolution.outcome_of[raw_id])
        ],
    )
    bulk.update_rows(RawRecord, ["profile"], [(raw_id, None) for raw_id in unlinked if before[raw_id][0] is not None])
    return resolution, unlinked


def _resolving_writers_held_off() -> None:
    """Until the rebuild commits, ingests, the queue's worker and erasures wait at their first
    identifier lock (PostgreSQL; SQLite has one writer at a time anyway). An ingest committing
    meanwhile would otherwise leave profiles the rebuild writes too (a new person's profile under
    the id the rebuild gives it, when the rebuild reads the ingest's record). EXCLUSIVE mode lets
    plain reads through, so the admin and the API go on reading the old profiles; it waits for the
    writers already past that lock to commit."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(Identifier._meta.db_table)} IN EXCLUSIVE MODE")


def _clear_profiles(*, truncate: bool = False) -> None:
    # Derived tables only; the raw log keeps every record. Plain DELETEs because Django's
    # cascading delete would first read every profile into memory. Raw records keep pointing at
    # their old profile ids until the replay sets them (foreign keys are checked at commit).
    # TRUNCATE leaves no dead rows for the replay's inserts to wade through, but needs the
    # foreign keys into these tables set aside and locks out readers.
    tables = [connection.ops.quote_name(model._meta.db_table) for model in DERIVED_MODELS]
    with connection.cursor() as cursor:
        if truncate and connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
            return
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")
