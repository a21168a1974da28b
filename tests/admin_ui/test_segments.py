"""Saved segments: the same filters as the profile list and the API, a live count, members, CSV export."""

import csv
import io
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from analytics_site.csv_export import csv_lines
from cohorts_app import segments
from cohorts_app.models import Segment
from tests.api.conftest import client_with
from tests.builders import ingest, record
from users_app.access import api_key_create
from users_app.models import Profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    ingest(
        record(cookie="a1", email="asha@example.com", country="India", age="31", interests="sports|music"),
        record(cookie="a2", email="asha@example.com", phone_number="+44 20 7946 0000"),
        record(cookie="b1", email="bo@example.com", country="India", age="45", interests="sports"),
        record(cookie="c1", email="cy@example.com", country="Japan", age="29", interests="music"),
    )


def export_rows(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_save_the_profile_list_filters_as_a_segment(admin_client, people):
    listing = admin_client.get(reverse("admin:users_app_profile_changelist"), {"country": "India", "age_min": "30"})
    add_url = reverse("admin:cohorts_app_segment_add") + "?" + urlencode({"query": listing.context["segment_query"]})
    form = admin_client.get(add_url)
    assert form.context["adminform"].form.initial["query"] == "country=India&age_min=30"
    saved = admin_client.post(
        add_url, {"name": "Indians over 30", "description": "", "query": "country=India&age_min=30"}
    )
    assert saved.status_code == 302
    segment = Segment.objects.get()
    assert segment.filters == {"country": "India", "age_min": "30"}
    assert segment.created_by.username == "admin"
    page = admin_client.get(reverse("admin:cohorts_app_segment_change", args=[segment.pk])).content.decode()
    assert "Members now" in page and ">2<" in page.replace(" ", "")
    assert "?country=India&amp;age_min=30" in page  # the members link opens the profile list, filtered


def test_segment_form_names_bad_filters(admin_client):
    page = admin_client.post(
        reverse("admin:cohorts_app_segment_add"), {"name": "bad", "query": "age_min=old&colour=red"}
    ).content.decode()
    assert "colour: Unknown filter" in page and "age_min: Enter a whole number." in page
    assert not Segment.objects.exists()


def test_members_follow_the_data(people):
    segment = Segment.objects.create(name="music", filters={"interests": ["music"]})
    assert {p.email for p in segments.segment_profiles(segment)} == {"asha@example.com", "cy@example.com"}
    ingest(record(email="dee@example.com", interests="Music"))
    assert segments.segment_profiles(segment).count() == 3


def test_export_has_every_member_with_every_identifier(admin_client, people, monkeypatch):
    monkeypatch.setattr(segments, "EXPORT_CHUNK", 1)  # several chunks, so the keyset paging is exercised
    segment = Segment.objects.create(name="India", filters={"country": "India"})
    rows = export_rows(admin_client.get(reverse("admin:cohorts_app_segment_export", args=[segment.pk])))
    assert [row["emails"] for row in rows] == ["asha@example.com", "bo@example.com"]
    asha = rows[0]
    assert asha["cookies"] == "a1;a2" and asha["interests"] == "Music;Sports"
    assert asha["phone_number"] == "'+442079460000"  # text starting with + is a formula to a spreadsheet
    assert asha["age"] == "31" and asha["cookie_count"] == "2"
    assert asha["profile_id"] == str(Profile.objects.get(email="asha@example.com").pk)


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_export_cells_that_spreadsheets_read_as_formulas_are_prefixed(admin_client, start):
    ingest(record(email="f@example.com", city=f"{start}HYPERLINK(1)", country="India", age="7", income="-5"))
    segment = Segment.objects.create(name="formulas", filters={})
    response = admin_client.get(reverse("admin:cohorts_app_segment_export", args=[segment.pk]))
    (row,) = export_rows(response)
    assert row["city"].casefold() == f"'{start}hyperlink(1)"
    assert row["age"] == "7"  # numbers stay numbers
    assert row["cookie_count"] == "1"
    assert row["profile_id"].isdigit()


def test_csv_cells_starting_with_any_formula_character_are_prefixed_and_numbers_stay_numbers():
    # Tab and CR never survive the normalizers into a profile, but reject reports carry original lines.
    starts = ["=", "+", "-", "@", "\t", "\r"]
    lines = "".join(csv_lines(["text", "int", "negative", "float"], [[f"{s}1+1", 42, -5, 2.5] for s in starts]))
    rows = list(csv.reader(io.StringIO(lines, newline="")))[1:]
    assert [row[0] for row in rows] == [f"'{s}1+1" for s in starts]
    assert {tuple(row[1:]) for row in rows} == {("42", "-5", "2.5")}


def test_export_needs_a_staff_login(client, people):
    segment = Segment.objects.create(name="all")
    response = client.get(reverse("admin:cohorts_app_segment_export", args=[segment.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


class TestApi:
    def test_create_read_and_list_members(self, people, django_user_model):
        staff = django_user_model.objects.create_user("marketer", password="pw", is_staff=True)
        api = client_with(None)
        api.force_login(staff)
        created = api.post(
            "/api/v1/segments/", {"name": "India", "filters": {"country": "IN", "interests": ["sports"]}}
        )
        assert created.status_code == 201, created.json()
        body = created.json()
        assert body["filters"] == {"country": "IN", "interests": ["sports"]}
        detail = api.get(f"/api/v1/segments/{body['id']}/").json()
        assert detail["member_count"] == 2
        members = api.get(body["members_url"]).json()["results"]
        assert {m["email"] for m in members} == {"asha@example.com", "bo@example.com"}

    def test_bad_filters_are_named(self, admin_client):
        answer = admin_client.post(
            "/api/v1/segments/",
            {"name": "x", "filters": {"age_min": "old", "nope": "1"}},
            content_type="application/json",
        )
        assert answer.status_code == 400
        errors = answer.json()["filters"]
        assert set(errors) == {"age_min", "nope"}

    def test_read_keys_read_but_do_not_write(self, people):
        segment = Segment.objects.create(name="India", filters={"country": "India"})
        reader = client_with(api_key_create(name="r", scope="read")[1])
        assert reader.get("/api/v1/segments/").status_code == 200
        assert len(reader.get(f"/api/v1/segments/{segment.pk}/members/").json()["results"]) == 2
        assert reader.post("/api/v1/segments/", {"name": "x"}, format="json").status_code == 403
        assert reader.delete(f"/api/v1/segments/{segment.pk}/").status_code == 403
        ingester = client_with(api_key_create(name="i", scope="ingest")[1])
        assert ingester.get("/api/v1/segments/").status_code == 403
        assert client_with(None).get("/api/v1/segments/").status_code == 401
        assert Segment.objects.count() == 1
