"""Asynchronous ingestion: store now, resolve behind.

A client that sends ``Prefer: respond-async`` (RFC 7240) to the ingest routes gets its answer
once the raw record is stored: parsed and checked as always (a bad record is refused with the
same errors and nothing is stored), deduplicated by message id, but not resolved. Its outcome is
``queued`` and it has no profile yet. ``queued_resolve`` (``manage.py resolve_queued``, or its
``--follow`` worker) resolves queued records in arrival order through ``ingestion.records_replay``,
the replay rebuild runs, so they end where a synchronous ingest would have put them. A rebuild
leaves them here: the worker resolves them against the rebuilt profiles.

Storing is one path with synchronous ingestion too: ``records_ingest`` with ``queue_only`` as its
resolver. A queued record naming a person erased before it is resolved is deleted when resolved
(a synchronous ingest would not have stored it); one the rules refuse by then (a value blocked
meanwhile) keeps its place in the log as ``rejected``, linked to no one, as rebuild leaves such
records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db.models import Count, Max

from . import bulk
from .ingestion import REPLAY_FIELDS, IdentityRules, records_replay, run_with_retries
from .models import QUEUED, RawRecord
from .resolution import Resolution, StoredRecord

REJECTED = "rejected"


def queue_only(records: Sequence[StoredRecord]) -> Resolution:
    """The resolver ``records_ingest`` takes to store records without resolving them."""
    return Resolution(
        profile_of={record.raw_id: None for record in records},
        outcome_of={record.raw_id: QUEUED for record in records},
    )


@dataclass
class QueuedResult:
    records: int = 0  # queued records taken up, whatever became of them
    profiles_created: int = 0
    merges: int = 0
    rejected: int = 0  # refused by the rules in force when resolved; kept, linked to no one
    suppressed: int = 0  # naming a person erased meanwhile; deleted

    def add(self, other: QueuedResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def queued_resolve(*, batch_size: int = 1000, up_to: int | None = None) -> QueuedResult:
    """Resolve the oldest ``batch_size`` queued records (with ids up to ``up_to``) in one
    transaction; an empty result when none are left. Concurrent callers take different records
    (PostgreSQL skips rows another transaction holds) and the resolver's own checks order their
    writes as for concurrent ingests."""
    return run_with_retries(lambda: _resolve_batch(batch_size, up_to))


def _resolve_batch(batch_size: int, up_to: int | None) -> QueuedResult:
    queued = RawRecord.objects.select_for_update(skip_locked=True, of=("self",)).queued()
    if up_to is not None:
        queued = queued.filter(id__lte=up_to)
    rows = list(queued.order_by("id").values_list(*REPLAY_FIELDS)[:batch_size])
    if not rows:
        return QueuedResult()
    resolution, unlinked = records_replay(rows, IdentityRules.current())
    suppressed = resolution.suppressed
    bulk.delete_rows(RawRecord, "id", sorted(suppressed))  # nothing points at a queued record
    rejected = [raw_id for raw_id in unlinked if raw_id not in suppressed]
    RawRecord.objects.filter(id__in=rejected).update(outcome=REJECTED)
    return QueuedResult(
        records=len(rows),
        profiles_created=resolution.profiles_created,
        merges=resolution.merges,
        rejected=len(rejected),
        suppressed=len(suppressed),
    )


def queued_backlog() -> tuple[int, int | None]:
    """How many records are queued, and the newest one's id."""
    backlog = RawRecord.objects.queued().aggregate(count=Count("id"), newest=Max("id"))
    return backlog["count"], backlog["newest"]


def queued_drain(
    *, batch_size: int = 1000, up_to: int | None = None, progress: Callable[[int], None] | None = None
) -> QueuedResult:
    """Resolve queued records (with ids up to ``up_to``) until none are left."""
    total = QueuedResult()
    while (result := queued_resolve(batch_size=batch_size, up_to=up_to)).records:
        total.add(result)
        if progress:
            progress(result.records)
    return total
