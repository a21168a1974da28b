"""Audience statistics for the dashboard: who the profiles of a queryset are, counted by the database.

``audience_stats(profiles)`` takes any Profile queryset (all profiles, a segment, a filtered list) and
answers with profile counts only. On a million profiles each pass over the profile table costs far more
than anything else, so the figures share passes: one GROUP BY (country, gender, income bounds) also
counts the age buckets and finds the span of first_seen; one groups first_seen by week, month or year;
one counts interest links; a last look-up names the top interests. Python then folds the grouped rows
(hundreds, never one per profile) into the shapes the charts draw.

Every distribution is a list of ``{"label", "count"}`` items; buckets with bounds (ages, income) also
carry ``min`` and ``max`` (None: open-ended), and profiles without the trait fall in an ``Unknown`` item
with both bounds None.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from django.db.models import Count, DateField, Max, Min, Q
from django.db.models.functions import Trunc

from users_app.models import Interest, ProfileInterest

TOP_COUNTRIES = 15
TOP_INTERESTS = 20
OTHER = "Other"
UNKNOWN = "Unknown"

# (label, lowest age, highest age); None is open-ended.
AGE_BUCKETS = (
    ("Under 18", None, 17),
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-44", 35, 44),
    ("45-54", 45, 54),
    ("55-64", 55, 64),
    ("65+", 65, None),
)

# New profiles are counted per week while the data spans up to half a year, per month up to ten
# years, per year beyond: enough points to show a trend, never thousands of bars.
WEEKLY_UP_TO = dt.timedelta(weeks=26)
MONTHLY_UP_TO = dt.timedelta(days=3653)


def _age_range(low: int | None, high: int | None) -> Q:
    bounds = Q(age__isnull=False)
    if low is not None:
        bounds &= Q(age__gte=low)
    if high is not None:
        bounds &= Q(age__lte=high)
    return bounds


# Ages are counted as filtered counts beside the groups, not as one more GROUP BY key: that would multiply
# the groups, and PostgreSQL, unable to estimate a CASE key, then plans the pass without parallel workers.
AGE_COUNTS = {
    **{f"age_{index}": Count("pk", filter=_age_range(low, high)) for index, (_, low, high) in enumerate(AGE_BUCKETS)},
    "age_unknown": Count("pk", filter=Q(age__isnull=True)),
}


def audience_stats(profiles) -> dict:
    """Counts of ``profiles`` by country, age, gender, interest, income, income and gender, and first seen."""
    profiles = profiles.order_by()
    groups = list(
        profiles.values("country", "gender", "income_min", "income_max")
        .annotate(n=Count("pk"), first=Min("first_seen"), last=Max("first_seen"), **AGE_COUNTS)
        .order_by()
    )
    countries, genders, income, income_by_gender = _places_genders_and_income(groups)
    return {
        "total": sum(group["n"] for group in groups),
        "countries": countries,
        "ages": _ages(groups),
        "genders": genders,
        "interests": _top_interests(profiles),
        "income": income,
        "income_by_gender": income_by_gender,
        "new_profiles": _new_profiles(profiles, groups),
    }


def _ages(groups: list[dict]) -> list[dict]:
    buckets = [*AGE_BUCKETS, (UNKNOWN, None, None)]
    return [
        {"label": label, "min": low, "max": high, "count": sum(group[key] for group in groups)}
        for (label, low, high), key in zip(buckets, AGE_COUNTS, strict=True)
    ]


def _places_genders_and_income(groups: list[dict]) -> tuple[list[dict], list[dict], list[dict], dict]:
    """Countries, genders, income brackets and income by gender, folded from the (country, gender, income) groups."""
    by_country: Counter = Counter()
    by_gender: Counter = Counter()
    by_bracket: Counter = Counter()
    by_gender_and_bracket: dict[str, Counter] = defaultdict(Counter)
    for group in groups:
        n, gender, low = group["n"], group["gender"], group["income_min"]
        # Brackets are told apart by their bounds, not their text: $25,000-$49,999 = 25000-49999.
        bracket = (low, group["income_max"]) if low is not None else None
        by_country[group["country"]] += n
        by_gender[gender] += n
        by_bracket[bracket] += n
        by_gender_and_bracket[gender][bracket] += n

    gender_order = _by_count(by_gender, unknown="")
    bracket_order = sorted((b for b in by_bracket if b), key=lambda b: (b[0], b[1] is None, b[1] or 0))
    if None in by_bracket:
        bracket_order.append(None)
    income = [
        {
            "label": income_label(*b) if b else UNKNOWN,
            "min": b[0] if b else None,
            "max": b[1] if b else None,
            "count": by_bracket[b],
        }
        for b in bracket_order
    ]
    income_by_gender = {
        "brackets": [item["label"] for item in income],
        "genders": [
            {"label": g or UNKNOWN, "counts": [by_gender_and_bracket[g][b] for b in bracket_order]}
            for g in gender_order
        ],
    }
    genders = [{"label": g or UNKNOWN, "count": by_gender[g]} for g in gender_order]
    return _countries(by_country), genders, income, income_by_gender


def _by_count(counts: Counter, unknown) -> list:
    """Keys by count (most first, ties by name), the unknown key last."""
    order = sorted((key for key in counts if key != unknown), key=lambda key: (-counts[key], key))
    return [*order, unknown] if unknown in counts else order


def _countries(by_country: Counter) -> list[dict]:
    """The most common countries, then the rest as Other, then profiles without a country as Unknown."""
    order = _by_count(by_country, unknown="")
    known = [country for country in order if country]
    items = [{"label": country, "count": by_country[country]} for country in known[:TOP_COUNTRIES]]
    other = sum(by_country[country] for country in known[TOP_COUNTRIES:])
    items += [{"label": label, "count": n} for label, n in ((OTHER, other), (UNKNOWN, by_country[""])) if n]
    return items


def income_label(low: int, high: int | None) -> str:
    """``Under $25,000``, ``$25,000-$49,999``, ``$150,000+`` or ``$50,000``: the bracket the bounds denote."""
    if high is None:
        return f"${low:,}+"
    if low == 0 and high > 0:
        return f"Under ${high + 1:,}"
    if low == high:
        return f"${low:,}"
    return f"${low:,}-${high:,}"


def _top_interests(profiles) -> list[dict]:
    """The most common interests by the number of profiles that have them; on a tie, the one known longest."""
    links = ProfileInterest.objects.all()
    # Every interest link belongs to a profile, so for all profiles the semi-join (a pass over the
    # whole profile table) would select nothing less.
    if profiles.query.has_filters():
        links = links.filter(profile__in=profiles.values("pk"))
    # Counted by interest id alone, without joining names: the join would run once per link, not per interest.
    top = list(links.values_list("interest_id").annotate(n=Count("pk")).order_by("-n", "interest_id")[:TOP_INTERESTS])
    names = dict(Interest.objects.filter(pk__in=[pk for pk, _ in top]).order_by().values_list("pk", "name"))
    return [{"label": names[pk], "count": n} for pk, n in top]


def new_profiles_period(first: dt.date, last: dt.date) -> str:
    """week, month or year: the period that gives a readable number of points for this span."""
    span = last - first
    if span <= WEEKLY_UP_TO:
        return "week"
    return "month" if span <= MONTHLY_UP_TO else "year"


def _next_period_start(start: dt.date, period: str) -> dt.date:
    if period == "week":
        return start + dt.timedelta(weeks=1)
    if period == "month":
        return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return dt.date(start.year + 1, 1, 1)


def _new_profiles(profiles, groups: list[dict]) -> dict:
    """Profiles by the week, month or year of their first_seen, empty periods as zeros so the line skips none.

    The period follows the span of first_seen, which the groups already know; weeks start on Monday.
    """
    if not groups:
        return {"period": "week", "points": []}
    first = min(group["first"] for group in groups)
    last = max(group["last"] for group in groups)
    period = new_profiles_period(first, last)
    counts = dict(
        profiles.annotate(start=Trunc("first_seen", period, output_field=DateField()))
        .values_list("start")
        .annotate(n=Count("pk"))
        .order_by()
    )
    points = []
    start, last_start = min(counts), max(counts)
    while True:
        points.append({"start": start.isoformat(), "count": counts.get(start, 0)})
        if start == last_start:  # stepping lands on it exactly, and never past year 9999
            break
        start = _next_period_start(start, period)
    return {"period": period, "points": points}
