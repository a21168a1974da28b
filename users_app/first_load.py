"""First load: resolve a whole import or rebuild into an empty profile store in memory.

When no profile, identifier, erasure or link policy exists yet (a first import, or a rebuild,
which clears the profiles), everything ``resolution.resolve_records`` reads from the database before
each batch is known in memory: who owns each identifier, each profile's traits. ``FirstLoad``
replays records with the same rules (a record founds, joins or merges into the profile first seen
earliest; per trait the latest record wins; interests add up; every merge goes into the ledger) and
keeps per profile only what the rules need. Each derived table is written once at the end by
``finish``, with COPY: no lookups, no row updates, no hand-over of a merged profile's rows batch by
batch. The records of a batch point at their profile as of that batch; ``finish`` repoints the
few whose profile was merged later.

The price is memory that grows with the load (the identifier map and every profile's traits), so
only loads of up to ``settings.FIRST_LOAD_MAX_RECORDS`` records take this road.
tests/test_first_load.py holds it to the batch resolver's results, table by table.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from . import bulk
from .models import Identifier, IdentifierKind, Profile, ProfileInterest, ProfileMerge, RawRecord, Suppression
from .normalize import TRAIT_COLUMNS
from .resolution import (
    EPOCH,
    MICROSECOND,
    PROFILE_TRAIT_COLUMNS,
    PROFILE_WRITE_FIELDS,
    LinkPolicy,
    Resolution,
    StoredRecord,
    empty_profile_values,
    interest_ids_for,
)

COLUMN_POSITIONS = {column: position for position, column in enumerate(PROFILE_TRAIT_COLUMNS)}
# Each trait's columns as positions in a flat tuple of PROFILE_TRAIT_COLUMNS.
TRAIT_POSITIONS = tuple(
    (trait, tuple(COLUMN_POSITIONS[column] for column in columns)) for trait, columns in TRAIT_COLUMNS.items()
)
EMPTY_VALUES = tuple(empty_profile_values().values())


def first_load_possible(records: int, *, clearing: bool = False) -> bool:
    """Whether a load of about ``records`` records can take the first-load road: nothing in the
    profile store (or ``clearing``: the caller, a rebuild, empties it first), no erasure, no link policy."""
    return (
        records <= settings.FIRST_LOAD_MAX_RECORDS
        and (clearing or not (Profile.objects.exists() or Identifier.objects.exists()))
        and not Suppression.objects.exists()
        and LinkPolicy.current().holds_nothing()
    )


class _Profile:
    """A profile as the rules see it: first and last seen, its traits with the stamp of the record
    that set each, its interests and cookies. Until a second record joins (most profiles never see
    one), it keeps its founding record's flat values and no per-trait stamps: each is the founder's
    (created_at, id), which are the profile's ``first`` and ``id``."""

    __slots__ = ("cookies", "first", "id", "interests", "last", "stamps", "values")

    def __init__(self, pid: int, created: int, values: tuple, interests: tuple[str, ...]):
        self.id = pid
        self.first = self.last = created  # in microseconds since the epoch
        self.values = values  # flat PROFILE_TRAIT_COLUMNS, None where the trait is unknown
        self.stamps: dict[str, tuple[int, int]] | None = None
        self.interests: tuple[str, ...] | set[str] = interests
        self.cookies = 0

    def trait_stamps(self) -> dict[str, tuple[int, int]]:
        """Per trait, the stamp of the record that set it (kept from here on)."""
        if self.stamps is None:
            self.stamps = _stamped(self.values, (self.first, self.id))
            self.values = list(self.values)
            self.interests = set(self.interests)
        return self.stamps

    def take(self, stamps: dict[str, tuple[int, int]], values: Sequence) -> None:
        """Each trait of ``values`` stamped later than this profile's own."""
        own = self.trait_stamps()
        for trait, positions in TRAIT_POSITIONS:
            stamp = stamps.get(trait)
            if stamp is not None and (trait not in own or stamp > own[trait]):
                for position in positions:
                    self.values[position] = values[position]
                own[trait] = stamp

    def apply(self, stamp: tuple[int, int], values: tuple, interests: Sequence[str]) -> None:
        self.take(_stamped(values, stamp), values)
        self.first = min(self.first, stamp[0])
        self.last = max(self.last, stamp[0])
        self.interests.update(interests)

    def absorb(self, other: _Profile) -> None:
        self.take(other.trait_stamps(), other.values)
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        self.interests.update(other.interests)
        self.cookies += other.cookies

    def row(self, now: dt.datetime) -> tuple:
        """The profile's values in the order of ``("id", *PROFILE_WRITE_FIELDS)``."""
        values = self.values
        stamps = self.stamps if self.stamps is not None else _stamped(values, (self.first, self.id))
        return (
            self.id,
            *(EMPTY_VALUES[i] if value is None else value for i, value in enumerate(values)),
            EPOCH + self.first * MICROSECOND,
            EPOCH + self.last * MICROSECOND,
            self.cookies,
            stamps,  # JSON has no tuples: each stamp is stored as a [created_at, raw record id] list
            now,
        )


def _stamped(values: Sequence, stamp: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """The traits ``values`` holds, each with ``stamp``."""
    return {trait: stamp for trait, (first, *_) in TRAIT_POSITIONS if values[first] is not None}


def _flat(traits: dict[str, dict[str, object]]) -> tuple:
    """A parsed record's traits as values in the order of PROFILE_TRAIT_COLUMNS (None: unknown)."""
    values = [None] * len(PROFILE_TRAIT_COLUMNS)
    for columns in traits.values():
        for column, value in columns.items():
            values[COLUMN_POSITIONS[column]] = value
    return tuple(values)


class FirstLoad:
    """The resolver of a first load: ``resolve`` each batch in arrival order, then ``finish`` once,
    inside the same transaction."""

    def __init__(self) -> None:
        # kind -> value -> the raw record that brought the identifier. That record founded a
        # profile (whose id is its own) or joined one (``joined``): one int per identifier.
        self.owners: dict[str, dict[str, int]] = {kind: {} for kind in IdentifierKind.values}
        self.joined: dict[int, int] = {}  # raw record that joined a profile -> that profile, as of then
        self.profiles: dict[int, _Profile] = {}  # the profiles not merged away, by id
        self.parent: dict[int, int] = {}  # merged-away profile -> the one it went into
        self.ledger: list[tuple] = []  # ProfileMerge rows
        self.labels: dict[str, str] = {}  # interest key -> the name the first record gave it
        self.interest_sets: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per combination

    def find(self, pid: int) -> int:
        parent = self.parent
        while pid in parent:
            pid = parent[pid]
        return pid

    def owner(self, raw_id: int) -> int:
        """The profile an identifier brought by the record ``raw_id`` belongs to now."""
        return self.find(self.joined.get(raw_id, raw_id))

    def resolve(self, records: Sequence[StoredRecord]) -> Resolution:
        """``resolution.resolve_records`` for a store that held nothing before this load. The
        profile ids it gives are the records' profiles as of this batch (``finish`` repoints them)."""
        result = Resolution(profile_of={}, outcome_of={})
        profiles, owners = self.profiles, self.owners
        now = timezone.now()
        merges_before = len(self.ledger)
        for record in sorted(records, key=lambda r: r.raw_id):
            parsed, raw_id = record.parsed, record.raw_id
            created = (parsed.created_at - EPOCH) // MICROSECOND
            touched: dict[int, tuple[str, str]] = {}
            for kind, value in parsed.identifiers:
                brought_by = owners[kind].get(value)
                if brought_by is not None and (target := self.owner(brought_by)) not in touched:
                    touched[target] = (kind, value)
            values = _flat(parsed.traits)
            for key, label in parsed.interests.items():
                self.labels.setdefault(key, label)
            if not touched:
                interests = tuple(parsed.interests)
                state = profiles[raw_id] = _Profile(
                    raw_id, created, values, self.interest_sets.setdefault(interests, interests)
                )
                result.profiles_created += 1
                result.outcome_of[raw_id] = "created"
            else:
                pid = min(touched, key=lambda p: (profiles[p].first, p))
                state = profiles[pid]
                for other, (kind, value) in touched.items():
                    if other != pid:
                        state.absorb(profiles.pop(other))
                        self.parent[other] = pid
                        self.ledger.append((pid, other, kind, value, raw_id, now))
                result.outcome_of[raw_id] = "merged" if len(touched) > 1 else "updated"
                state.apply((created, raw_id), values, parsed.interests)
                self.joined[raw_id] = pid
            for kind, value in parsed.identifiers:
                if value not in owners[kind]:
                    owners[kind][value] = raw_id
                    if kind == IdentifierKind.COOKIE:
                        state.cookies += 1
            result.profile_of[raw_id] = state.id
        result.merges = len(self.ledger) - merges_before
        return result

    def finish(self) -> None:
        """Write profiles, identifiers, interests and the ledger; point every raw record at the
        profile its own went into."""
        now = timezone.now()
        bulk.insert_rows(Profile, ["id", *PROFILE_WRITE_FIELDS], (state.row(now) for state in self.profiles.values()))
        bulk.insert_rows(
            Identifier,
            ["kind", "value", "profile", "first_record"],
            (
                (kind, value, self.owner(raw_id), raw_id)
                for kind, owners in self.owners.items()
                for value, raw_id in owners.items()
            ),
        )
        if self.labels:
            interest_ids = interest_ids_for(set(self.labels), self.labels)
            bulk.insert_rows(
                ProfileInterest,
                ["profile", "interest"],
                ((pid, interest_ids[key]) for pid, state in self.profiles.items() for key in state.interests),
            )
        bulk.insert_rows(
            ProfileMerge,
            ["survivor_id", "absorbed_id", "identifier_kind", "identifier_value", "raw_record", "merged_at"],
            self.ledger,
        )
        bulk.replace_values(RawRecord, "profile", {pid: self.find(pid) for pid in self.parent})


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a first load holds its millions of objects: each full
    collection walks them all, a sixth of the load's time, and a load makes no cycles to collect."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
