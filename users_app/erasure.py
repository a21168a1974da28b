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
  lost"), and the records queued by asynchronous ingestion (``users_app.queued``) and not resolved
  yet that name one of their identifiers.
- ``ProfileMerge`` (the ledger): the merges that built this person, i.e. the rows whose survivor
  is the profile or, transitively, a profile merged into it. Deleted rather than anonymized: both
  sides of each such merge are this same person, ``identifier_value`` holds one of their
  identifiers in clear and ``raw_record`` points at a record that is deleted too. Stripped of
  those, a row would say only that two ids that no longer exist were once joined, which serves
  none of the ledger's purposes (explaining a profile, undoing a bad merge). The erasure's audit
  event keeps how many rows went.
- Identity governance (``users_app.governance``): the ``HeldLink`` rows of the person's records
  and those naming one of their identifiers (a link held or kept apart from them), and the
  ``LinkDecision`` rows about one of their identifiers or taken on one of their records, with the
  held links that decision kept apart. A decision whose only tie to them is their identifiers among
  its ``anchors`` (a shared ``info@`` address split off a profile that glued them to other people)
  is not deleted: their identifiers are taken out of its anchors and it goes on keeping the others
  apart. Deleting it would glue those people again at the next rebuild, and
  what the removed anchors did no longer matters: a record holding an erased identifier is dropped
  (and a rebuild links no one to one already stored). A decision left without anchors is deleted.
  Records of other profiles whose link to the person was held or kept apart name one of their
  identifiers: they go too, and the profiles they sat in are replayed without them
  (``governance.profiles_replay``), which is what a rebuild would make of them.
- ``ImportReject``: reject report lines with one of their emails or cookies in a cell (a row with
  a valid email but an unreadable date is rejected, so it is linked to no profile). The import
  runs' counters stay as they are: figures, not personal data.
- Cohort and segment membership are computed from profiles when asked for (``cohorts_app``
  stores no members), so they go with the profile; the result says whether the person was in
  the multi-device cohort.

Locking: the identifier rows are locked before the profile, in the order ingestion locks them
(``resolution.identifier_owners`` then ``_load_states``), and ingestion looks suppressions up after
taking its identifier locks, so a record racing the erasure either lands before it (and is
erased with the rest) or is dropped after it.
"""

from __future__ import annotations

import csv
import operator
from dataclasses import asdict, dataclass
from functools import reduce

from django.db.models import Q

from . import bulk
from .audit import audit_record
from .governance import profiles_replay, records_holding_links
from .ingestion import IdentityRules, run_with_retries
from .models import (
    AuditEvent,
    HeldLink,
    Identifier,
    IdentifierKind,
    ImportReject,
    LinkDecision,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
)
from .normalize import IDENTIFIER_NORMALIZERS, FieldWarning
from .resolution import chunked
from .suppression import suppressed_identifiers, suppressions_add

# Identifier kinds a person can be looked up by, with the normalizer ingestion applies to them.
LOOKUP_NORMALIZERS = {kind: IDENTIFIER_NORMALIZERS[kind] for kind in (IdentifierKind.COOKIE, IdentifierKind.EMAIL)}

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
    held_links: int = 0
    link_decisions: int = 0

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
    # Link decisions kept, with the person's identifiers taken out of their anchors (not rows removed).
    link_decisions_redacted: int = 0

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
                "link_decisions_redacted": result.link_decisions_redacted,
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

    # Records of other profiles that named one of the person's identifiers without linking through
    # it (the link was held, or kept apart): they hold the person's data too, and a record sent
    # with it now would be dropped. They go, and the profiles they sat in are resolved again.
    naming = {raw_id: pid for raw_id, pid in records_holding_links(identifiers).items() if pid != profile_id}
    naming_ledger = bulk.delete_rows(ProfileMerge, "raw_record", sorted(naming))
    governance = _delete_governance_rows(profile_id, identifiers)
    naming_records = RawRecord.objects.filter(id__in=sorted(naming)).delete()[1].get(RawRecord._meta.label, 0)
    removed = ErasedRows(
        import_rejects=_delete_rejects_mentioning(identifiers),
        merge_ledger=_delete_ledger(profile_id) + naming_ledger,
        held_links=governance.held_links,
        link_decisions=governance.link_decisions,
        identifiers=Identifier.objects.filter(profile_id=profile_id).delete()[0],
        profile_interests=ProfileInterest.objects.filter(profile_id=profile_id).delete()[0],
        # Few rows for one person; Django's delete also clears the ledger and identifier rows
        # and the held links and decisions that point at them (there are none left: all went above).
        raw_records=naming_records
        + _delete_queued_naming(identifiers)
        + RawRecord.objects.filter(profile_id=profile_id).delete()[1].get(RawRecord._meta.label, 0),
        profiles=Profile.objects.filter(pk=profile_id).delete()[1].get(Profile._meta.label, 0),
    )
    result = ErasureResult(
        profile_id=profile_id,
        dry_run=dry_run,
        removed=removed,
        suppressions_recorded=suppressions_add(identifiers=identifiers),
        in_multi_device_cohort=in_cohort,
        link_decisions_redacted=governance.redacted,
    )
    if naming:
        profiles_replay(set(naming.values()))
    return result


@dataclass(frozen=True)
class _GovernanceRows:
    held_links: int
    link_decisions: int
    redacted: int


def _delete_governance_rows(profile_id: int, identifiers: set[tuple[str, str]]) -> _GovernanceRows:
    """Delete the held links and link decisions holding the person's data; take their identifiers
    out of the anchors of the decisions that keep other people apart (see the module's docstring).

    Decisions are few (people take them one by one), so they are read and sorted out here.
    """
    doomed: list[int] = []
    redacted: dict[int, list] = {}
    decisions = LinkDecision.objects.values_list(
        "pk", "identifier_kind", "identifier_value", "raw_record__profile_id", "anchors"
    )
    for pk, kind, value, record_profile, anchors in decisions.order_by("pk"):
        if (kind, value) in identifiers or record_profile == profile_id:
            doomed.append(pk)
            continue
        kept = [anchor for anchor in anchors if tuple(anchor) not in identifiers]
        if len(kept) == len(anchors):
            continue
        if kept:
            redacted[pk] = kept
        else:
            doomed.append(pk)

    held = set(HeldLink.objects.filter(raw_record__profile_id=profile_id).values_list("pk", flat=True))
    values = sorted({value for _, value in identifiers})
    for chunk in chunked(values):
        for pk, kind, value in HeldLink.objects.filter(value__in=chunk).values_list("pk", "kind", "value"):
            if (kind, value) in identifiers:
                held.add(pk)
    for chunk in chunked(doomed):
        held.update(HeldLink.objects.filter(decision_id__in=chunk).values_list("pk", flat=True))

    # Held links first: they point at the decisions (plain deletes do not cascade).
    held_links = bulk.delete_rows(HeldLink, "id", sorted(held))
    link_decisions = bulk.delete_rows(LinkDecision, "id", doomed)
    for pk, kept in redacted.items():
        LinkDecision.objects.filter(pk=pk).update(anchors=kept)
    return _GovernanceRows(held_links=held_links, link_decisions=link_decisions, redacted=len(redacted))


def _delete_ledger(profile_id: int) -> int:
    """Delete the merges that built the person: into the profile, or into a profile merged into it."""
    built_from = {profile_id}
    frontier = {profile_id}
    while frontier:
        absorbed = set(ProfileMerge.objects.filter(survivor_id__in=frontier).values_list("absorbed_id", flat=True))
        frontier = absorbed - built_from
        built_from |= frontier
    return ProfileMerge.objects.filter(survivor_id__in=built_from).delete()[0]


def _delete_queued_naming(identifiers: set[tuple[str, str]]) -> int:
    """Delete the queued records naming one of the identifiers: resolving them would drop them
    anyway, but the person's data would wait in the log until the worker came by. The queue is
    short when its worker runs, so its records are read and parsed here."""
    rules = IdentityRules.current()
    doomed = [
        raw_id
        for raw_id, data in RawRecord.objects.queued().values_list("id", "data").iterator()
        if rules.named_identifiers(data) & identifiers
    ]
    return bulk.delete_rows(RawRecord, "id", doomed) if doomed else 0


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
