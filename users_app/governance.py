"""Identity governance: the review queue of held links, split and re-link, and why a profile is one.

The resolver (``users_app.resolution``) applies the guards (``IdentityGuards``) and people's
decisions (``LinkDecision``) as it links records; this module records those decisions and applies
them at once by replaying the affected profiles' raw records through the same code
``rebuild_profiles`` runs (``ingestion.records_replay``). A decision only changes how records
sharing identifiers with each other link, so replaying that connected part of the raw log gives
exactly what a full rebuild gives for it: whatever the order of decisions and new records,
``rebuild_profiles`` reproduces the state.

- ``link_approve``: a held link is made (the merge goes into the ledger).
- ``link_reject``: the held identifier is detached from the record's person and kept apart from
  their identifiers from then on.
- ``profile_split``: an identifier is detached from a profile; its records are resolved again
  without that link, and those that no longer connect form their own profiles.
- ``decision_reverse``: a decision is undone (re-link after a split or a rejection; an approval
  taken back), and the profiles are replayed without it.

Each runs in one transaction under the writer lock (refused while an import or rebuild runs),
re-reads what it decides on under its row lock, and is written to the audit log. It locks that row
before the identifiers and profiles it replays (the resolver locks identifiers first), so it can
deadlock with a concurrent API ingest on PostgreSQL; ``run_with_retries`` runs the loser again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from . import bulk
from .audit import audit_record
from .ingestion import REPLAY_FIELDS, IdentityRules, records_replay, run_with_retries
from .locks import exclusive_writer
from .models import (
    AuditEvent,
    HeldLink,
    Identifier,
    IdentityGuards,
    LinkDecision,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
)
from .normalize import RecordRejected
from .resolution import chunked, identifier_owners

Identity = tuple[str, str]
REASON_LENGTH = LinkDecision._meta.get_field("reason").max_length


class DecisionError(ValueError):
    """The decision cannot be taken as asked; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str = "non_field_errors"):
        super().__init__(message)
        self.field = field


@dataclass
class DecisionResult:
    decision: LinkDecision
    profiles: list[int]  # the profiles the decision's records belong to afterwards
    merges: int = 0
    held: int = 0  # links held for review in the replayed part
    records: int = 0  # raw records replayed

    def as_dict(self) -> dict:
        return {
            "decision": self.decision.pk,
            "kind": self.decision.kind,
            "identifier": {"kind": self.decision.identifier_kind, "value": self.decision.identifier_value},
            "reversed": not self.decision.active,
            "profiles": self.profiles,
            "records_replayed": self.records,
            "merges": self.merges,
            "held": self.held,
        }


def records_holding_links(identifiers: Iterable[Identity]) -> dict[int, int]:
    """Raw record id -> profile id of the linked records holding a link they did not make (held or
    kept apart, ``HeldLink``) through one of ``identifiers``."""
    wanted = set(identifiers)
    found = {}
    for chunk in chunked(sorted({value for _, value in wanted})):
        rows = HeldLink.objects.filter(value__in=chunk, raw_record__profile__isnull=False)
        for kind, value, raw_id, pid in rows.values_list("kind", "value", "raw_record", "raw_record__profile"):
            if (kind, value) in wanted:
                found[raw_id] = pid
    return found


def connected_profiles(profile_ids: Iterable[int]) -> set[int]:
    """The profiles whose records share an identifier with the given profiles' records, transitively.

    Every identifier a stored record holds is either owned by the record's profile or named in a
    ``HeldLink`` of the record (held, or detached), so walking identifiers -> owners and held links
    reaches every record that could link with these, whatever the decisions say.
    """
    profiles: set[int] = set()
    seen: set[Identity] = set()
    todo = set(profile_ids)
    while todo:
        profiles |= todo
        found: set[Identity] = set()
        for chunk in chunked(sorted(todo)):
            found.update(Identifier.objects.filter(profile_id__in=chunk).values_list("kind", "value"))
            found.update(HeldLink.objects.filter(raw_record__profile_id__in=chunk).values_list("kind", "value"))
        fresh = found - seen
        seen |= fresh
        todo = (set(identifier_owners(fresh).values()) | set(records_holding_links(fresh).values())) - profiles
    return profiles


@dataclass
class Replay:
    records: int = 0
    merges: int = 0
    held: int = 0
    profile_of: dict[int, int] = field(default_factory=dict)
    profile_before: dict[int, int] = field(default_factory=dict)  # raw record id -> its profile before


def profiles_replay(profile_ids: Iterable[int]) -> Replay:
    """Clear what the connected profiles' records built and resolve those records again (after a
    decision, or an erasure that took records out of them). Call inside a transaction."""
    profiles = sorted(connected_profiles(profile_ids))
    # The resolver's lock order: identifiers, then profiles.
    bulk.rows_matching(Identifier, ["id"], "profile", profiles, lock=True)
    bulk.rows_matching(Profile, ["id"], "id", profiles, lock=True)
    profile_before = dict(bulk.rows_matching(RawRecord, ["id", "profile"], "profile", profiles))
    record_ids = sorted(profile_before)
    held_before = _held_ids(record_ids)
    bulk.delete_rows(HeldLink, "raw_record", record_ids)
    bulk.delete_rows(ProfileMerge, "raw_record", record_ids)
    bulk.delete_rows(Identifier, "profile", profiles)
    bulk.delete_rows(ProfileInterest, "profile", profiles)
    bulk.delete_rows(Profile, "id", profiles)
    rules = IdentityRules.current()
    replay = Replay(records=len(record_ids), profile_before=profile_before)
    for chunk in chunked(record_ids, 5000):
        rows = RawRecord.objects.filter(id__in=chunk).order_by("id").values_list(*REPLAY_FIELDS)
        resolution, _ = records_replay(list(rows), rules)
        replay.merges += resolution.merges
        replay.held += resolution.held
        replay.profile_of.update(resolution.profile_of)
    # A link held again keeps its id, so a reviewer's list (or an API client's) stays valid.
    for key, new_id in _held_ids(record_ids).items():
        if key in held_before and held_before[key] != new_id:
            HeldLink.objects.filter(pk=new_id).update(id=held_before[key])
    return replay


def _held_ids(record_ids: list[int]) -> dict[tuple, int]:
    """(raw record id, kind, value, reason) -> held link id, for these records."""
    rows = bulk.rows_matching(HeldLink, ["raw_record", "kind", "value", "reason", "id"], "raw_record", record_ids)
    return {(raw_id, kind, value, reason): pk for raw_id, kind, value, reason, pk in rows}


def _decide(
    *, actor: str, summary: str, decision: Callable[[], LinkDecision], reach: Callable[[LinkDecision], set[int]]
) -> DecisionResult:
    """Record a decision (or a reversal) and replay the profiles it reaches, atomically."""

    def work() -> DecisionResult:
        taken = decision()
        reached = reach(taken)
        replay = profiles_replay(reached)
        records = [raw_id for raw_id, pid in replay.profile_before.items() if pid in reached]
        audit_record(
            actor=actor,
            action=AuditEvent.Action.LINK_DECISION,
            summary=summary,
            details={"decision": taken.pk, "profiles_before": sorted(reached), "records": replay.records},
        )
        return DecisionResult(
            decision=taken,
            profiles=sorted({replay.profile_of[r] for r in records if r in replay.profile_of}),
            merges=replay.merges,
            held=replay.held,
            records=replay.records,
        )

    with exclusive_writer("a link decision"):
        return run_with_retries(work)


def _identifiers_of(profile_id: int) -> set[Identity]:
    return set(Identifier.objects.filter(profile_id=profile_id).values_list("kind", "value"))


def _pending_locked(pk: int) -> HeldLink:
    """The held link, read again under its row lock inside the decision's transaction: a decision
    taken meanwhile by someone else is not taken twice."""
    held = HeldLink.objects.select_for_update().select_related("raw_record").filter(pk=pk).first()
    if held is None:
        raise DecisionError(f"Held link {pk} is no longer held: it was decided or replayed meanwhile.", "held_link")
    if held.reason == HeldLink.Reason.DETACHED:
        raise DecisionError("This link is not held for review: a decision already keeps it apart.", "held_link")
    if held.raw_record.profile_id is None:
        raise DecisionError("The held record links to no profile under the current rules.", "held_link")
    return held


def _held_link_decision(held: HeldLink, kind: str, actor: str, **fields) -> LinkDecision:
    """A decision on a held link: about its identifier, taken on its record and the record's profile."""
    return LinkDecision.objects.create(
        kind=kind,
        identifier_kind=held.kind,
        identifier_value=held.value,
        raw_record=held.raw_record,
        profile_id=held.raw_record.profile_id,
        actor=actor,
        **fields,
    )


def _reach_of_record(taken: LinkDecision) -> set[int]:
    """The profiles a decision on a held link touches: the record's and the identifier's owner's."""
    ident = (taken.identifier_kind, taken.identifier_value)
    owner = identifier_owners([ident]).get(ident)
    return {taken.raw_record.profile_id} | ({owner} if owner else set())


def link_approve(*, held: HeldLink, actor: str) -> DecisionResult:
    """Make a held link: the record joins the identifier's profile (a merge in the ledger)."""

    def approve() -> LinkDecision:
        current = _pending_locked(held.pk)
        return _held_link_decision(current, LinkDecision.Kind.APPROVE, actor, reason=current.detail)

    return _decide(
        actor=actor,
        summary=f"Approved held link {held.pk} (record {held.raw_record_id}, through its {held.kind})",
        decision=approve,
        reach=_reach_of_record,
    )


def link_reject(*, held: HeldLink, actor: str) -> DecisionResult:
    """Refuse a held link: the identifier is detached from the record's person, now and later."""

    def reject() -> LinkDecision:
        current = _pending_locked(held.pk)
        ident = (current.kind, current.value)
        if held_link_target(current) == current.raw_record.profile_id:
            # Detaching it from its own profile would split that profile: a split says so openly.
            raise DecisionError(
                "The record has joined that profile through other links since; split the profile to take it apart.",
                "held_link",
            )
        return _held_link_decision(
            current,
            LinkDecision.Kind.DETACH,
            actor,
            anchors=sorted(map(list, _identifiers_of(current.raw_record.profile_id) - {ident})),
            reason=f"held link rejected ({current.detail})"[:REASON_LENGTH],
        )

    return _decide(
        actor=actor,
        summary=f"Rejected held link {held.pk} (record {held.raw_record_id}, through its {held.kind})",
        decision=reject,
        reach=_reach_of_record,
    )


def profile_split(*, profile: Profile, kind: str, value: str, actor: str, reason: str = "") -> DecisionResult:
    """Detach one of a profile's identifiers: its records are resolved again without that link."""

    if len(reason) > REASON_LENGTH:
        raise DecisionError(f"The reason is longer than {REASON_LENGTH} characters.", "reason")

    def split() -> LinkDecision:
        if not Profile.objects.select_for_update().filter(pk=profile.pk).exists():
            raise DecisionError(f"Profile {profile.pk} no longer exists: merged or erased meanwhile.", "profile")
        identifiers = _identifiers_of(profile.pk)
        if not any(k == kind for k, _ in identifiers):
            raise DecisionError(f"Profile {profile.pk} holds no {kind} identifier.", "kind")
        if (kind, value) not in identifiers:
            raise DecisionError(f"Profile {profile.pk} holds no {kind} {value!r}.", "value")
        anchors = identifiers - {(kind, value)}
        if not anchors:
            raise DecisionError(
                f"{kind} {value!r} is the profile's only identifier: nothing to split it from.", "value"
            )
        return LinkDecision.objects.create(
            kind=LinkDecision.Kind.DETACH,
            identifier_kind=kind,
            identifier_value=value,
            anchors=sorted(map(list, anchors)),
            profile_id=profile.pk,
            reason=reason or "split",
            actor=actor,
        )

    return _decide(
        actor=actor,
        summary=f"Split one {kind} off profile {profile.pk}",
        decision=split,
        reach=lambda _decision: {profile.pk},
    )


def decision_reverse(*, decision: LinkDecision, actor: str) -> DecisionResult:
    """Undo a decision (re-link what a split or rejection detached; take an approval back)."""

    def reverse() -> LinkDecision:
        current = LinkDecision.objects.select_for_update().filter(pk=decision.pk).first()
        if current is None:
            raise DecisionError(f"Decision {decision.pk} no longer exists (erased with a person).", "decision")
        if not current.active:
            raise DecisionError(
                f"Decision {current.pk} was already reversed on {current.reversed_at:%Y-%m-%d}.", "decision"
            )
        current.reversed_at = timezone.now()
        current.reversed_by = actor
        current.save(update_fields=["reversed_at", "reversed_by"])
        return current

    def reach(taken: LinkDecision) -> set[int]:
        idents = {(taken.identifier_kind, taken.identifier_value), *map(tuple, taken.anchors)}
        kept_apart = HeldLink.objects.filter(decision=taken, raw_record__profile__isnull=False)
        record = {taken.raw_record.profile_id} if taken.raw_record and taken.raw_record.profile_id else set()
        return (
            set(identifier_owners(idents).values())
            | set(kept_apart.values_list("raw_record__profile", flat=True))
            | record
        )

    verb = "Re-linked" if decision.kind == LinkDecision.Kind.DETACH else "Took back the approval of"
    return _decide(
        actor=actor,
        summary=f"{verb} one {decision.identifier_kind} (decision {decision.pk})",
        decision=reverse,
        reach=reach,
    )


GUARD_FIELDS = ("max_cookies_per_email", "max_cookies_per_phone", "max_cookies_to_merge")


def guards_change(*, actor: str, **caps: int | None) -> IdentityGuards:
    """New guards, in force from the next raw record on (records already stored keep the guards
    of their arrival, also when resolved again); audited. ``caps`` are ``GUARD_FIELDS``, None: off."""
    if set(caps) != set(GUARD_FIELDS):
        raise ValueError(f"Give exactly {', '.join(GUARD_FIELDS)}.")
    with transaction.atomic():
        # The next id the raw log hands out: records stored before keep the guards they met.
        [effective_from] = bulk.allocate_ids(RawRecord, 1)
        guards = IdentityGuards.objects.create(effective_from_record=effective_from, changed_by=actor, **caps)
        audit_record(
            actor=actor,
            action=AuditEvent.Action.GUARDS_CHANGED,
            summary=f"Identity guards from record {effective_from}: "
            + ", ".join(f"{name.replace('_', ' ')} {caps[name] or 'off'}" for name in GUARD_FIELDS),
            details={**caps, "effective_from_record": effective_from},
        )
    return guards


def pending_links():
    """The review queue, oldest first, with what the admin and the API show of each."""
    return HeldLink.objects.pending().with_target().select_related("raw_record").order_by("held_at", "id")


def held_link_target(held: HeldLink) -> int | None:
    """The profile the held link would have joined: the identifier's owner now."""
    return identifier_owners([(held.kind, held.value)]).get((held.kind, held.value))


# --- Explain -------------------------------------------------------------------------------------


@dataclass
class LinkStep:
    """What one raw record did to the profile: founded it, joined it through identifiers, merged
    other profiles into it, brought new identifiers, or was kept from linking."""

    record: int
    created_at: object
    received_at: object
    source: str
    outcome: str
    joined_via: list[Identity] = field(default_factory=list)
    added: list[Identity] = field(default_factory=list)
    merged: list[dict] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)


@dataclass
class Explanation:
    profile: int
    records: int
    steps: list[LinkStep]
    decisions: list[LinkDecision]
    truncated: bool = False


def profile_explain(profile: Profile, *, limit: int = 500) -> Explanation:
    """The chain of links that made ``profile``, record by record in arrival order (the first
    ``limit`` records), and the decisions that shaped it."""
    records = list(
        RawRecord.objects.filter(profile=profile)
        .order_by("id")
        .values_list("id", "data", "created_at", "received_at", "source", "outcome")[: limit + 1]
    )
    truncated = len(records) > limit
    records = records[:limit]
    record_ids = [r[0] for r in records]
    owned = {
        (kind, value): first for kind, value, first in profile.identifiers.values_list("kind", "value", "first_record")
    }
    merges = defaultdict(list)
    for chunk in chunked(record_ids):
        for row in ProfileMerge.objects.filter(raw_record_id__in=chunk).values(
            "raw_record_id", "survivor_id", "absorbed_id", "identifier_kind", "identifier_value"
        ):
            merges[row["raw_record_id"]].append(
                {
                    "absorbed": row["absorbed_id"],
                    "into": row["survivor_id"],
                    "via": (row["identifier_kind"], row["identifier_value"]),
                }
            )
    held = defaultdict(list)
    for chunk in chunked(record_ids):
        for link in HeldLink.objects.filter(raw_record_id__in=chunk):
            held[link.raw_record_id].append(
                {
                    "identifier": (link.kind, link.value),
                    "reason": link.reason,
                    "detail": link.detail or "kept apart by a decision",
                    "decision": link.decision_id,
                    "held_link": link.pk if link.reason != HeldLink.Reason.DETACHED else None,
                }
            )
    rules = IdentityRules.current()
    steps = []
    for raw_id, data, created_at, received_at, source, outcome in records:
        try:
            identifiers = rules.parse(data).identifiers
        except RecordRejected:
            identifiers = ()
        kept_apart = {h["identifier"] for h in held[raw_id]}
        steps.append(
            LinkStep(
                record=raw_id,
                created_at=created_at,
                received_at=received_at,
                source=source,
                outcome=outcome,
                joined_via=[i for i in identifiers if i in owned and i not in kept_apart and owned[i] != raw_id],
                added=[i for i in identifiers if i in owned and owned[i] == raw_id],
                merged=merges[raw_id],
                held=held[raw_id],
            )
        )
    decision_ids = {h["decision"] for links in held.values() for h in links if h["decision"]}
    decision_ids |= set(LinkDecision.objects.filter(profile_id=profile.pk).values_list("id", flat=True))
    decision_ids |= {pk for (pk,) in bulk.rows_matching(LinkDecision, ["id"], "raw_record", record_ids)}
    decisions = list(LinkDecision.objects.filter(id__in=sorted(decision_ids)).order_by("id"))
    return Explanation(
        profile=profile.pk, records=len(record_ids), steps=steps, decisions=decisions, truncated=truncated
    )
