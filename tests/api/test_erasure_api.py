"""``DELETE /api/v1/profiles/{id}/``: erasure through the API, who may do it, and what ingestion answers afterwards."""

import copy
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.api.conftest import SEED_RECORD, client_with
from users_app.models import (
    ApiKey,
    AuditEvent,
    Identifier,
    ImportRun,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
    Suppression,
)

pytestmark = pytest.mark.django_db

EMAIL = SEED_RECORD["data"]["email"]


def payload(**fields) -> dict:
    data = copy.deepcopy(SEED_RECORD)
    data["data"].update(fields)
    return data


@pytest.fixture
def person(ingest_client) -> Profile:
    """The seed's person on two devices, plus a stranger who must stay."""
    for body in (payload(), payload(cookie="second_device"), payload(cookie="stranger", email="other@example.com")):
        assert ingest_client.post("/api/ingest", body, format="json").status_code in (200, 201)
    return Profile.objects.get(identifiers__value=EMAIL)


def test_an_erase_key_erases_the_person_and_the_answer_counts_the_rows_by_table(person, erase_key):
    response = client_with(erase_key).delete(f"/api/v1/profiles/{person.pk}/")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "profile_id": person.pk,
        "dry_run": False,
        "removed": {
            "profiles": 1,
            "identifiers": 3,
            "raw_records": 2,
            "profile_interests": 2,
            "merge_ledger": 0,
            "import_rejects": 0,
            "held_links": 0,
            "link_decisions": 0,
        },
        "rows_removed": 8,
        "link_decisions_redacted": 0,
        "suppressions_recorded": 3,
        "in_multi_device_cohort": True,
    }
    assert not Profile.objects.filter(pk=person.pk).exists()
    assert (Profile.objects.count(), RawRecord.objects.count(), Identifier.objects.count()) == (1, 1, 2)
    assert ProfileInterest.objects.count() == 2 and not ProfileMerge.objects.exists()
    assert Suppression.objects.count() == 3
    event = AuditEvent.objects.get(action="erasure")
    assert event.actor.startswith("key:tests erase") and EMAIL not in event.summary


@pytest.mark.parametrize("key", ["read_key", "ingest_key"])
def test_read_and_ingest_keys_may_not_erase(person, key, request):
    response = client_with(request.getfixturevalue(key)).delete(f"/api/v1/profiles/{person.pk}/")

    assert response.status_code == 403
    assert EMAIL.encode() not in response.content
    assert Profile.objects.filter(pk=person.pk).exists() and not Suppression.objects.exists()


def test_an_anonymous_caller_gets_401(person):
    response = APIClient().delete(f"/api/v1/profiles/{person.pk}/")

    assert response.status_code == 401
    assert Profile.objects.filter(pk=person.pk).exists()


def test_staff_need_the_delete_profile_permission(person, django_user_model):
    user = django_user_model.objects.create_user("analyst", password="pw", is_staff=True)
    client = APIClient()
    client.force_login(user)
    assert client.delete(f"/api/v1/profiles/{person.pk}/").status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="delete_profile", content_type__app_label="users_app"))
    client.force_login(django_user_model.objects.get(pk=user.pk))  # a fresh user: permissions are cached

    assert client.delete(f"/api/v1/profiles/{person.pk}/").status_code == 200
    assert AuditEvent.objects.get(action="erasure").actor == "user:analyst"


def test_an_erase_key_reads_nothing(person, erase_key):
    client = client_with(erase_key)

    assert client.get(f"/api/v1/profiles/{person.pk}/").status_code == 403
    assert client.get("/api/v1/profiles/").status_code == 403
    assert client.post("/api/ingest", payload(), format="json").status_code == 403


@pytest.mark.parametrize("pk", ["999999", "abc"])
def test_an_unknown_id_is_404_and_changes_nothing(person, erase_key, pk):
    response = client_with(erase_key).delete(f"/api/v1/profiles/{pk}/")

    assert response.status_code == 404
    assert Profile.objects.count() == 2 and not Suppression.objects.exists()


def test_a_second_delete_of_the_same_person_is_404(person, erase_key):
    client = client_with(erase_key)
    assert client.delete(f"/api/v1/profiles/{person.pk}/").status_code == 200

    assert client.delete(f"/api/v1/profiles/{person.pk}/").status_code == 404


def test_after_an_erasure_ingest_drops_their_records_and_says_so(person, erase_key, ingest_client):
    assert client_with(erase_key).delete(f"/api/v1/profiles/{person.pk}/").status_code == 200
    raw_before = RawRecord.objects.count()

    single = ingest_client.post("/api/ingest", payload(cookie="new-device", email=" USER@Example.COM "), format="json")
    batch = ingest_client.post(
        "/api/ingest/batch",
        {
            "batch": [
                payload(cookie="second_device", email=None),
                payload(cookie="stranger", email="other@example.com"),
                {"data": {"created_at": "03/10/2025 15:30"}},
                {"data": {"email": EMAIL, "created_at": "never"}},  # theirs, and unreadable too
            ]
        },
        format="json",
    )

    assert single.status_code == 200
    assert single.json() == {
        "status": "suppressed",
        "profile_id": None,
        "raw_record_id": None,
        "message_id": None,
        "duplicate": False,
        "warnings": [],
    }
    assert batch.status_code == 200
    assert [item["status"] for item in batch.json()] == ["suppressed", "updated", "rejected", "suppressed"]
    assert RawRecord.objects.count() == raw_before + 1  # the stranger's record only
    assert not Identifier.objects.filter(value__in=["new-device", EMAIL]).exists()


def test_a_suppressed_record_sent_again_with_its_message_id_gets_the_same_answer(person, erase_key, ingest_client):
    assert client_with(erase_key).delete(f"/api/v1/profiles/{person.pk}/").status_code == 200
    body = {**payload(), "message_id": "m-1"}

    answers = [ingest_client.post("/api/ingest", body, format="json").json()["status"] for _ in range(2)]

    assert answers == ["suppressed", "suppressed"]
    assert not RawRecord.objects.filter(source_key="api:m-1").exists()


def test_import_runs_report_their_suppressed_rows(read_client):
    run = ImportRun.objects.create(file_name="f.csv", sha256="1" * 64, rows=3, accepted=1, suppressed=2)

    assert read_client.get(f"/api/v1/import-runs/{run.pk}/").json()["suppressed"] == 2


def test_create_api_key_makes_erase_keys():
    out = StringIO()
    call_command("create_api_key", "privacy desk", "--scope", "erase", stdout=out)

    assert ApiKey.objects.get().scope == "erase"


def test_the_document_describes_the_delete_and_the_suppressed_status(read_client):
    document = read_client.get("/api/schema/?format=json").json()

    operation = document["paths"]["/api/v1/profiles/{id}/"]["delete"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErasureResult")
    assert {"401", "403", "404"} <= set(operation["responses"])
    assert "suppressed" in document["components"]["schemas"]["IngestStatusEnum"]["enum"]
