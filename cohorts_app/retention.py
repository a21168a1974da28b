"""Acquisition cohorts and retention: of the people first seen in a week (or month), how many came back later.

A profile's cohort is the period of its ``first_seen``. It is "seen again" in period k (k = 1, 2, ...) when
at least one of its raw records has a ``created_at`` in the cohort's period + k; more records there do not
count twice, and records in the cohort's own period do not count at all.

"Now" is the latest raw record's ``created_at``, not the clock: imported history ends when it ends. Periods
after it have not happened yet, so they are absent from the table rather than 0. Periods are calendar weeks
(starting Monday) or months, in UTC, cut by the database (``TruncWeek``/``TruncMonth``), so SQLite and
PostgreSQL agree. Two grouped queries do the work, whatever the number of profiles.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import models
from django.db.models import Count, F, Max, QuerySet
from django.db.models.functions import TruncMonth, TruncWeek

from users_app.models import Profile, RawRecord

DEFAULT_PERIODS = 12
MAX_PERIODS = 52


class RetentionPeriod(models.TextChoices):
    WEEK = "week", "Week"
    MONTH = "month", "Month"


TRUNCATIONS = {RetentionPeriod.WEEK: TruncWeek, RetentionPeriod.MONTH: TruncMonth}


@dataclass(frozen=True)
class Retained:
    """How many of a cohort were seen again ``offset`` periods after it, and which share of it that is."""

    offset: int
    count: int
    share: float


@dataclass(frozen=True)
class Cohort:
    start: dt.date
    size: int
    # Offsets 1, 2, ... up to the latest period: later periods have not happened yet.
    retained: tuple[Retained, ...]


@dataclass(frozen=True)
class RetentionTable:
    period: str
    periods: int
    latest: dt.datetime | None  # the latest raw record's created_at; None when there are none
    cohorts: tuple[Cohort, ...]  # oldest first; only periods in which someone was first seen

    @property
    def offsets(self) -> list[int]:
        """The columns: 1 up to the oldest cohort's last offset."""
        return list(range(1, max((len(cohort.retained) for cohort in self.cohorts), default=0) + 1))


def retention_table(
    profiles: QuerySet[Profile], *, period: str = RetentionPeriod.WEEK, periods: int = DEFAULT_PERIODS
) -> RetentionTable:
    """The cohorts of ``profiles`` first seen in the last ``periods`` periods, and their retention."""
    truncate = TRUNCATIONS[RetentionPeriod(period)]
    latest = RawRecord.objects.aggregate(latest=Max("created_at"))["latest"]
    if latest is None:
        return RetentionTable(period=period, periods=periods, latest=None, cohorts=())
    last_start = period_start(latest.astimezone(dt.UTC).date(), period)
    first_start = periods_later(last_start, period, -(periods - 1))

    window = (
        profiles.filter(first_seen__gte=_utc_midnight(first_start))
        .annotate(cohort=truncate("first_seen", tzinfo=dt.UTC))
        .order_by()
    )
    sizes = window.values_list("cohort").annotate(size=Count("pk"))
    # A return is at the earliest in the window's second period: that bound lets the database read only the
    # recent raw records (created_at index). Annotating the raw column first keeps one join to raw records,
    # which a separate filter() on the reverse relation would not.
    seen_again = (
        window.annotate(seen_at=F("raw_records__created_at"))
        .filter(seen_at__gte=_utc_midnight(periods_later(first_start, period, 1)))
        .annotate(active=truncate("seen_at", tzinfo=dt.UTC))
        .filter(active__gt=F("cohort"))
        .values_list("cohort", "active")
        .annotate(people=Count("pk", distinct=True))
    )
    people = {(cohort.date(), active.date()): n for cohort, active, n in seen_again}

    cohorts = []
    for cohort_start, size in sorted((cohort.date(), size) for cohort, size in sizes):
        offsets = range(1, periods_between(cohort_start, last_start, period) + 1)
        counts = [people.get((cohort_start, periods_later(cohort_start, period, k)), 0) for k in offsets]
        retained = tuple(Retained(offset=k, count=n, share=n / size) for k, n in zip(offsets, counts, strict=True))
        cohorts.append(Cohort(start=cohort_start, size=size, retained=retained))
    return RetentionTable(period=period, periods=periods, latest=latest, cohorts=tuple(cohorts))


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def period_start(day: dt.date, period: str) -> dt.date:
    """The Monday of ``day``'s week, or the first of its month (what the database's truncation gives)."""
    if period == RetentionPeriod.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def periods_later(start: dt.date, period: str, count: int) -> dt.date:
    """The start of the period ``count`` periods after ``start`` (before, if negative), no earlier than year 1."""
    if period == RetentionPeriod.WEEK:
        return dt.date.fromordinal(max(1, start.toordinal() + 7 * count))  # 1 January of year 1 is a Monday
    months = max(12, start.year * 12 + start.month - 1 + count)
    return dt.date(months // 12, months % 12 + 1, 1)


def periods_between(start: dt.date, end: dt.date, period: str) -> int:
    if period == RetentionPeriod.WEEK:
        return (end - start).days // 7
    return (end.year - start.year) * 12 + end.month - start.month
