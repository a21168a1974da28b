"""The v1 resource API: profiles, raw records, import runs and cohort members."""

import pytest
from django.core.management import call_command

from tests.builders import record, write_csv
from users_app.models import ImportRun, Profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(ingest_client):
    """Two people: one on two devices (joined through an email, then a bridge), one single."""
    post = lambda **data: ingest_client.post("/api/ingest", {"data": data}, format="json")  # noqa: E731
    post(cookie="a1", email="a@example.com", created_at="2025-01-01T00:00:00Z", age=30, interests=["Tech"])
    post(cookie="a2", email="a2@example.com", created_at="2025-02-01T00:00:00Z", country="India")
    post(cookie="a2", email="a@example.com", created_at="2025-03-01T00:00:00Z")
    post(cookie="s1", email="s@example.com", created_at="2025-01-05T00:00:00Z", age=50, country="Japan")
    return Profile.objects.get(identifiers__value="a@example.com"), Profile.objects.get(identifiers__value="s1")


def test_profile_list_is_cursor_paginated_and_filters_like_the_cohort_route(read_client, people):
    multi, single = people
    page = read_client.get("/api/v1/profiles/", {"page_size": 1}).json()
    assert set(page) == {"next", "previous", "results"}
    assert len(page["results"]) == 1
    second = read_client.get(page["next"]).json()
    assert {page["results"][0]["id"], second["results"][0]["id"]} == {multi.id, single.id}

    assert [p["id"] for p in read_client.get("/api/v1/profiles/", {"age_min": 40}).json()["results"]] == [single.id]
    assert [p["id"] for p in read_client.get("/api/v1/profiles/", {"multi_device": "true"}).json()["results"]] == [
        multi.id
    ]
    assert [p["id"] for p in read_client.get("/api/v1/profiles/", {"interests": "tech"}).json()["results"]] == [
        multi.id
    ]


def test_profile_detail_has_identifiers_raw_records_merge_ledger_and_trait_sources(read_client, people):
    multi, _ = people
    detail = read_client.get(f"/api/v1/profiles/{multi.id}/").json()

    assert {(i["kind"], i["value"]) for i in detail["identifiers"]} == {
        ("cookie", "a1"),
        ("cookie", "a2"),
        ("email", "a@example.com"),
        ("email", "a2@example.com"),
    }
    assert len(detail["raw_records"]) == 3
    assert [(m["survivor_id"], m["identifier_kind"]) for m in detail["merges"]] == [(multi.id, "cookie")]
    assert detail["country"] == "India" and detail["age"] == 30
    assert set(detail["trait_sources"]) >= {"country", "age", "cookie", "email"}


def test_profile_search_matches_whole_identifiers_only(read_client, people):
    multi, _ = people
    found = read_client.get("/api/v1/profiles/", {"search": "A@Example.com"}).json()["results"]
    assert [p["id"] for p in found] == [multi.id]
    assert read_client.get("/api/v1/profiles/", {"search": "example.com"}).json()["results"] == []


def test_profile_ordering(read_client, people):
    multi, single = people
    ids = [p["id"] for p in read_client.get("/api/v1/profiles/", {"ordering": "-age"}).json()["results"]]
    assert ids == [single.id, multi.id]


def test_cohort_members_are_the_multi_device_profiles(read_client, people):
    multi, _ = people
    results = read_client.get("/api/v1/cohort-members/").json()["results"]
    assert [(p["id"], p["cookie_count"]) for p in results] == [(multi.id, 2)]


def test_raw_records_are_listed_read_only(read_client, staff_client, people):
    multi, _ = people
    listed = read_client.get("/api/v1/raw-records/", {"profile": multi.id}).json()["results"]
    assert len(listed) == 3
    assert staff_client.post("/api/v1/raw-records/", {}, format="json").status_code == 405
    assert staff_client.delete(f"/api/v1/raw-records/{listed[0]['id']}/").status_code == 405


def test_import_runs_show_counts_and_the_reject_report(read_client, tmp_path):
    path = write_csv(tmp_path / "api.csv", [record(cookie="A"), record(cookie="", email="")])
    call_command("import_csv", str(path))
    run = ImportRun.objects.get()

    listed = read_client.get("/api/v1/import-runs/").json()["results"]
    detail = read_client.get(f"/api/v1/import-runs/{run.id}/").json()

    assert [(r["rows"], r["accepted"], r["rejected"]) for r in listed] == [(2, 1, 1)]
    assert [(r["line_number"], r["reason"][:20]) for r in detail["rejects"]] == [(3, "no usable identifier")]


def test_unknown_ids_answer_404_json(read_client, db):
    response = read_client.get("/api/v1/profiles/999999/")
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize("page_size", ["null", "0", "-3", "x"])
def test_an_invalid_page_size_is_a_400(read_client, page_size):
    assert read_client.get("/api/v1/profiles/", {"page_size": page_size}).status_code == 400


def test_multi_device_accepts_true_false_and_empty_and_refuses_anything_else(read_client, people):
    _, single = people
    assert [p["id"] for p in read_client.get("/api/v1/profiles/", {"multi_device": "false"}).json()["results"]] == [
        single.id
    ]
    assert len(read_client.get("/api/v1/profiles/", {"multi_device": ""}).json()["results"]) == 2
    assert read_client.get("/api/v1/profiles/", {"multi_device": "null"}).status_code == 400


def test_an_empty_choice_filter_means_no_filter_as_a_submitted_filter_form_sends_it(read_client, people):
    assert len(read_client.get("/api/v1/raw-records/", {"source": ""}).json()["results"]) == 4
    assert read_client.get("/api/v1/raw-records/", {"source": "fax"}).status_code == 400


def test_a_url_no_api_route_matches_answers_json_404(read_client, db):
    response = read_client.get("/api/v1/profiles/1.5e-38/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_nul_character_in_a_search_is_a_400_with_an_error_object(read_client):
    response = read_client.get("/api/v1/import-runs/", {"search": "a\x00b"})

    assert response.status_code == 400
    assert response.json() == {"detail": "Null characters are not allowed."}
