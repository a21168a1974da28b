"""The profile list: FilterSet-backed filters, exact identifier search, read-only detail, counts."""

import pytest
from django.db import connection
from django.urls import reverse

from tests.builders import ingest, record
from users_app import admin as profile_admin
from users_app.admin import EstimatedCountPaginator
from users_app.models import Profile
from users_app.selectors import count_within

pytestmark = pytest.mark.django_db
LIST = "admin:users_app_profile_changelist"


@pytest.fixture
def people():
    ingest(
        record(cookie="a1", email="asha@example.com", country="India", age="31", gender="F", interests="sports|music",
               created_at="1/10/2025 10:00", phone_number="+1 (415) 555-0100"),
        record(cookie="a2", email="ASHA@example.com", created_at="2/10/2025 10:00"),
        record(cookie="b1", email="bo@example.com", country="IN", age="45", gender="M", interests="sports",
               created_at="1/12/2025 10:00"),
        record(cookie="c1", email="cy@example.com", country="Japan", age="29", gender="F", interests="music",
               created_at="3/1/2025 10:00", state="Tokyo", income="50000-75000", education="Masters"),
    )  # fmt: skip
    return {p.email: p for p in Profile.objects.all()}


def emails(admin_client, **params) -> set[str]:
    page = admin_client.get(reverse(LIST), params)
    assert page.status_code == 200, page
    return {profile.email for profile in page.context["cl"].result_list}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"asha@example.com", "bo@example.com", "cy@example.com"}),
        ({"country": "india"}, {"asha@example.com", "bo@example.com"}),
        ({"country": "India", "age_min": "30", "age_max": "40"}, {"asha@example.com"}),
        ({"country": "India", "age_min": "30", "interests": "Sports"}, {"asha@example.com", "bo@example.com"}),
        ({"interests": "music,travel"}, {"asha@example.com", "cy@example.com"}),
        ({"interests_all": "music,sports"}, {"asha@example.com"}),
        ({"gender": "f"}, {"asha@example.com", "cy@example.com"}),
        ({"multi_device": "true"}, {"asha@example.com"}),
        ({"multi_device": "false"}, {"bo@example.com", "cy@example.com"}),
        ({"state": "tokyo"}, {"cy@example.com"}),
        ({"education": "Masters", "income": "50000-75000"}, {"cy@example.com"}),
        ({"first_seen_after": "2025-02-01"}, {"cy@example.com"}),
        ({"first_seen_before": "2025-01-11"}, {"asha@example.com"}),
    ],
)
def test_filters_select_the_same_people_as_the_api(admin_client, people, params, expected):
    assert emails(admin_client, **params) == expected
    api = admin_client.get("/api/v1/profiles/", params)
    assert {p["email"] for p in api.json()["results"]} == expected


def test_filter_sidebar_lists_values_and_keeps_other_filters(admin_client, people):
    page = admin_client.get(reverse(LIST), {"country": "India"}).content.decode()
    for title in ("country", "state", "gender", "age range", "income bracket", "education", "interests: any of",
                  "interests: all of", "multi-device", "first seen"):  # fmt: skip
        assert f'data-filter-title="{title}"' in page
    assert "?country=Japan" in page  # each country is a link
    assert 'name="country" value="India"' in page  # the age form carries the country along
    assert "interests=sports" in page.lower()


def test_a_bad_filter_value_is_named_not_a_crash(admin_client, people):
    page = admin_client.get(reverse(LIST), {"age_min": "old"}, follow=True)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Filter age_min" in text and "Enter a whole number." in text


def test_search_needs_a_whole_identifier_and_normalizes_it(admin_client, people):
    assert emails(admin_client, q=" Asha@Example.com ") == {"asha@example.com"}
    assert emails(admin_client, q="a2") == {"asha@example.com"}
    assert emails(admin_client, q="+1 415 555 0100") == {"asha@example.com"}
    assert emails(admin_client, q="example.com") == set()
    assert emails(admin_client, q="asha") == set()


def test_list_columns_and_no_query_per_row(admin_client, people, django_assert_max_num_queries):
    for _ in range(30):
        ingest(record(interests="golf|chess", country="India"))
    admin_client.get(reverse(LIST))  # fills the filter menus' cache: a few queries per 5 minutes, not per page
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse(LIST))
    text = page.content.decode()
    assert "Chess, Golf" in text  # interests, sorted
    for column in ("email", "cookie count", "country", "age", "gender", "income", "education", "interests",
                   "first seen", "last seen"):  # fmt: skip
        assert f">{column.capitalize()}<" in text or f">{column}<" in text.lower()


def test_detail_shows_identifiers_raw_records_trait_sources_and_merges(admin_client):
    ingest(record(cookie="x1", email="x@example.com", country="India"), record(cookie="y1", email="y@example.com"))
    ingest(record(cookie="x1", email="y@example.com", created_at="2/1/2025 10:00"))  # bridges x and y
    (profile,) = Profile.objects.all()
    page = admin_client.get(reverse("admin:users_app_profile_change", args=[profile.pk])).content.decode()
    for text in ("x@example.com", "y@example.com", "x1", "y1", "Merge ledger", "Where each trait came from"):
        assert text in page
    assert page.count('href="/admin/users_app/rawrecord/') >= 3
    assert "absorbed profile" in page


def test_save_as_segment_link_carries_only_the_filters(admin_client, people):
    page = admin_client.get(reverse(LIST), {"country": "India", "age_min": "30", "o": "2", "q": ""})
    link = page.context["segment_query"]
    assert link == "country=India&age_min=30"
    assert 'id="save-as-segment"' in page.content.decode()


def test_multi_device_list_saves_its_implied_filter(admin_client, people):
    page = admin_client.get(reverse("admin:cohorts_app_multideviceprofile_changelist"), {"country": "India"})
    assert {p.email for p in page.context["cl"].result_list} == {"asha@example.com"}
    assert page.context["segment_query"] == "multi_device=true&country=India"


def test_counts_are_exact_for_small_results(people):
    paginator = EstimatedCountPaginator(Profile.objects.filter(country="India"), 50)
    assert paginator.count == 2 and not paginator.estimated


@pytest.fixture
def many_profiles(postgres):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users_app_profile (id, cookie, email, phone_number, country, state, city, gender, income,"
            " education, first_seen, last_seen, cookie_count, trait_sources, updated_at)"
            " SELECT n, 'c' || n, '', '', 'India', '', '', '', '', '', now(), now(), 1, '{}', now()"
            " FROM generate_series(1, 30000) n"
        )
        cursor.execute("ANALYZE users_app_profile")


def test_counts_are_exact_when_the_database_is_quick(many_profiles):
    paginator = EstimatedCountPaginator(Profile.objects.all(), 50)
    assert paginator.count == 30_000 and not paginator.estimated


def test_counts_are_the_planners_estimate_when_counting_would_be_slow(many_profiles, monkeypatch):
    monkeypatch.setattr(profile_admin, "COUNT_NOT_TRIED_ABOVE", 1_000)
    paginator = EstimatedCountPaginator(Profile.objects.all(), 50)
    assert 20_000 < paginator.count < 40_000
    assert paginator.estimated


def test_a_count_over_its_budget_gives_up_and_leaves_the_connection_as_it_was(many_profiles):
    slow = Profile.objects.extra(where=["pg_sleep(0.001) IS NOT NULL"])  # 30 s to count
    assert count_within(slow, 50) is None
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
    assert count_within(Profile.objects.filter(id__lte=10), 50) == 10
