"""The audience statistics (GET /api/v1/stats/) and the admin dashboard that draws them."""

import datetime as dt

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from cohorts_app.models import Segment
from cohorts_app.stats import audience_stats, income_label, new_profiles_period
from tests.builders import ingest, record
from users_app.models import Profile

pytestmark = pytest.mark.django_db

STATS = "/api/v1/stats/"
DASHBOARD = "/admin/dashboard/"
CHART_IDS = (
    "chart-countries",
    "chart-ages",
    "chart-genders",
    "chart-interests",
    "chart-income",
    "chart-income-by-gender",
    "chart-new-profiles",
)


@pytest.fixture
def audience(db):
    """Five people: two in India, two in the USA, one who told us nothing."""
    ingest(
        record(country="India", age="25", gender="Male", income="$25,000-$49,999", interests="Tech|Gaming",
               created_at="1/15/2025 10:00"),
        record(country="India", age="17", gender="Female", income="Under $25,000", interests="Tech",
               created_at="1/20/2025 00:00"),
        record(country="USA", age="70", gender="Female", income="$150,000+", interests="Gaming|Travel",
               created_at="2/3/2025 12:00"),
        record(created_at="3/1/2025 23:59"),
        # The same bracket written without the dollar signs is the same bracket.
        record(country="USA", age="40", gender="m", income="25000-49999", interests="tech",
               created_at="1/16/2025 08:00"),
    )  # fmt: skip


def stats(client, **params) -> dict:
    response = client.get(STATS, params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def counts(items) -> dict:
    return {item["label"]: item["count"] for item in items}


def test_stats_count_every_profile_by_each_trait(read_client, audience):
    answer = stats(read_client)

    assert answer["segment"] is None
    assert answer["total"] == 5
    assert answer["countries"] == [
        {"label": "India", "count": 2},
        {"label": "United States", "count": 2},
        {"label": "Unknown", "count": 1},
    ]
    assert answer["ages"] == [
        {"label": "Under 18", "min": None, "max": 17, "count": 1},
        {"label": "18-24", "min": 18, "max": 24, "count": 0},
        {"label": "25-34", "min": 25, "max": 34, "count": 1},
        {"label": "35-44", "min": 35, "max": 44, "count": 1},
        {"label": "45-54", "min": 45, "max": 54, "count": 0},
        {"label": "55-64", "min": 55, "max": 64, "count": 0},
        {"label": "65+", "min": 65, "max": None, "count": 1},
        {"label": "Unknown", "min": None, "max": None, "count": 1},
    ]
    assert answer["genders"] == [
        {"label": "Female", "count": 2},
        {"label": "Male", "count": 2},
        {"label": "Unknown", "count": 1},
    ]
    assert answer["interests"] == [
        {"label": "Tech", "count": 3},
        {"label": "Gaming", "count": 2},
        {"label": "Travel", "count": 1},
    ]


def test_income_brackets_are_ordered_by_their_lower_bound_with_unknown_last(read_client, audience):
    answer = stats(read_client)

    assert answer["income"] == [
        {"label": "Under $25,000", "min": 0, "max": 24999, "count": 1},
        {"label": "$25,000-$49,999", "min": 25000, "max": 49999, "count": 2},
        {"label": "$150,000+", "min": 150000, "max": None, "count": 1},
        {"label": "Unknown", "min": None, "max": None, "count": 1},
    ]
    assert answer["income_by_gender"] == {
        "brackets": ["Under $25,000", "$25,000-$49,999", "$150,000+", "Unknown"],
        "genders": [
            {"label": "Female", "counts": [1, 0, 1, 0]},
            {"label": "Male", "counts": [0, 2, 0, 0]},
            {"label": "Unknown", "counts": [0, 0, 0, 1]},
        ],
    }


def test_new_profiles_are_counted_per_week_with_empty_weeks_as_zero_over_a_short_span(read_client, audience):
    answer = stats(read_client)

    assert answer["new_profiles"] == {
        "period": "week",
        "points": [
            {"start": "2025-01-13", "count": 2},
            {"start": "2025-01-20", "count": 1},
            {"start": "2025-01-27", "count": 0},
            {"start": "2025-02-03", "count": 1},
            {"start": "2025-02-10", "count": 0},
            {"start": "2025-02-17", "count": 0},
            {"start": "2025-02-24", "count": 1},
        ],
    }


def test_new_profiles_are_counted_per_month_over_a_year(read_client):
    ingest(
        record(created_at="1/31/2024 10:00"), record(created_at="1/1/2025 10:00"), record(created_at="1/9/2025 1:00")
    )

    points = stats(read_client)["new_profiles"]

    assert points["period"] == "month"
    assert [p["start"] for p in points["points"]] == [f"2024-{m:02}-01" for m in range(1, 13)] + ["2025-01-01"]
    assert [p["count"] for p in points["points"]] == [1] + [0] * 11 + [2]


@pytest.mark.parametrize(
    ("days", "period"), [(0, "week"), (182, "week"), (183, "month"), (3653, "month"), (3654, "year")]
)
def test_the_period_of_new_profiles_follows_the_span_of_first_seen(days, period):
    first = dt.date(2024, 1, 1)
    assert new_profiles_period(first, first + dt.timedelta(days=days)) == period


@pytest.mark.parametrize(
    ("low", "high", "label"),
    [
        (0, 24999, "Under $25,000"),
        (25000, 49999, "$25,000-$49,999"),
        (150000, None, "$150,000+"),
        (50000, 50000, "$50,000"),
    ],
)
def test_income_labels_say_the_bracket_the_bounds_denote(low, high, label):
    assert income_label(low, high) == label


def test_countries_past_the_top_15_are_counted_as_other(read_client):
    names = ["France", "Germany", "Japan", "Brazil", "Canada", "Mexico", "Spain", "Italy", "Kenya", "Chile",
             "Peru", "Norway", "Sweden", "Poland", "Egypt", "Ghana", "Nepal"]  # fmt: skip
    ingest(*(record(country=name) for name in names), record(country="France"))

    countries = stats(read_client)["countries"]

    assert countries[0] == {"label": "France", "count": 2}
    assert len(countries) == 16
    assert countries[-1] == {"label": "Other", "count": 2}
    assert sum(item["count"] for item in countries) == 18


def test_no_profiles_give_zero_counts_and_no_points(read_client):
    answer = stats(read_client)

    assert answer["total"] == 0
    assert answer["countries"] == answer["genders"] == answer["interests"] == answer["income"] == []
    assert {item["count"] for item in answer["ages"]} == {0}
    assert answer["new_profiles"]["points"] == []


def test_a_segment_counts_only_its_members(read_client, audience):
    india = Segment.objects.create(name="India", filters={"country": "India"})

    answer = stats(read_client, segment=india.pk)

    assert answer["segment"] == {"id": india.pk, "name": "India"}
    assert answer["total"] == 2
    assert counts(answer["countries"]) == {"India": 2}
    assert counts(answer["interests"]) == {"Tech": 2, "Gaming": 1}


def test_profile_filters_narrow_the_statistics_and_combine_with_a_segment(read_client, audience):
    india = Segment.objects.create(name="India", filters={"country": "India"})

    assert stats(read_client, gender="female")["total"] == 2
    assert stats(read_client, interests="gaming,travel", age_min=30)["total"] == 1
    assert counts(stats(read_client, segment=india.pk, gender="male")["genders"]) == {"Male": 1}
    assert stats(read_client, segment="", country="USA")["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"segment": "india"}, "segment"),
        ({"segment": "-1"}, "segment"),
        ({"age_min": "old"}, "age_min"),
        ({"multi_device": "maybe"}, "multi_device"),
        ({"first_seen_after": "yesterday"}, "first_seen_after"),
    ],
)
def test_bad_parameters_get_a_400_naming_the_field(read_client, params, field):
    response = read_client.get(STATS, params)

    assert response.status_code == 400
    assert field in response.json()


def test_an_unknown_segment_gets_a_json_404(read_client):
    response = read_client.get(STATS, {"segment": 999999})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_anonymous_callers_and_ingest_keys_may_not_read_stats(audience, ingest_client):
    with_ingest_key = ingest_client

    assert APIClient().get(STATS).status_code == 401
    assert with_ingest_key.get(STATS).status_code == 403


def test_staff_sessions_may_read_stats(admin_client, audience):
    assert stats(admin_client)["total"] == 5


def test_the_statistics_take_four_queries_however_many_profiles(audience, django_assert_num_queries):
    with django_assert_num_queries(4):
        audience_stats(Profile.objects.all())
    with django_assert_num_queries(4):
        audience_stats(Profile.objects.filter(country="India"))


def test_the_dashboard_shows_a_chart_per_statistic_and_every_segment(admin_client):
    Segment.objects.create(name="Big spenders", filters={"income_min": 100000})

    page = admin_client.get(DASHBOARD)

    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/vendor/chart.js-4.6.1/chart.umd.min.js" in html
    assert "/static/cohorts_app/dashboard.js" in html
    for chart_id in CHART_IDS:
        assert f'id="{chart_id}"' in html
    assert ">All profiles</option>" in html
    assert ">Big spenders</option>" in html
    assert f'data-stats-url="{STATS}"' in html
    assert reverse("admin:dashboard") == DASHBOARD


def test_the_dashboard_asks_for_the_selected_segment(admin_client):
    segment = Segment.objects.create(name="India", filters={"country": "India"})

    html = admin_client.get(DASHBOARD, {"segment": segment.pk}).content.decode()

    assert f'data-stats-url="{STATS}?segment={segment.pk}"' in html
    assert f'<option value="{segment.pk}" selected>India</option>' in html


def test_the_dashboard_sends_anonymous_and_non_staff_users_to_the_login(client, django_user_model):
    anonymous = client.get(DASHBOARD)
    django_user_model.objects.create_user("visitor", password="pw")
    client.login(username="visitor", password="pw")
    not_staff = client.get(DASHBOARD)

    for page in (anonymous, not_staff):
        assert page.status_code == 302
        assert page["Location"].startswith(reverse("admin:login"))
