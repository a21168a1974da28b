"""Reads that several callers need (commands, API, admin)."""

import json

from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.models import Count

from .models import Identifier, ImportRun, Interest, Profile, ProfileMerge, RawRecord


def database_summary() -> dict:
    """Counts of the raw log (and its queue), profiles, identifiers and the multi-device cohort."""
    identifiers = dict(Identifier.objects.values_list("kind").annotate(n=Count("id")).order_by())
    histogram = (
        Profile.objects.multi_device().values_list("cookie_count").annotate(n=Count("id")).order_by("cookie_count")
    )
    return {
        "raw_records": RawRecord.objects.count(),
        "unlinked_raw_records": RawRecord.objects.filter(profile__isnull=True).count(),
        # Of those, the ones asynchronous ingestion stored and ``resolve_queued`` has not resolved yet.
        "queued_raw_records": RawRecord.objects.queued().count(),
        "profiles": Profile.objects.count(),
        "multi_cookie_profiles": Profile.objects.multi_device().count(),
        "profiles_by_cookie_count": {str(cookies): n for cookies, n in histogram},
        "identifiers": {kind: identifiers.get(kind, 0) for kind in ("cookie", "email", "phone")},
        "merges": ProfileMerge.objects.count(),
        "import_runs": ImportRun.objects.count(),
    }


TRAIT_VALUES_CACHE_SECONDS = 300
TRAIT_VALUES_LIMIT = 500


def trait_values(field: str) -> list[str]:
    """The distinct values a profile trait takes, for filter menus.

    A DISTINCT over a million profiles costs a few hundred milliseconds, so the list is cached for
    a few minutes: a value new in the data may take that long to appear in the menu (filtering by
    it works at once). Income brackets come in amount order, the rest alphabetically.
    """
    key = f"trait-values:{field}"
    values = cache.get(key)
    if values is None:
        rows = Profile.objects.exclude(**{field: ""}).values_list(field, flat=True).distinct()
        if field == "income":
            rows = rows.order_by("income_min", "income_max", "income").values_list("income", "income_min", "income_max")
            values = list(dict.fromkeys(income for income, _, _ in rows[:TRAIT_VALUES_LIMIT]))
        else:
            values = list(rows.order_by(field)[:TRAIT_VALUES_LIMIT])
        cache.set(key, values, TRAIT_VALUES_CACHE_SECONDS)
    return values


def interest_names() -> list[str]:
    return list(Interest.objects.order_by("name").values_list("name", flat=True))


def planner_row_estimate(queryset) -> int | None:
    """PostgreSQL's own estimate of how many rows a query returns (no scan); None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def count_within(queryset, milliseconds: int) -> int | None:
    """The exact count if PostgreSQL finishes it in time, else None (elsewhere: always exact)."""
    if connection.vendor != "postgresql":
        return queryset.count()
    try:
        with transaction.atomic():  # a savepoint when nested: its rollback also undoes the timeout
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(milliseconds)])
            count = queryset.count()
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
            return count
    except OperationalError:  # QueryCanceled: over the budget
        return None


def merge_history(profile_id: int) -> list[ProfileMerge]:
    """Every merge that went into a profile, also through profiles it absorbed, oldest first."""
    found: dict[int, ProfileMerge] = {}
    frontier = {profile_id}
    while frontier:
        merges = [m for m in ProfileMerge.objects.filter(survivor_id__in=frontier) if m.pk not in found]
        found.update((m.pk, m) for m in merges)
        frontier = {m.absorbed_id for m in merges}
    return sorted(found.values(), key=lambda m: m.pk)
