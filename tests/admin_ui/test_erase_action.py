"""The profile list's "Erase the selected people" action: a page saying what would go, then the erasure."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from tests.builders import database_snapshot, ingest, record
from users_app.models import AuditEvent, Profile, RawRecord, Suppression

pytestmark = pytest.mark.django_db

LIST = "admin:users_app_profile_changelist"
ACTION = "erase_selected"


@pytest.fixture
def two_people():
    ingest(record(cookie="c1", email="ann@example.com"), record(cookie="c2", email="ann@example.com"))
    ingest(record(cookie="c3", email="bob@example.com"))
    return Profile.objects.get(email="ann@example.com"), Profile.objects.get(email="bob@example.com")


def erase(client, profile, **extra):
    return client.post(reverse(LIST), {"action": ACTION, "_selected_action": [profile.pk], **extra})


def test_the_action_first_shows_what_would_go_and_changes_nothing(admin_client, two_people):
    ann, _ = two_people
    before = database_snapshot()

    page = erase(admin_client, ann)

    assert page.status_code == 200
    text = page.content.decode()
    assert "Erase these people?" in text and "ann@example.com" in text
    assert page.context["people"][0][1].removed.raw_records == 2
    assert 'name="confirmed" value="yes"' in text
    assert database_snapshot() == before
    assert not Suppression.objects.exists()


def test_confirmed_the_person_goes_and_stays_gone_and_the_other_stays(admin_client, two_people):
    ann, bob = two_people

    response = erase(admin_client, ann, confirmed="yes")

    assert response.status_code == 302
    assert list(Profile.objects.values_list("email", flat=True)) == ["bob@example.com"]
    assert RawRecord.objects.filter(profile=bob).count() == 1 and RawRecord.objects.count() == 1
    assert Suppression.objects.count() == 3  # two cookies, one email
    event = AuditEvent.objects.get(action=AuditEvent.Action.ERASURE)
    assert event.actor == "user:admin"
    (message,) = [str(m) for m in response.wsgi_request._messages]
    assert message.startswith("Erased 1 people: ") and message.endswith(" rows removed, their identifiers suppressed.")
    assert int(message.split()[3]) == sum(event.details["removed"].values())
    ingest(record(cookie="c9", email="ANN@example.com "))  # comes back: dropped
    assert not Profile.objects.filter(email="ann@example.com").exists()


def test_staff_without_the_delete_profile_permission_do_not_get_the_action(client, two_people):
    ann, _ = two_people
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_profile"))
    client.force_login(viewer)

    page = client.get(reverse(LIST))
    assert ACTION not in page.content.decode()
    erase(client, ann, confirmed="yes")
    assert Profile.objects.filter(pk=ann.pk).exists()
