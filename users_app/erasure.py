"""Erasure on request (the right to be forgotten): a person goes, and stays gone.

``person_erase`` removes one profile and every row that holds that person's data, and adds each
of their identifiers (every cookie, email and phone identifier) to the suppression list, as a
salted hash (``users_app.suppression``). From then on ``resolve_records`` drops any record holding
one of them, whatever its road (CSV import, API, rebuild), and counts it as "suppressed".
``manage.py erase_person`` and ``DELETE /api/v1/profiles/{id}/`` both call it. A dry run does the
same work in a transaction it rolls back, so what it reports is exactly what would go.

What goes, table by table:

- ``Profile``, its ``ProfileInterest`` rows and its ``Identifier`` rows.
- ``RawRecord``: the records linked to the profile (the contract's one exception to "nothing is
  lost").
- ``ProfileMerge`` (the ledger): the merges that built this person, i.e. the rows whose survivor
  is the profile or, transitively, a profile merged into it. Deleted rather than anonymized: both
  sides of each such merge are this same person, ``identifier_value`` holds one of their
  identifiers in clear and ``raw_record`` points at a record that is deleted too. Stripped of
  those, a row would say only that two ids that no longer exist were once joined, which serves
  none of the ledger's purposes (explaining a profile, undoing a bad merge). The erasure's audit
  event keeps how many rows went.
- ``ImportReject``: reject report lines with one of their emails or cookies in a cell (a row with
  a valid email but an unreadable date is rejected, so it is linked to no profile). The import
  runs' counters stay as they are: figures, not personal data.
- Cohort and segment membership are computed from profiles when asked for (``cohorts_app``
  stores no members), so they go with the profile; the result says whether the person was in
  the multi-device cohort.

Locking: the identifier rows are locked before the profile, in the order ingestion locks them
(``resolution._load_owners`` then ``_load_states``), and ingestion looks suppressions up after
taking its identifier locks, so a record racing the erasure either lands before it (and is
erased with the rest) or is dropped after it.
"""

from __future__ import annotations

import csv
import operator
from dataclasses import asdict, dataclass
from functools import reduce

from django.db.models import Q

from .audit import audit_record
from .ingestion import run_with_retries
from .models import (
    AuditEvent,
    Identifier,
    IdentifierKind,
    ImportReject,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
)
from .normalize import FieldWarning, normalize_cookie, normalize_email
from .suppression import suppressed_identifiers, suppressions_add

# Identifier kinds a person can be looked up by, with the normalizer ingestion applies to them.
LOOKUP_NORMALIZERS = {IdentifierKind.COOKIE: normalize_cookie, IdentifierKind.EMAIL: normalize_email}

ERROR_EMPTY = "Give a non-empty {kind}."
ERROR_INVALID_EMAIL = "'{value}' is not a valid email address, so it is nobody's identifier."
ERROR_NOT_FOUND = "No person has the {kind} '{value}'."
NOTE_ALREADY_SUPPRESSED = " It belonged to a person erased before: records holding it are dropped."
ERROR_GONE = "Profile {profile_id} no longer exists (erased, or merged into another person meanwhile)."


class ErasureError(Exception):
    """The person to erase cannot be found; nothing was changed."""


@dataclass(frozen=True)
class ErasedRows:
    """Rows removed (or, in a dry run, that would be), by table."""

    profiles: int = 0
    identifiers: int = 0
    raw_records: int = 0
    profile_interests: int = 0
    merge_ledger: int = 0
    import_rejects: int = 0

    @property
    def total(self) -> int:
        return sum(asdict(self).values())


@dataclass(frozen=True)
class ErasureResult:
    profile_id: int
    dry_run: bool
    removed: ErasedRows
    suppressions_recorded: int
    in_multi_device_cohort: bool

    @property
    def rows_removed(self) -> int:
        return self.removed.total


class _RollBack(Exception):
    """Ends a dry run: everything it did is undone with the transaction."""

    def __init__(self, result: ErasureResult):
        self.result = result


def profile_find(*, kind: str, value: str) -> Profile:
    """The person holding the identifier, normalized as ingestion normalizes it (`` X@Y.com `` is
    ``x@y.com``); ErasureError with a message for people when nobody holds it."""
    try:
        normalized = LOOKUP_NORMALIZERS[kind](value)
    except FieldWarning:
        raise ErasureError(ERROR_INVALID_EMAIL.format(value=value.strip())) from None
    if not normalized:
        raise ErasureError(ERROR_EMPTY.format(kind=kind))
    profile = Profile.objects.with_identifier(kind, normalized).first()
    if profile is None:
        message = ERROR_NOT_FOUND.format(kind=kind, value=normalized)
        if suppressed_identifiers([(kind, normalized)]):
            message += NOTE_ALREADY_SUPPRESSED
        raise ErasureError(message)
    return profile


def person_erase(*, profile: Profile, dry_run: bool, actor: str) -> ErasureResult:
    """Erase the person (see the module's docstring), atomically; with ``dry_run`` change nothing
    and say what would go. ``actor`` (who asked) goes into the audit log of a real erasure."""

    def work() -> ErasureResult:
        result = _erase(profile.pk, dry_run=dry_run)
        if dry_run:
            raise _RollBack(result)
        removed = result.removed
        audit_record(
            actor=actor,
            action=AuditEvent.Action.ERASURE,
            # Ids and counts only: the audit log must not keep what was erased.
            summary=f"Erased profile {result.profile_id}: {result.rows_removed} rows removed, "
            f"{result.suppressions_recorded} identifiers suppressed",
            details={
                "profile_id": result.profile_id,
                "removed": asdict(removed),
                "suppressions_recorded": result.suppressions_recorded,
            },
        )
        return result

    try:
        # Retried like ingestion when a concurrent writer deadlocks with it (PostgreSQL).
        return run_with_retries(work)
    except _RollBack as done:
        return done.result


def _erase(profile_id: int, *, dry_run: bool) -> ErasureResult:
    # Ingestion's lock order: identifiers, then the profile. (Ingestion takes identifiers kind by
    # kind, so the two can still deadlock on PostgreSQL; run_with_retries runs the loser again.)
    list(Identifier.objects.filter(profile_id=profile_id).order_by("pk").select_for_update().values_list("pk"))
    profile = Profile.objects.filter(pk=profile_id).select_for_update().first()
    if profile is None:
        raise ErasureError(ERROR_GONE.format(profile_id=profile_id))
    in_cohort = Profile.objects.multi_device().filter(pk=profile_id).exists()
    # Read again under the profile's lock: a concurrent ingest may have added one meanwhile.
    identifiers = set(Identifier.objects.filter(profile_id=profile_id).values_list("kind", "value"))

    removed = ErasedRows(
        import_rejects=_delete_rejects_mentioning(identifiers),
        merge_ledger=_delete_ledger(profile_id),
        identifiers=Identifier.objects.filter(profile_id=profile_id).delete()[0],
        profile_interests=ProfileInterest.objects.filter(profile_id=profile_id).delete()[0],
        # Few rows for one person; Django's delete also clears the ledger and identifier rows
        # that point at them (there are none left: both went above).
        raw_records=RawRecord.objects.filter(profile_id=profile_id).delete()[1].get(RawRecord._meta.label, 0),
        profiles=Profile.objects.filter(pk=profile_id).delete()[1].get(Profile._meta.label, 0),
    )
    return ErasureResult(
        profile_id=profile_id,
        dry_run=dry_run,
        removed=removed,
        suppressions_recorded=suppressions_add(identifiers=identifiers),
        in_multi_device_cohort=in_cohort,
    )


def _delete_ledger(profile_id: int) -> int:
    """Delete the merges that built the person: into the profile, or into a profile merged into it."""
    built_from = {profile_id}
    frontier = {profile_id}
    while frontier:
        absorbed = set(ProfileMerge.objects.filter(survivor_id__in=frontier).values_list("absorbed_id", flat=True))
        frontier = absorbed - built_from
        built_from |= frontier
    return ProfileMerge.objects.filter(survivor_id__in=built_from).delete()[0]


def _delete_rejects_mentioning(identifiers: set[tuple[str, str]]) -> int:
    """Delete reject report lines with a cell that is one of the emails or cookies.

    The database narrows the lines down by substring (a scan of the reject table, which holds only
    rejected rows); each candidate's cells are then compared exactly, normalized as ingestion
    would, so another person's line that merely contains the text stays.
    """
    emails = {value for kind, value in identifiers if kind == IdentifierKind.EMAIL}
    cookies = {value for kind, value in identifiers if kind == IdentifierKind.COOKIE}
    if not emails and not cookies:
        return 0
    mentions = ImportReject.objects.filter(reduce(operator.or_, (Q(original__icontains=v) for v in emails | cookies)))
    doomed = []
    for pk, original in mentions.values_list("pk", "original"):
        cells = _cells(original)
        if cells & cookies or {cell.lower() for cell in cells} & emails:
            doomed.append(pk)
    return ImportReject.objects.filter(pk__in=doomed).delete()[0] if doomed else 0


def _cells(original: str) -> set[str]:
    """The trimmed cells of a rejected CSV line (split at commas if the csv module cannot read it)."""
    try:
        return {cell.strip() for row in csv.reader(original.splitlines(keepends=True)) for cell in row}
    except csv.Error:
        return {cell.strip() for cell in original.split(",")}
