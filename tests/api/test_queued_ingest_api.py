"""``Prefer: respond-async`` on the ingest routes: 202 once stored, resolved by ``resolve_queued``."""

import copy

import pytest

from tests.api.conftest import SEED_RECORD
from users_app.models import Profile, RawRecord
from users_app.queued import queued_drain

pytestmark = pytest.mark.django_db
ASYNC = {"HTTP_PREFER": "respond-async"}


def test_a_queued_record_is_answered_202_and_found_once_resolved(ingest_client, read_client):
    response = ingest_client.post("/api/ingest", SEED_RECORD, format="json", **ASYNC)

    assert response.status_code == 202
    assert response["Preference-Applied"] == "respond-async"
    body = response.json()
    assert (body["status"], body["profile_id"], body["duplicate"]) == ("queued", None, False)
    assert RawRecord.objects.get().id == body["raw_record_id"]
    assert read_client.get("/api/user", {"email": "user@example.com"}).status_code == 404

    queued_drain()

    found = read_client.get("/api/user", {"email": "user@example.com"})
    assert found.status_code == 200
    assert found.json()["data"]["cookie"] == "user_cookie_id"
    assert RawRecord.objects.get().profile_id == Profile.objects.get().id


def test_bad_input_is_refused_at_once_and_nothing_is_stored(ingest_client):
    bad = copy.deepcopy(SEED_RECORD)
    bad["data"]["created_at"] = "not a date"

    response = ingest_client.post("/api/ingest", bad, format="json", **ASYNC)

    assert response.status_code == 400
    assert "created_at" in response.json()["data"]
    assert not RawRecord.objects.exists()


def test_a_repeated_message_id_is_stored_once_and_answered_with_what_it_became(ingest_client):
    item = {**SEED_RECORD, "message_id": "m-1"}
    first = ingest_client.post("/api/ingest", item, format="json", **ASYNC).json()
    again = ingest_client.post("/api/ingest", item, format="json", **ASYNC)

    assert again.status_code == 202
    assert (again.json()["duplicate"], again.json()["raw_record_id"]) == (True, first["raw_record_id"])
    queued_drain()
    resolved = ingest_client.post("/api/ingest", item, format="json", **ASYNC)
    assert resolved.status_code == 201
    assert (resolved.json()["status"], resolved.json()["profile_id"]) == ("created", Profile.objects.get().id)
    assert RawRecord.objects.count() == 1


def test_a_batch_is_queued_item_by_item(ingest_client):
    bad = copy.deepcopy(SEED_RECORD)
    bad["data"]["created_at"] = "not a date"
    other = copy.deepcopy(SEED_RECORD)
    other["data"].update(cookie="other_cookie", email="other@example.com")

    response = ingest_client.post("/api/ingest/batch", {"batch": [SEED_RECORD, bad, other]}, format="json", **ASYNC)

    assert response.status_code == 202
    assert response["Preference-Applied"] == "respond-async"
    assert [r["status"] for r in response.json()] == ["queued", "rejected", "queued"]
    assert "created_at" in response.json()[1]["errors"]["data"]
    assert queued_drain().profiles_created == 2


@pytest.mark.parametrize("prefer", ["", "return=minimal", "respond-asynchronously"])
def test_without_the_preference_records_are_resolved_before_the_answer(ingest_client, prefer):
    response = ingest_client.post("/api/ingest", SEED_RECORD, format="json", HTTP_PREFER=prefer)

    assert response.status_code == 201
    assert "Preference-Applied" not in response
    assert response.json()["profile_id"] == Profile.objects.get().id


def test_the_preference_is_read_among_others(ingest_client):
    response = ingest_client.post(
        "/api/ingest", SEED_RECORD, format="json", HTTP_PREFER="return=minimal, Respond-Async; wait=5"
    )

    assert response.status_code == 202
