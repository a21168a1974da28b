"""Server time of the marketers' pages on a large database (issue 4's acceptance: 1M profiles on PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/analytics_bench DJANGO_SECRET_KEY=bench \
        DJANGO_ALLOWED_HOSTS=testserver .venv/bin/python bench/admin_pages.py [--runs 5] [--markdown]

Each page is requested in-process through Django's test client (the full request: middleware,
session auth, view, queries, template rendering; no network), once cold and then ``--runs`` times;
the table gives the cold time, the median and the slowest warm time, and the number of SQL queries.
The database must already hold the data (generate_sample_data + import_csv); the script adds a
staff user ``bench`` and one segment ``bench: India 25-45 <interest>`` if they are missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_site.settings")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")  # the test client speaks plain http

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from cohorts_app.models import Segment  # noqa: E402
from users_app.models import Interest, Profile, RawRecord  # noqa: E402


def timed_get(client: Client, url: str) -> tuple[float, int, int]:
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
        elapsed = time.perf_counter() - start
    return elapsed, len(queries), response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    interest = Interest.objects.order_by("key").values_list("key", flat=True).first() or "sports"
    segment, _ = Segment.objects.get_or_create(
        name=f"bench: India 25-45 {interest}",
        defaults={"filters": {"country": "India", "age_min": "25", "age_max": "45", "interests": [interest]}},
    )
    three_filters = f"country=India&age_min=25&age_max=45&interests={interest}"
    pages = [
        ("profile list, no filter", "/admin/users_app/profile/"),
        ("profile list, 3 filters (country + age range + interest)", f"/admin/users_app/profile/?{three_filters}"),
        ("profile list, 3 filters, page 2", f"/admin/users_app/profile/?{three_filters}&p=2"),
        ("profile detail", f"/admin/users_app/profile/{Profile.objects.order_by('-cookie_count').first().pk}/change/"),
        ("multi-device cohort list", "/admin/cohorts_app/multideviceprofile/"),
        ("dashboard page (HTML)", "/admin/dashboard/"),
        ("dashboard numbers: /api/v1/stats/", "/api/v1/stats/"),
        ("dashboard numbers for the segment", f"/api/v1/stats/?segment={segment.pk}"),
        ("segment page (live member count)", f"/admin/cohorts_app/segment/{segment.pk}/change/"),
        ("segment members (API, first page)", f"/api/v1/segments/{segment.pk}/members/"),
        ("retention page (weekly)", "/admin/retention/"),
        ("retention page (monthly)", "/admin/retention/?period=month"),
        ("identity clusters page", "/admin/identity-clusters/"),
    ]
    vendor = connection.vendor
    version = connection.cursor().connection.info.server_version if vendor == "postgresql" else "sqlite"
    print(
        f"{Profile.objects.count():,} profiles, {RawRecord.objects.count():,} raw records on {vendor} {version}; "
        f"Python {platform.python_version()}, Django {django.get_version()}, {os.cpu_count()} CPUs, "
        f"DEBUG={settings.DEBUG}; {args.runs} warm runs"
    )
    rows = []
    for name, url in pages:
        cold, queries, status = timed_get(client, url)
        warm = [timed_get(client, url)[0] for _ in range(args.runs)]
        rows.append((name, url, status, queries, cold, statistics.median(warm), max(warm)))
        if not args.markdown:
            print(f"{name:58} {status} {queries:3} queries  cold {cold:6.3f}s  median {statistics.median(warm):6.3f}s")
    if args.markdown:
        print("| page | status | queries | cold s | median s | slowest s |")
        print("|---|---|---|---|---|---|")
        for name, url, status, queries, cold, median, slowest in rows:
            print(f"| {name} (`{url}`) | {status} | {queries} | {cold:.3f} | {median:.3f} | {slowest:.3f} |")


if __name__ == "__main__":
    main()
