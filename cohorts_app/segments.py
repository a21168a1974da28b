"""Segments: saved filters over profiles, applied through the one ``ProfileFilterSet``.

The admin's profile list, the API's profile lists and segments all read the same parameters
(``country=India&age_min=25&interests=sports``), so a filter seen in one place means the same
people everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import QueryDict

from users_app.filtersets import ListFilter, ProfileFilterSet
from users_app.models import IdentifierKind, Profile

from .models import Segment

FILTER_NAMES = tuple(ProfileFilterSet.base_filters)
LIST_FILTER_NAMES = frozenset(name for name, f in ProfileFilterSet.base_filters.items() if isinstance(f, ListFilter))


def _values(params: Mapping, name: str) -> list[str]:
    raw = params.getlist(name) if isinstance(params, QueryDict) else params.get(name)
    items = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
    return [str(item).strip() for item in items if str(item).strip()]


def filters_as_query(filters: Mapping) -> QueryDict:
    """In the FilterSet's order, whatever order the database kept (PostgreSQL's jsonb sorts keys)."""
    query = QueryDict(mutable=True)
    order = {name: position for position, name in enumerate(FILTER_NAMES)}
    for name, value in sorted(filters.items(), key=lambda item: order.get(item[0], len(order))):
        query.setlist(name, value if isinstance(value, list) else [value])
    return query


def filters_query_string(filters: Mapping) -> str:
    """``country=India&interests=sports``: the same filters as a profile-list URL's query."""
    return urlencode(list(filters_as_query(filters).lists()), doseq=True)


def segment_filters_clean(params: Mapping) -> dict:
    """The known, non-empty filters of ``params`` (a QueryDict or a dict), checked by the FilterSet.

    Raises ValidationError keyed by the offending filter: unknown names and bad values alike.
    """
    errors = {
        name: [f"Unknown filter; use one of: {', '.join(FILTER_NAMES)}."]
        for name in sorted(set(params) - set(FILTER_NAMES))
    }
    cleaned: dict = {}
    for name in FILTER_NAMES:
        values = _values(params, name)
        if values:
            cleaned[name] = values if name in LIST_FILTER_NAMES else values[-1]
    filterset = ProfileFilterSet(data=filters_as_query(cleaned), queryset=Profile.objects.none())
    if not filterset.is_valid():
        errors.update((name, list(messages)) for name, messages in filterset.errors.items())
    if errors:
        raise ValidationError(errors)
    return cleaned


def profiles_matching(filters: Mapping, queryset=None):
    """The profiles a set of (clean) filters selects."""
    base = Profile.objects.all() if queryset is None else queryset
    return ProfileFilterSet(data=filters_as_query(filters), queryset=base).qs


def segment_profiles(segment: Segment, queryset=None):
    """A segment's members as of now."""
    return profiles_matching(segment.filters, queryset)


EXPORT_HEADER = (
    "profile_id", "emails", "cookies", "phones", "phone_number", "country", "state", "city", "age", "gender",
    "income", "income_min", "income_max", "education", "interests", "cookie_count", "first_seen", "last_seen",
)  # fmt: skip
EXPORT_CHUNK = 1000


def profile_export_rows(profiles) -> Iterator[tuple]:
    """One row per profile with all its identifiers, read in id order a chunk at a time.

    Keyset chunks (``id > last``) keep memory flat and each query cheap however large the segment.
    """
    last_id = None
    while True:
        chunk_query = profiles.order_by("id").with_interest_names().prefetch_related("identifiers")
        if last_id is not None:
            chunk_query = chunk_query.filter(id__gt=last_id)
        chunk = list(chunk_query[:EXPORT_CHUNK])
        for profile in chunk:
            values: dict[str, list[str]] = {kind: [] for kind in IdentifierKind.values}
            for identifier in sorted(profile.identifiers.all(), key=lambda i: i.pk):
                values[identifier.kind].append(identifier.value)
            yield (
                profile.pk,
                ";".join(values[IdentifierKind.EMAIL]),
                ";".join(values[IdentifierKind.COOKIE]),
                ";".join(values[IdentifierKind.PHONE]),
                profile.phone_number,
                profile.country,
                profile.state,
                profile.city,
                profile.age,
                profile.gender,
                profile.income,
                profile.income_min,
                profile.income_max,
                profile.education,
                ";".join(sorted(interest.name for interest in profile.interests.all())),
                profile.cookie_count,
                profile.first_seen.isoformat(),
                profile.last_seen.isoformat(),
            )
        if len(chunk) < EXPORT_CHUNK:
            return
        last_id = chunk[-1].pk
