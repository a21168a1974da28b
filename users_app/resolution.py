"""Identity resolution: which profile each raw record belongs to, and what that profile says.

The one resolver behind CSV import, API ingestion and rebuild. It takes a batch of stored raw
records (already normalized) and replays them one by one, in arrival order, against the
profiles that own their identifiers:

- a record that matches nobody founds a profile whose id is the record's id;
- a record that matches one profile joins it;
- a record that matches several merges them into the one first seen (earliest ``first_seen``,
  then lowest id), and the merge goes into the ledger (``ProfileMerge``);
- a record holding an identifier of a person erased on request (``users_app.suppression``) is
  dropped: it joins and founds nothing, and the caller neither stores nor links it;
- the link policy (``LinkPolicy``: the guards and people's decisions, ``users_app.governance``)
  can keep a record from linking through an identifier: a link a guard refuses is held for review,
  and an identifier detached from a person's other identifiers does not link their records. Either
  way the record goes on without that link (to the profiles its other identifiers reach, or a new
  one) and a ``HeldLink`` row says so. Links are weighed in the order cookie, email, phone, so a
  record stays with the profile of the device that sent it.

Each trait keeps the ``(created_at, raw record id)`` of the record that set it, so the latest
record wins whatever order records arrive in, and an empty value never erases a known one.
Replaying in memory and writing the batch's outcome at the end gives exactly what one-by-one
ingestion gives, at batch speed.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import bulk
from .models import (
    BlockedIdentifier,
    HeldLink,
    Identifier,
    IdentifierKind,
    IdentityGuards,
    Interest,
    LinkDecision,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
)
from .normalize import TRAIT_COLUMNS, ParsedRecord
from .suppression import suppressed_identifiers

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A trait's stamp (``trait_sources``) gives the record's created_at in microseconds since EPOCH.
MICROSECOND = dt.timedelta(microseconds=1)
PROFILE_TRAIT_COLUMNS = tuple(column for columns in TRAIT_COLUMNS.values() for column in columns)
# The profile columns the resolver writes, in the order of ``ProfileState.row`` after the id.
PROFILE_WRITE_FIELDS = (
    *PROFILE_TRAIT_COLUMNS,
    "first_seen",
    "last_seen",
    "cookie_count",
    "trait_sources",
    "updated_at",
)
# Well below SQLite's 999 bound parameters per statement.
QUERY_CHUNK = 900


class ResolutionConflict(Exception):
    """A concurrent writer changed the profiles this batch read; the transaction should be retried."""


@dataclass(frozen=True)
class StoredRecord:
    """A raw record already saved, with its normalized values."""

    raw_id: int
    parsed: ParsedRecord


@dataclass
class ProfileState:
    id: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    values: dict[str, object]
    sources: dict[str, list[int]]
    interests: set[str]
    cookie_count: int = 0
    stored_interests: set[str] = field(default_factory=set)
    is_new: bool = False
    changed: bool = False

    @classmethod
    def from_profile(cls, profile: Profile, interests: set[str]) -> ProfileState:
        return cls(
            id=profile.id,
            first_seen=profile.first_seen,
            last_seen=profile.last_seen,
            values={column: getattr(profile, column) for column in PROFILE_TRAIT_COLUMNS},
            sources=dict(profile.trait_sources),
            interests=set(interests),
            stored_interests=set(interests),
            cookie_count=profile.cookie_count,
        )

    def row(self, now: dt.datetime) -> tuple:
        """The profile's values in the order of ``("id", *PROFILE_WRITE_FIELDS)``."""
        values = self.values
        return (
            self.id,
            *(values[column] for column in PROFILE_TRAIT_COLUMNS),
            self.first_seen,
            self.last_seen,
            self.cookie_count,
            self.sources,
            now,
        )

    def apply(self, record: StoredRecord) -> None:
        parsed = record.parsed
        stamp = [(parsed.created_at - EPOCH) // MICROSECOND, record.raw_id]
        for trait, columns in parsed.traits.items():
            if trait not in self.sources or stamp > self.sources[trait]:
                self.values.update(columns)
                self.sources[trait] = stamp
        self.first_seen = min(self.first_seen, parsed.created_at)
        self.last_seen = max(self.last_seen, parsed.created_at)
        self.interests.update(parsed.interests)
        self.changed = True

    def absorb(self, other: ProfileState) -> None:
        for trait, stamp in other.sources.items():
            if trait not in self.sources or stamp > self.sources[trait]:
                self.values.update({column: other.values[column] for column in TRAIT_COLUMNS[trait]})
                self.sources[trait] = stamp
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.interests |= other.interests
        self.cookie_count += other.cookie_count
        self.changed = True


def empty_profile_values() -> dict[str, object]:
    return {column: None if column in ("age", "income_min", "income_max") else "" for column in PROFILE_TRAIT_COLUMNS}


@dataclass
class Resolution:
    profile_of: dict[int, int]  # raw record id -> profile id
    outcome_of: dict[int, str]  # raw record id -> "created" | "updated" | "merged"
    profiles_created: int = 0
    merges: int = 0
    # Raw record ids dropped because they hold a suppressed identifier (in neither map above).
    suppressed: set[int] = field(default_factory=set)
    held: int = 0  # links held for review by a guard


Identity = tuple[str, str]


@dataclass(frozen=True)
class LinkPolicy:
    """The guards and the decisions in force, read once per batch inside its transaction."""

    # (first raw record id, {identifier kind: cookies per profile}, merge guard), by first record id
    guards: tuple[tuple[int, dict[str, int], int | None], ...] = ()
    approved: frozenset[tuple[int, str, str]] = frozenset()  # (raw record id, kind, value)
    # identifier -> [(decision id, the identifiers it is kept apart from)]
    detachments: dict[Identity, list[tuple[int, frozenset[Identity]]]] = field(default_factory=dict)

    @classmethod
    def current(cls) -> LinkPolicy:
        # One statement for the guards and the decisions in force: every single-record ingest
        # reads them, and two ORM queries cost it a third of its time.
        quote = connection.ops.quote_name
        guards, decisions = IdentityGuards._meta, LinkDecision._meta
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 'guards', {quote('effective_from_record')}, {quote('max_cookies_per_email')}, "
                f"{quote('max_cookies_per_phone')}, {quote('max_cookies_to_merge')}, CAST(id AS TEXT), NULL "
                f"FROM {quote(guards.db_table)} "
                f"UNION ALL SELECT {quote('kind')}, id, {quote('raw_record_id')}, NULL, NULL, "
                f"{quote('identifier_kind')} || ':' || {quote('identifier_value')}, {quote('anchors')} "
                f"FROM {quote(decisions.db_table)} WHERE {quote('reversed_at')} IS NULL ORDER BY 2",
            )
            rows = cursor.fetchall()
        read_json = decisions.get_field("anchors").from_db_value
        versions = []
        approved = set()
        detachments: dict[Identity, list[tuple[int, frozenset[Identity]]]] = defaultdict(list)
        for kind, pk, raw_id, phone_cap, merge_cap, identifier, anchors in rows:
            if kind == "guards":  # the row's columns: effective from, email cap, ..., its id as text
                effective_from, email_cap, row_id = pk, raw_id, int(identifier)
                caps = {IdentifierKind.EMAIL: email_cap, IdentifierKind.PHONE: phone_cap}
                # Of two changes made before the same record, the later one wins.
                versions.append(((effective_from, row_id), {k: cap for k, cap in caps.items() if cap}, merge_cap))
                continue
            ident = tuple(identifier.split(":", 1))
            if kind == LinkDecision.Kind.APPROVE:
                approved.add((raw_id, *ident))
            else:
                anchors = read_json(anchors, None, connection)
                detachments[ident].append((pk, frozenset(tuple(a) for a in anchors)))
        versions.sort(key=lambda version: version[0])
        return cls(
            guards=tuple((start, caps, merge) for (start, _), caps, merge in versions),
            approved=frozenset(approved),
            detachments=dict(detachments),
        )

    def holds_nothing(self) -> bool:
        """No decision in force and no guard with a cap: no link would be held or detached."""
        return not self.approved and not self.detachments and not any(caps or merge for _, caps, merge in self.guards)

    def guards_for(self, raw_id: int) -> tuple[dict[str, int], int | None]:
        """The guards in force when the record arrived: the last change made before it."""
        index = bisect.bisect_right(self.guards, raw_id, key=lambda version: version[0]) - 1
        return (self.guards[index][1], self.guards[index][2]) if index >= 0 else ({}, None)

    def detached(self, identifiers: Sequence[Identity]) -> dict[Identity, int]:
        """The record's identifiers that must not link it, each with the decision that says so."""
        if not self.detachments:
            return {}
        found = {}
        for ident in identifiers:
            for decision_id, anchors in self.detachments.get(ident, ()):
                if any(other in anchors for other in identifiers if other != ident):
                    found[ident] = decision_id
                    break
        return found

    def hold(self, raw_id: int, via: Identity, target: ProfileState, group: list[ProfileState], new_cookies: int):
        """Why linking the record through ``via`` to ``target`` (besides ``group``, the profiles it
        already joins) would be held, as ``(reason, detail)``; None when no guard objects. An
        approved link (``approved``) is made all the same."""
        caps, limit = self.guards_for(raw_id)
        cap = caps.get(via[0])
        if cap:
            cookies = target.cookie_count + sum(s.cookie_count for s in group) + new_cookies
            if cookies > cap and cookies > target.cookie_count:
                return (
                    HeldLink.Reason.COOKIE_CAP,
                    f"would put {cookies} cookies in one profile through this {via[0]}; the cap is {cap}",
                )
        if limit and target.cookie_count > limit:
            large = [s for s in group if s.cookie_count > limit]
            if large:
                return (
                    HeldLink.Reason.MERGE_GUARD,
                    f"would merge profiles holding {large[0].cookie_count} and {target.cookie_count} cookies; "
                    f"the guard holds merges of two profiles over {limit}",
                )
        return None


def load_blocklist() -> frozenset[tuple[str, str]]:
    """(kind, value) pairs that never link anyone; kind ``*`` blocks a value of any kind."""
    configured = {("*", value) for value in settings.IDENTIFIER_BLOCKLIST}
    # Written out for the same reason as ``LinkPolicy.current``: every single-record ingest reads it.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT kind, value FROM {connection.ops.quote_name(BlockedIdentifier._meta.db_table)}")
        stored = {(kind or "*", value) for kind, value in cursor.fetchall()}
    return frozenset(configured | stored)


def chunked(items: Sequence, size: int = QUERY_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lock(queryset):
    # Row locks make concurrent ingests touching one person queue up on PostgreSQL; SQLite
    # already serializes writers (transactions there begin IMMEDIATE).
    return queryset.select_for_update() if connection.features.has_select_for_update else queryset


def identifier_owners(identifiers: Iterable[tuple[str, str]], *, lock: bool = False) -> dict[tuple[str, str], int]:
    """The profile owning each identifier (those no one owns are left out); ``lock`` takes the
    identifier rows' locks, as the resolver does before reading the profiles."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, value in identifiers:
        by_kind[kind].append(value)
    owners = {}
    for kind, values in by_kind.items():
        rows = bulk.rows_matching(Identifier, ["value", "profile"], "value", sorted(values), kind=kind, lock=lock)
        owners.update({(kind, value): pid for value, pid in rows})
    return owners


def _load_states(profile_ids: set[int]) -> dict[int, ProfileState]:
    ids = sorted(profile_ids)
    interests: dict[int, set[str]] = defaultdict(set)
    profiles = []
    for chunk in chunked(ids):
        profiles.extend(_lock(Profile.objects.filter(id__in=chunk).order_by("id")))
        for pid, key in ProfileInterest.objects.filter(profile_id__in=chunk).values_list("profile_id", "interest__key"):
            interests[pid].add(key)
    if len(profiles) != len(ids):
        raise ResolutionConflict("a profile was merged away by a concurrent writer")
    return {p.id: ProfileState.from_profile(p, interests[p.id]) for p in profiles}


def resolve_records(records: Sequence[StoredRecord]) -> Resolution:
    """Resolve raw records (stored, or with ids allocated and stored by the caller in the same
    transaction) into profiles; write profiles, identifiers, interests and the ledger. The caller
    records ``profile_of`` and ``outcome_of`` on the raw records, and does not keep (or link) the
    records in ``suppressed``. Call inside a transaction."""
    records = sorted(records, key=lambda r: r.raw_id)
    identifiers = {ident for r in records for ident in r.parsed.identifiers}
    owners = identifier_owners(identifiers, lock=True)
    # Looked up once the owners' rows are locked: an erasure holds those locks until it commits
    # its suppressions, so this lookup (a new statement) sees them and a record racing the
    # erasure cannot bring the person back.
    suppressed = suppressed_identifiers(identifiers)
    dropped = {r.raw_id for r in records if not suppressed.isdisjoint(r.parsed.identifiers)} if suppressed else set()
    if dropped:
        records = [r for r in records if r.raw_id not in dropped]
    states = _load_states(set(owners.values()))
    # Read after the locks, like the suppressions: a decision replays the profiles it touches while
    # holding their rows, so a batch that waited for it sees it.
    policy = LinkPolicy.current()
    parent: dict[int, int] = {}

    def find(pid: int) -> int:
        while pid in parent:
            pid = parent[pid]
        return pid

    result = Resolution(profile_of={}, outcome_of={}, suppressed=dropped)
    new_identifiers: dict[tuple[str, str], int] = {}
    ledger: list[tuple] = []  # ProfileMerge rows
    held: list[tuple] = []  # HeldLink rows
    now = timezone.now()
    for record in records:
        identifiers = record.parsed.identifiers
        detached = policy.detached(identifiers)
        for (kind, value), decision_id in detached.items():
            held.append((record.raw_id, kind, value, HeldLink.Reason.DETACHED, "", decision_id, now))
        linking = [ident for ident in identifiers if ident not in detached]
        new_cookies = sum(1 for ident in linking if ident[0] == IdentifierKind.COOKIE and ident not in owners)
        touched: dict[int, tuple[str, str]] = {}
        approved: list[tuple[str, str]] = []  # links made only because a person approved them
        for ident in linking:
            if ident not in owners or (target := find(owners[ident])) in touched:
                continue
            refusal = policy.hold(record.raw_id, ident, states[target], [states[p] for p in touched], new_cookies)
            if refusal and (record.raw_id, *ident) not in policy.approved:
                held.append((record.raw_id, *ident, *refusal, None, now))
                result.held += 1
                continue
            touched[target] = ident
            if refusal:
                approved.append(ident)
        if not touched:
            created = record.parsed.created_at
            state = ProfileState(
                id=record.raw_id,
                first_seen=created,
                last_seen=created,
                values=empty_profile_values(),
                sources={},
                interests=set(),
                is_new=True,
            )
            states[state.id] = state
            result.profiles_created += 1
            result.outcome_of[record.raw_id] = "created"
        else:
            survivor = min(touched, key=lambda pid: (states[pid].first_seen, pid))
            state = states[survivor]
            for pid, via in touched.items():
                if pid == survivor:
                    continue
                state.absorb(states[pid])
                parent[pid] = survivor
                ledger.append((survivor, pid, via[0], via[1], record.raw_id, now))
            result.outcome_of[record.raw_id] = "merged" if len(touched) > 1 else "updated"
            if approved and len(approved) == len(touched):
                # Without the approval the record would have founded its own profile (and did,
                # until approved): the ledger says that profile went into the one it joined.
                ledger.append((state.id, record.raw_id, *approved[0], record.raw_id, now))
        state.apply(record)
        for ident in linking:
            if ident not in owners:
                owners[ident] = state.id
                new_identifiers[ident] = record.raw_id
                if ident[0] == IdentifierKind.COOKIE:
                    state.cookie_count += 1
        result.profile_of[record.raw_id] = state.id

    result.profile_of = {raw_id: find(pid) for raw_id, pid in result.profile_of.items()}
    result.merges = len(ledger)
    # A new interest is named by the first record that names it, whatever the batches.
    labels: dict[str, str] = {}
    for r in records:
        for key, label in r.parsed.interests.items():
            labels.setdefault(key, label)
    _write(states, parent, find, owners, new_identifiers, ledger, labels)
    bulk.insert_rows(HeldLink, ["raw_record", "kind", "value", "reason", "detail", "decision", "held_at"], held)
    return result


def _write(states, parent, find, owners, new_identifiers, ledger, labels) -> None:
    now = timezone.now()
    survivors = [s for pid, s in states.items() if pid not in parent]
    bulk.insert_rows(Profile, ["id", *PROFILE_WRITE_FIELDS], (s.row(now) for s in survivors if s.is_new))
    # Profiles that existed before this batch and were merged away: hand their rows over first.
    absorbed_by: dict[int, list[int]] = defaultdict(list)
    for pid, state in states.items():
        if pid in parent and not state.is_new:
            absorbed_by[find(pid)].append(pid)
    absorbed = [pid for group in absorbed_by.values() for pid in group]
    for survivor, group in absorbed_by.items():
        Identifier.objects.filter(profile_id__in=group).update(profile_id=survivor)
        RawRecord.objects.filter(profile_id__in=group).update(profile_id=survivor)
    for chunk in chunked(absorbed):
        ProfileInterest.objects.filter(profile_id__in=chunk).delete()
        Profile.objects.filter(id__in=chunk).delete()

    bulk.update_rows(Profile, PROFILE_WRITE_FIELDS, [s.row(now) for s in survivors if s.changed and not s.is_new])
    _write_interests(survivors, labels)
    bulk.insert_rows(
        Identifier,
        ["kind", "value", "profile", "first_record"],
        ((kind, value, find(owners[(kind, value)]), raw_id) for (kind, value), raw_id in new_identifiers.items()),
    )
    bulk.insert_rows(
        ProfileMerge,
        ["survivor_id", "absorbed_id", "identifier_kind", "identifier_value", "raw_record", "merged_at"],
        ledger,
    )


def _write_interests(survivors: list[ProfileState], labels: dict[str, str]) -> None:
    wanted = {s.id: new for s in survivors if (new := s.interests - s.stored_interests)}
    if not wanted:
        return
    interest_ids = interest_ids_for(set().union(*wanted.values()), labels)
    bulk.insert_rows(
        ProfileInterest,
        ["profile", "interest"],
        ((pid, interest_ids[key]) for pid, keys in wanted.items() for key in keys),
    )


def interest_ids_for(keys: set[str], labels: dict[str, str]) -> dict[str, int]:
    """Interest ids by key, creating the interests not seen before."""
    # bulk.rows_matching, not the ORM: every single-record ingest looks its interests up.
    found = dict(bulk.rows_matching(Interest, ["key", "id"], "key", sorted(keys)))
    missing = keys - found.keys()
    if missing:
        Interest.objects.bulk_create(
            [Interest(key=key, name=labels.get(key, key)) for key in sorted(missing)], ignore_conflicts=True
        )
        found.update(bulk.rows_matching(Interest, ["key", "id"], "key", sorted(missing)))
    return found
