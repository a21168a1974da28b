"""Identity clusters: profiles that many cookies were glued into, and the values that glued them.

A shared value (an ``info@`` mailbox, a test email, a shop's phone) links every record carrying it,
so strangers end up in one profile. These reads find such profiles and values so that a marketer
can block them; ``identifier_block`` adds a value to the block list (``BlockedIdentifier``), which
the resolver applies to new records at once and to existing profiles at the next
``manage.py rebuild_profiles``.

How many cookies a value joins (``cookies`` below) is defined as: the number of distinct cookies on
the raw records that carry the value, both read as the resolver reads them (``normalize.py``). It
is at most the ``cookie_count`` of the profile holding the value, which also counts the cookies
reached through the profile's other values. Every read here is a fixed number of queries and reads
only the raw records of the profiles it shows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.admin.models import ADDITION, LogEntry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count

from .models import BlockedIdentifier, Identifier, Profile, RawRecord
from .normalize import (
    COOKIE,
    EMAIL,
    IDENTIFIER_FIELDS,
    IDENTIFIER_NORMALIZERS,
    PHONE,
    FieldWarning,
    is_blocked,
    link_refusal,
    record_fields,
)
from .resolution import load_blocklist

# (lowest, highest) cookie counts per histogram bar; None is open-ended. The tail is bucketed
# because a handful of profiles with 37 or 212 cookies would otherwise each get a bar of their own.
COOKIE_COUNT_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 0),
    (1, 1),
    (2, 2),
    (3, 3),
    (4, 4),
    (5, 5),
    (6, 10),
    (11, 20),
    (21, 50),
    (51, None),
)

RECORD_CHUNK = 2000


@dataclass(frozen=True)
class ClusterValue:
    """An email or phone of a cluster."""

    kind: str
    value: str
    cookies: int  # distinct cookies on the profile's raw records that carry the value
    links: bool  # an identifier of the profile; False for a phone kept as a trait only
    blocked: bool


@dataclass(frozen=True)
class Cluster:
    profile_id: int
    cookie_count: int
    emails: list[ClusterValue] = field(default_factory=list)
    phones: list[ClusterValue] = field(default_factory=list)

    @property
    def values(self) -> list[ClusterValue]:
        return [*self.emails, *self.phones]


@dataclass(frozen=True)
class SharedIdentifier:
    kind: str
    value: str
    cookies: int  # distinct cookies on the raw records carrying it: the cookies it joins directly
    profile_id: int
    profile_cookies: int  # cookies of the profile holding it: the upper bound of ``cookies``
    blocked: bool


@dataclass(frozen=True)
class BlockOutcome:
    kind: str
    value: str  # normalized, as stored and as the resolver compares it
    created: bool  # False: it was already blocked (in the table or in IDENTIFIER_BLOCKLIST)


def cookies_per_profile_histogram() -> list[tuple[str, int]]:
    """(cookie count bucket, profiles) for every bucket of ``COOKIE_COUNT_BUCKETS``, in order: ("6-10", 42)."""
    # COUNT(*) grouped by the indexed column only: PostgreSQL can answer from the index alone.
    per_count = Profile.objects.order_by().values_list("cookie_count").annotate(profiles=Count("*"))
    bars = dict.fromkeys(COOKIE_COUNT_BUCKETS, 0)
    for cookie_count, profiles in per_count:
        for lowest, highest in COOKIE_COUNT_BUCKETS:
            if lowest <= cookie_count and (highest is None or cookie_count <= highest):
                bars[lowest, highest] += profiles
                break
    return [(_bucket_label(lowest, highest), profiles) for (lowest, highest), profiles in bars.items()]


def _bucket_label(lowest: int, highest: int | None) -> str:
    if highest is None:
        return f"{lowest}+"
    return str(lowest) if lowest == highest else f"{lowest}-{highest}"


def largest_clusters(limit: int = 50) -> list[Cluster]:
    """The ``limit`` profiles with the most cookies (two or more), most first, with their emails and phones.

    Emails and phones are the profile's identifiers; while phones do not link records
    (``IDENTITY_MATCH_PHONE`` off) the profile's phone number trait is shown too, so a shared
    phone can be spotted before phone matching is turned on. Each value carries the cookies it
    joins (see the module docstring) and whether it is blocked already, which for a value still
    on a profile means the block waits for a rebuild.
    """
    largest = Profile.objects.multi_device().order_by("-cookie_count", "id")
    profiles = list(largest.values_list("id", "cookie_count", "phone_number")[:limit])
    profile_ids = [pid for pid, _, _ in profiles]
    identifiers: dict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = (
        Identifier.objects.filter(profile_id__in=profile_ids, kind__in=(EMAIL, PHONE))
        .order_by()
        .values_list("profile_id", "kind", "value")
    )
    for pid, kind, value in rows:
        identifiers[pid].append((kind, value))
    cookies = _cookies_per_value(profile_ids)
    blocked = load_blocklist()

    def entry(pid: int, kind: str, value: str, links: bool) -> ClusterValue:
        return ClusterValue(
            kind=kind,
            value=value,
            cookies=len(cookies.get((pid, kind, value), ())),
            links=links,
            blocked=is_blocked(blocked, kind, value),
        )

    clusters = []
    for pid, cookie_count, phone_trait in profiles:
        values = [entry(pid, kind, value, True) for kind, value in identifiers[pid]]
        if phone_trait and not settings.IDENTITY_MATCH_PHONE and (PHONE, phone_trait) not in identifiers[pid]:
            values.append(entry(pid, PHONE, phone_trait, False))
        values.sort(key=lambda v: (-v.cookies, v.value))
        clusters.append(
            Cluster(
                profile_id=pid,
                cookie_count=cookie_count,
                emails=[v for v in values if v.kind == EMAIL],
                phones=[v for v in values if v.kind == PHONE],
            )
        )
    return clusters


def shared_identifiers(limit: int = 50, *, clusters: Iterable[Cluster] | None = None) -> list[SharedIdentifier]:
    """Emails and phones that join two or more cookies, the most cookies first.

    Only the identifiers of the largest clusters (``clusters``, by default ``largest_clusters(limit)``)
    are counted, which bounds the work. The ranking is still exact down to the smallest of those
    clusters' cookie counts: an identifier of any other profile joins at most its profile's cookie
    count, which is no more than that. Phones kept as traits only link nobody and are left out.
    """
    clusters = largest_clusters(limit) if clusters is None else clusters
    shared = [
        SharedIdentifier(
            kind=value.kind,
            value=value.value,
            cookies=value.cookies,
            profile_id=cluster.profile_id,
            profile_cookies=cluster.cookie_count,
            blocked=value.blocked,
        )
        for cluster in clusters
        for value in cluster.values
        if value.links and value.cookies >= 2
    ]
    shared.sort(key=lambda s: (-s.cookies, -s.profile_cookies, s.kind, s.value))
    return shared[:limit]


@transaction.atomic
def identifier_block(*, kind: str, value: str, reason: str = "", user=None) -> BlockOutcome:
    """Put a value on the block list, normalized as the resolver reads it; blocking it again changes nothing.

    Raises ``ValidationError`` keyed by field for an unknown kind or a value that could never link
    anyone (empty, invalid, a placeholder, too long). ``user``, when given, is written to the
    admin's history of the new ``BlockedIdentifier``.
    """
    if kind not in IDENTIFIER_NORMALIZERS:
        raise ValidationError({"kind": f"unknown kind '{kind}': use one of {', '.join(IDENTIFIER_NORMALIZERS)}"})
    try:
        normalized = IDENTIFIER_NORMALIZERS[kind](value)
    except FieldWarning as exc:
        raise ValidationError({"value": str(exc)}) from None
    if not normalized:
        raise ValidationError({"value": f"the {kind} is empty: there is nothing to block"})
    if link_refusal(kind, normalized):
        raise ValidationError({"value": f"'{normalized[:60]}' never links anyone: there is no need to block it"})
    max_reason = BlockedIdentifier._meta.get_field("reason").max_length
    if len(reason) > max_reason:
        raise ValidationError({"reason": f"longer than {max_reason} characters"})

    if is_blocked(load_blocklist(), kind, normalized):
        return BlockOutcome(kind=kind, value=normalized, created=False)
    entry, created = BlockedIdentifier.objects.get_or_create(kind=kind, value=normalized, defaults={"reason": reason})
    if created and user is not None:
        LogEntry.objects.log_actions(
            user_id=user.pk,
            queryset=[entry],
            action_flag=ADDITION,
            change_message="Blocked from the identity clusters page.",
            single_object=True,
        )
    return BlockOutcome(kind=kind, value=normalized, created=created)


def _cookies_per_value(profile_ids: list[int]) -> dict[tuple[int, str, str], set[str]]:
    """(profile id, kind, value) -> the distinct cookies on that profile's raw records carrying the value."""
    read = _CachedReader()
    cookies: dict[tuple[int, str, str], set[str]] = defaultdict(set)
    records = RawRecord.objects.filter(profile_id__in=profile_ids).order_by().values_list("profile_id", "data")
    for pid, data in records.iterator(chunk_size=RECORD_CHUNK):
        fields = record_fields(data)
        cookie = read(COOKIE, fields)
        if not cookie:
            continue
        for kind in (EMAIL, PHONE):
            if value := read(kind, fields):
                cookies[pid, kind, value].add(cookie)
    return cookies


class _CachedReader:
    """One identifier of a record, normalized as the resolver does ("" when it cannot link anyone).

    Values repeat across a cluster's records (the shared email on every one), and validating an
    email costs tens of microseconds, so each distinct raw value is normalized once. Unlike the
    resolver, it ignores the block list: a blocked value still on a profile is counted.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, type, object], str] = {}

    def __call__(self, kind: str, fields: dict[str, object]) -> str:
        normalize = IDENTIFIER_NORMALIZERS[kind]
        raw = fields.get(IDENTIFIER_FIELDS[kind])
        key = (kind, type(raw), raw)  # the type too: 1 and 1.0 are equal keys but read differently
        try:
            return self._seen[key]
        except KeyError:
            value = self._seen[key] = _linking_value(kind, normalize, raw)
            return value
        except TypeError:  # a list or an object where text belongs cannot be a key
            return _linking_value(kind, normalize, raw)


def _linking_value(kind: str, normalize: Callable[[object], str], raw: object) -> str:
    """The normalized value if it may link records (as ``normalize.parse_record`` decides, block list aside)."""
    try:
        value = normalize(raw)
    except FieldWarning:
        return ""
    return value if value and not link_refusal(kind, value) else ""
