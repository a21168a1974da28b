"""The admin's searches over identifiers match whole values only: no listing people by a fragment of an email."""

import pytest
from django.urls import reverse

from tests.builders import ingest, record
from users_app.models import BlockedIdentifier

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("page", "whole"),
    [
        ("admin:users_app_profile_changelist", "asha@example.com"),
        ("admin:users_app_identifier_changelist", "asha@example.com"),
        ("admin:users_app_blockedidentifier_changelist", "info@shared.example"),
    ],
)
def test_identifier_searches_find_the_whole_value_and_nothing_for_a_fragment(admin_client, page, whole):
    ingest(record(cookie="a1", email="asha@example.com"))
    BlockedIdentifier.objects.create(kind="email", value="info@shared.example", reason="team mailbox")
    url = reverse(page)

    assert admin_client.get(url, {"q": whole.upper()}).context["cl"].result_count == 1
    for fragment in (whole[:4], whole.split("@")[1], whole[:-1]):
        assert admin_client.get(url, {"q": fragment}).context["cl"].result_count == 0, fragment


def test_the_block_list_is_still_searchable_by_its_reason(admin_client):
    BlockedIdentifier.objects.create(kind="email", value="info@shared.example", reason="team mailbox")

    found = admin_client.get(reverse("admin:users_app_blockedidentifier_changelist"), {"q": "mailbox"})

    assert found.context["cl"].result_count == 1
