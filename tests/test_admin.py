"""The admin pages marketers use open, and derived data stays read-only there."""

import pytest
from django.urls import reverse

from tests.builders import ingest, record
from users_app.models import ImportRun, Profile, RawRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_data(admin_client):
    ingest(record(cookie="A", email="x@example.com", country="India"), record(cookie="B", email="x@example.com"))
    ImportRun.objects.create(file_name="f.csv", sha256="0" * 64)
    return admin_client


@pytest.mark.parametrize(
    "name",
    [
        "admin:users_app_profile_changelist",
        "admin:users_app_rawrecord_changelist",
        "admin:users_app_identifier_changelist",
        "admin:users_app_profilemerge_changelist",
        "admin:users_app_importrun_changelist",
        "admin:users_app_blockedidentifier_changelist",
        "admin:users_app_apikey_changelist",
        "admin:cohorts_app_multideviceprofile_changelist",
    ],
)
def test_every_list_page_opens(admin_client_with_data, name):
    assert admin_client_with_data.get(reverse(name)).status_code == 200


def test_profile_page_shows_identifiers_and_cannot_be_edited(admin_client_with_data):
    profile = Profile.objects.get()
    page = admin_client_with_data.get(reverse("admin:users_app_profile_change", args=[profile.pk]))
    assert page.status_code == 200
    assert b"x@example.com" in page.content and b"India" in page.content
    admin_client_with_data.post(reverse("admin:users_app_profile_change", args=[profile.pk]), {"country": "Japan"})
    assert Profile.objects.get().country == "India"


def test_profile_search_finds_whole_identifiers_only(admin_client_with_data):
    url = reverse("admin:users_app_profile_changelist")
    assert admin_client_with_data.get(url, {"q": "X@example.com"}).context["cl"].result_count == 1
    assert admin_client_with_data.get(url, {"q": "example.com"}).context["cl"].result_count == 0


def test_raw_record_page_opens(admin_client_with_data):
    url = reverse("admin:users_app_rawrecord_change", args=[RawRecord.objects.first().pk])
    assert admin_client_with_data.get(url).status_code == 200
