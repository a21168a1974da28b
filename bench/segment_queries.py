"""Segment queries on a large database: the ORM path (ProfileFilterSet) vs hand-written SQL, and the read routes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/analytics_bench DJANGO_SECRET_KEY=bench \\
        DJANGO_ALLOWED_HOSTS=testserver .venv/bin/python bench/segment_queries.py [--runs 50]

The segment is age 25-45 + country India + one interest (the first by key). For each way of asking
the table gives p50 and p99 milliseconds over ``--runs`` runs after one warm-up:

- the first page of members (100 ids in id order, what the cohort route and the lists fetch) and the
  member count, through the ORM (``cohorts_app.segments.profiles_matching``) and through the best
  SQL I could write by hand for the same answer (checked equal);
- GET /api/cohort/user with the same filters and GET /api/user?email=..., through Django's test
  client in-process with a read key (the full request, no network).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_site.settings")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")  # the test client speaks plain http

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from cohorts_app.segments import profiles_matching  # noqa: E402
from users_app.access import api_key_create  # noqa: E402
from users_app.models import Identifier, Interest, Profile  # noqa: E402

HAND_PAGE = """
    SELECT p.id FROM users_app_profile p
    WHERE p.country = %(country)s AND p.age BETWEEN %(age_min)s AND %(age_max)s
      AND EXISTS (SELECT 1 FROM users_app_profileinterest pi
                  WHERE pi.profile_id = p.id AND pi.interest_id = %(interest)s)
    ORDER BY p.id LIMIT 100
"""
HAND_COUNT = """
    SELECT count(*) FROM users_app_profile p
    JOIN users_app_profileinterest pi ON pi.profile_id = p.id AND pi.interest_id = %(interest)s
    WHERE p.country = %(country)s AND p.age BETWEEN %(age_min)s AND %(age_max)s
"""


def timings(run, runs: int) -> tuple[float, float, object]:
    answer = run()  # warm-up, and the answer to compare
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))], answer


def sql(query: str, params: dict):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    interest = Interest.objects.order_by("key").first()
    filters = {"country": "India", "age_min": "25", "age_max": "45", "interests": [interest.key]}
    params = {"country": "India", "age_min": 25, "age_max": 45, "interest": interest.pk}
    members = profiles_matching(filters)
    email = Identifier.objects.filter(kind="email").order_by("-id").values_list("value", flat=True).first()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='bench', scope='read')[1]}")
    cohort_url = f"/api/cohort/user?country=India&age_min=25&age_max=45&interests={interest.key}&limit=100"
    print(f"{Profile.objects.count():,} profiles; segment {filters}; {args.runs} runs after a warm-up")
    rows = [
        ("first page, ORM", lambda: list(members.order_by("id").values_list("id", flat=True)[:100])),
        ("first page, hand SQL", lambda: [row[0] for row in sql(HAND_PAGE, params)]),
        ("count, ORM", members.count),
        ("count, hand SQL", lambda: sql(HAND_COUNT, params)[0][0]),
        ("GET /api/cohort/user (same filters, limit 100)", lambda: client.get(cohort_url).status_code),
        ("GET /api/user?email=...", lambda: client.get("/api/user", {"email": email}).status_code),
    ]
    print("| query | p50 ms | p99 ms | answer |")
    print("|---|---|---|---|")
    answers = {}
    for name, run in rows:
        p50, p99, answer = timings(run, args.runs)
        answers[name] = answer
        shown = f"{len(answer)} ids" if isinstance(answer, list) else answer
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {shown} |", flush=True)
    assert answers["first page, ORM"] == answers["first page, hand SQL"], "the two first pages differ"
    assert answers["count, ORM"] == answers["count, hand SQL"], "the two counts differ"


if __name__ == "__main__":
    main()
