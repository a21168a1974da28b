"""Acquisition cohorts and retention (GET /api/v1/retention/) and the admin heatmap that shows them."""

import datetime as dt
from fractions import Fraction

import pytest
from rest_framework.test import APIClient

from cohorts_app.models import Segment
from cohorts_app.retention import retention_table
from tests.builders import ingest, record
from users_app.models import Profile

pytestmark = pytest.mark.django_db

RETENTION = "/api/v1/retention/"
PAGE = "/admin/retention/"


@pytest.fixture
def visits(db):
    """Five people, their visits in January and February 2025 (weeks start on Monday: 6, 13, 20, 27 Jan, 3 Feb).

    a (India): first seen Mon 6 Jan; again that week (not a return), in the weeks of 13 Jan and 27 Jan.
    b (USA): first seen Tue 7 Jan; twice in the week of 13 Jan (one return), Sun 2 Feb (week of 27 Jan, February).
    c (USA): first seen Sun 12 Jan 23:00, the last hour of the 6 Jan week; never again.
    d (India): first seen Mon 13 Jan; again Wed 22 Jan.
    e (USA): first seen Mon 3 Feb, the latest record: the latest week and month.
    """
    visits = {
        "a": ["1/6/2025 10:00", "1/8/2025 10:00", "1/14/2025 10:00", "1/28/2025 10:00"],
        "b": ["1/7/2025 10:00", "1/15/2025 10:00", "1/16/2025 10:00", "2/2/2025 10:00"],
        "c": ["1/12/2025 23:00"],
        "d": ["1/13/2025 10:00", "1/22/2025 10:00"],
        "e": ["2/3/2025 10:00"],
    }
    countries = {"a": "India", "b": "USA", "c": "USA", "d": "India", "e": "USA"}
    for person, dates in visits.items():
        ingest(*(record(email=f"{person}@example.com", country=countries[person], created_at=d) for d in dates))


def retention(client, **params) -> dict:
    response = client.get(RETENTION, params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def rows(answer: dict) -> dict[str, tuple]:
    """{cohort start: (size, [(count, share as a fraction of size), ...])}, shares checked against counts."""
    table = {}
    for cohort in answer["cohorts"]:
        for cell in cohort["retained"]:
            assert cell["share"] == pytest.approx(cell["count"] / cohort["size"])
        cells = [(cell["count"], Fraction(cell["count"], cohort["size"])) for cell in cohort["retained"]]
        assert [cell["offset"] for cell in cohort["retained"]] == list(range(1, len(cells) + 1))
        table[cohort["start"]] = (cohort["size"], cells)
    return table


def test_weekly_cohorts_count_each_return_once_and_not_the_first_week(read_client, visits):
    answer = retention(read_client)

    assert answer["period"] == "week" and answer["periods"] == 12
    assert answer["latest"] == "2025-02-03T10:00:00Z"
    assert answer["offsets"] == [1, 2, 3, 4]
    # Oldest first; the weeks of 20 and 27 January saw nobody new, so they are no cohort.
    # Periods after the week of 3 February have not happened: the rows stop there instead of showing 0.
    assert rows(answer) == {
        "2025-01-06": (3, [(2, Fraction(2, 3)), (0, 0), (2, Fraction(2, 3)), (0, 0)]),
        "2025-01-13": (1, [(1, 1), (0, 0), (0, 0)]),
        "2025-02-03": (1, []),
    }


def test_monthly_cohorts(read_client, visits):
    answer = retention(read_client, period="month")

    assert answer["offsets"] == [1]
    assert rows(answer) == {
        "2025-01-01": (4, [(1, Fraction(1, 4))]),  # only b came back in February; a's January visits do not count
        "2025-02-01": (1, []),
    }


def test_only_the_last_periods_cohorts_are_counted(read_client, visits):
    assert list(rows(retention(read_client, periods=4))) == ["2025-01-13", "2025-02-03"]
    assert rows(retention(read_client, periods=1)) == {"2025-02-03": (1, [])}
    assert rows(retention(read_client, period="month", periods=1)) == {"2025-02-01": (1, [])}


def test_the_service_returns_dataclasses_oldest_first(visits):
    table = retention_table(Profile.objects.all(), period="week", periods=12)

    assert [cohort.start for cohort in table.cohorts] == [
        dt.date(2025, 1, 6),
        dt.date(2025, 1, 13),
        dt.date(2025, 2, 3),
    ]
    assert table.cohorts[0].retained[0].count == 2 and table.cohorts[0].retained[0].share == pytest.approx(2 / 3)
    assert table.offsets == [1, 2, 3, 4]


def test_without_records_the_table_is_empty(read_client):
    assert retention(read_client) == {"period": "week", "periods": 12, "latest": None, "offsets": [], "cohorts": []}


def test_a_segment_narrows_the_cohorts_to_its_members(read_client, visits):
    india = Segment.objects.create(name="India", filters={"country": "India"})

    assert rows(retention(read_client, segment=india.pk)) == {
        "2025-01-06": (1, [(1, 1), (0, 0), (1, 1), (0, 0)]),
        "2025-01-13": (1, [(1, 1), (0, 0), (0, 0)]),
    }


def test_profile_filters_narrow_the_cohorts_alone_and_with_a_segment(read_client, visits):
    india = Segment.objects.create(name="India", filters={"country": "India"})

    assert rows(retention(read_client, country="usa")) == {
        "2025-01-06": (2, [(1, Fraction(1, 2)), (0, 0), (1, Fraction(1, 2)), (0, 0)]),
        "2025-02-03": (1, []),
    }
    assert rows(retention(read_client, multi_device="false")) == {
        "2025-01-06": (1, [(0, 0)] * 4),
        "2025-02-03": (1, []),
    }
    assert retention(read_client, segment=india.pk, country="USA")["cohorts"] == []


def test_empty_filters_mean_no_filter_and_absent_shape_parameters_the_defaults(read_client, visits):
    answer = retention(read_client, segment="", country="")

    assert (answer["period"], answer["periods"], len(answer["cohorts"])) == ("week", 12, 3)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "day"}, "period"),
        ({"periods": "0"}, "periods"),
        ({"periods": "53"}, "periods"),
        ({"periods": "many"}, "periods"),
        ({"periods": ""}, "periods"),  # like limit: sent means a value
        ({"period": ""}, "period"),
        ({"segment": "abc"}, "segment"),
        ({"segment": "0"}, "segment"),
        ({"age_min": "old"}, "age_min"),
        ({"first_seen_after": "yesterday"}, "first_seen_after"),
        ({"multi_device": "maybe"}, "multi_device"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(read_client, visits, params, field):
    response = read_client.get(RETENTION, params)

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("segment", [987654, 2**70])
def test_an_unknown_segment_is_a_json_404(read_client, visits, segment):
    response = read_client.get(RETENTION, {"segment": segment})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_anonymous_callers_and_ingest_keys_may_not_read_retention(visits, ingest_client):
    assert APIClient().get(RETENTION).status_code == 401
    assert ingest_client.get(RETENTION).status_code == 403


def test_staff_sessions_may_read_retention(admin_client, visits):
    assert admin_client.get(RETENTION).status_code == 200


def test_the_admin_page_draws_the_heatmap_with_colours_following_the_share(admin_client, visits):
    page = admin_client.get(PAGE)

    assert page.status_code == 200
    html = page.content.decode()
    assert '<table id="retention-heatmap" data-drawn="true">' in html
    assert ">+4</th>" in html and ">+5</th>" not in html
    cohort, cells = page.context["rows"][0]
    assert (cohort.start, cohort.size) == (dt.date(2025, 1, 6), 3)
    assert [cell.percent for cell in cells] == ["66.7%", "0.0%", "66.7%", "0.0%"]
    # Opacity is the square root of the share (0.82 for two thirds): darker is more, and the number is there too.
    assert cells[0].style == "background-color: rgba(65, 118, 144, 0.82); color: #fff;"
    assert cells[1].style == "background-color: rgba(65, 118, 144, 0.00); color: var(--body-fg);"
    assert f'style="{cells[0].style}">66.7%<small>2</small></td>' in html
    newest, cells = page.context["rows"][-1]
    assert newest.start == dt.date(2025, 2, 3) and cells == [None] * 4  # nothing has happened after it yet


def test_the_admin_page_selects_period_and_segment(admin_client, visits):
    india = Segment.objects.create(name="India", filters={"country": "India"})

    default = admin_client.get(PAGE).content.decode()
    assert '<option value="">All profiles</option>' in default
    assert f'<option value="{india.pk}">India</option>' in default

    page = admin_client.get(PAGE, {"period": "month", "segment": india.pk})
    assert page.status_code == 200
    assert [(cohort.start, cohort.size) for cohort, _ in page.context["rows"]] == [(dt.date(2025, 1, 1), 2)]
    assert f'<option value="{india.pk}" selected>India</option>' in page.content.decode()
    assert '<option value="month" selected>Month</option>' in page.content.decode()


def test_the_admin_page_shows_an_empty_state_without_data(admin_client):
    page = admin_client.get(PAGE)

    assert page.status_code == 200
    assert b'id="retention-empty"' in page.content and b'<table id="retention-heatmap"' not in page.content


def test_the_admin_page_answers_bad_parameters_with_a_400_naming_them(admin_client, visits):
    page = admin_client.get(PAGE, {"period": "day"})

    assert page.status_code == 400
    assert b"period:" in page.content and b'<table id="retention-heatmap"' not in page.content
    assert admin_client.get(PAGE, {"segment": 987654}).status_code == 404


def test_the_admin_page_sends_visitors_without_a_staff_login_to_the_login_page(client, django_user_model, visits):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    client.force_login(django_user_model.objects.create_user("analyst", password="pw", is_staff=False))
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
