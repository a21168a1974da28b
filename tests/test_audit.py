"""The audit log: key creation (command and admin), masking changes, revocation and CSV exports each leave an
event naming who, what and when; the log itself is read-only in the admin, for superusers too."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from cohorts_app.models import Segment
from tests.api.conftest import client_with
from tests.builders import ingest, record
from users_app.access import api_key_create
from users_app.audit import audit_record
from users_app.models import ApiKey, AuditEvent, ImportReject, ImportRun

pytestmark = pytest.mark.django_db

ADMIN_ACTOR = "user:admin"  # pytest-django's admin_client logs in as "admin"


def only_event() -> AuditEvent:
    (event,) = AuditEvent.objects.all()
    return event


def test_audit_record_stores_who_what_and_when():
    before = timezone.now()
    event = audit_record(actor="user:ana", action="erasure", summary="Erased profile 7", details={"profile_id": 7})

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor, stored.action, stored.summary, stored.details) == (
        "user:ana",
        AuditEvent.Action.ERASURE,
        "Erased profile 7",
        {"profile_id": 7},
    )
    assert before <= stored.created_at <= timezone.now()


def test_audit_record_takes_keywords_only_and_refuses_an_unknown_action():
    with pytest.raises(TypeError):
        audit_record("user:ana", "erasure", "Erased")  # type: ignore[misc]
    with pytest.raises(ValueError, match="Unknown audit action 'erase'"):
        audit_record(actor="user:ana", action="erase", summary="Erased")
    assert not AuditEvent.objects.exists()


def test_create_api_key_command_records_the_creation_with_the_os_user_as_actor():
    call_command("create_api_key", "partner", "--scope", "read", "--mask-pii", stdout=StringIO())

    key, event = ApiKey.objects.get(), only_event()
    assert event.action == AuditEvent.Action.KEY_CREATED
    assert event.actor.startswith("cli:")
    assert key.prefix in event.summary and "masked" in event.summary
    assert event.details == {"key_id": key.pk, "prefix": key.prefix, "scope": "read", "mask_pii": True}


def test_a_key_created_in_the_admin_is_shown_once_works_masks_and_is_audited(admin_client):
    response = admin_client.post(
        reverse("admin:users_app_apikey_add"), {"name": "partner", "scope": "read", "mask_pii": "on", "_save": "1"}
    )

    assert response.status_code == 200
    key = ApiKey.objects.get()
    assert (key.name, key.scope, key.mask_pii) == ("partner", "read", True)
    plain = response.context["plain_key"]
    assert plain.startswith(f"ak_{key.prefix}_") and plain in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    ingest(record(cookie="c1", email="someone@example.com"))
    answer = client_with(plain).get("/api/user", {"email": "someone@example.com"})
    assert answer.status_code == 200 and answer.json()["data"]["email"] == "s***@example.com"
    event = only_event()
    assert (event.actor, event.action, event.details["key_id"]) == (ADMIN_ACTOR, AuditEvent.Action.KEY_CREATED, key.pk)


def test_the_admin_refuses_a_masking_ingest_key_and_records_nothing(admin_client):
    response = admin_client.post(
        reverse("admin:users_app_apikey_add"), {"name": "tag", "scope": "ingest", "mask_pii": "on", "_save": "1"}
    )

    assert response.status_code == 200
    assert "Only read keys answer with personal data to mask." in response.content.decode()
    assert not ApiKey.objects.exists() and not AuditEvent.objects.exists()


def test_turning_masking_off_in_the_admin_is_audited_and_applies_to_the_next_request(admin_client):
    key, plain = api_key_create(name="partner", scope="read", mask_pii=True)
    AuditEvent.objects.all().delete()
    ingest(record(cookie="c1", email="someone@example.com"))

    response = admin_client.post(reverse("admin:users_app_apikey_change", args=[key.pk]), {"_save": "1"})

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.mask_pii is False
    event = only_event()
    assert (event.actor, event.action, event.details) == (
        ADMIN_ACTOR,
        AuditEvent.Action.KEY_CHANGED,
        {"key_id": key.pk, "prefix": key.prefix, "mask_pii": False},
    )
    answer = client_with(plain).get("/api/user", {"email": "someone@example.com"})
    assert answer.json()["data"]["email"] == "someone@example.com"


def test_saving_a_key_unchanged_in_the_admin_records_nothing(admin_client):
    key, _ = api_key_create(name="partner", scope="read", mask_pii=True)
    AuditEvent.objects.all().delete()

    admin_client.post(reverse("admin:users_app_apikey_change", args=[key.pk]), {"mask_pii": "on", "_save": "1"})

    assert not AuditEvent.objects.exists()


def test_revoking_keys_in_the_admin_records_one_event_per_key_revoked(admin_client):
    live, _ = api_key_create(name="live", scope="read")
    gone, _ = api_key_create(name="gone", scope="ingest")
    ApiKey.objects.filter(pk=gone.pk).update(revoked_at=timezone.now())
    AuditEvent.objects.all().delete()

    admin_client.post(
        reverse("admin:users_app_apikey_changelist"), {"action": "revoke", "_selected_action": [live.pk, gone.pk]}
    )

    live.refresh_from_db()
    assert live.revoked_at is not None
    event = only_event()  # the key revoked before is not revoked (nor recorded) again
    assert (event.actor, event.action, event.details) == (
        ADMIN_ACTOR,
        AuditEvent.Action.KEY_REVOKED,
        {"key_id": live.pk, "prefix": live.prefix},
    )


def test_api_keys_cannot_be_deleted_in_the_admin_only_revoked(admin_client):
    key, _ = api_key_create(name="partner", scope="read")

    assert (
        admin_client.post(reverse("admin:users_app_apikey_delete", args=[key.pk]), {"post": "yes"}).status_code == 403
    )
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_exporting_a_segment_is_audited(admin_client):
    ingest(record(cookie="c1", email="someone@example.com", country="India"))
    segment = Segment.objects.create(name="India", filters={"country": "India"})

    response = admin_client.get(reverse("admin:cohorts_app_segment_export", args=[segment.pk]))

    assert b"someone@example.com" in b"".join(response.streaming_content)
    event = only_event()
    assert (event.actor, event.action) == (ADMIN_ACTOR, AuditEvent.Action.EXPORT)
    assert "India" in event.summary
    assert event.details == {"segment_id": segment.pk, "filters": {"country": "India"}}


def test_downloading_a_reject_report_is_audited(admin_client):
    run = ImportRun.objects.create(file_name="people.csv", sha256="0" * 64)
    ImportReject.objects.create(import_run=run, line_number=2, reason="created_at: missing", original="c,a@b.example,")

    response = admin_client.get(reverse("admin:import-rejects", args=[run.pk]))

    assert b"a@b.example" in b"".join(response.streaming_content)
    event = only_event()
    assert (event.actor, event.action, event.details) == (
        ADMIN_ACTOR,
        AuditEvent.Action.EXPORT,
        {"import_run_id": run.pk},
    )


def test_the_audit_log_is_listed_and_shown_in_the_admin(admin_client):
    event = audit_record(actor="user:ana", action="export", summary="Exported segment 'India'")

    listing = admin_client.get(reverse("admin:users_app_auditevent_changelist"))
    detail = admin_client.get(reverse("admin:users_app_auditevent_change", args=[event.pk]))

    assert listing.status_code == 200 and "Exported segment" in listing.content.decode()
    assert detail.status_code == 200 and "user:ana" in detail.content.decode()


def test_nobody_can_add_change_or_delete_audit_events_in_the_admin_not_even_a_superuser(admin_client):
    event = audit_record(actor="user:ana", action="export", summary="Exported segment 'India'")

    assert admin_client.get(reverse("admin:users_app_auditevent_add")).status_code == 403
    changed = admin_client.post(reverse("admin:users_app_auditevent_change", args=[event.pk]), {"summary": "nothing"})
    deleted = admin_client.post(reverse("admin:users_app_auditevent_delete", args=[event.pk]), {"post": "yes"})
    bulk = admin_client.post(
        reverse("admin:users_app_auditevent_changelist"), {"action": "delete_selected", "_selected_action": [event.pk]}
    )

    assert changed.status_code == 403 and deleted.status_code == 403
    assert bulk.status_code in (200, 302)  # "no action selected": delete_selected is not offered
    assert AuditEvent.objects.get().summary == "Exported segment 'India'"
