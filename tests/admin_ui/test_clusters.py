"""The identity clusters page finds values shared by many cookies, and its Block button blocks them."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.builders import ingest, profile_for, record
from users_app.clusters import cookies_per_profile_histogram, identifier_block, largest_clusters, shared_identifiers
from users_app.models import BlockedIdentifier, Profile

pytestmark = pytest.mark.django_db

PAGE = "admin:identity-clusters"
BLOCK = "admin:identity-clusters-block"
SHOP_EMAIL = "info@shop.example"
SHOP_PHONE = "+1 415 555 0100"


@pytest.fixture
def shop_cluster():
    """info@shop.example on five cookies, which glued Alice (c1) and Bob (c2, c6) into one profile too."""
    ingest(
        record(cookie="c1", email=SHOP_EMAIL),
        record(cookie="c2", email=" INFO@Shop.Example "),
        record(cookie="c3", email=SHOP_EMAIL, phone_number=SHOP_PHONE),
        record(cookie="c4", email=SHOP_EMAIL),
        record(cookie="c5", email=SHOP_EMAIL),
        record(cookie="c1", email="alice@example.com"),
        record(cookie="c2", email="bob@example.com"),
        record(cookie="c6", email="bob@example.com"),
        # Ordinary people: two devices, one device, and an email without a cookie.
        record(cookie="d1", email="dave@example.com"),
        record(cookie="d2", email="dave@example.com"),
        record(cookie="k1", email="carol@example.com"),
        record(cookie=None, email="erin@example.com"),
    )
    return profile_for("email", SHOP_EMAIL)


@pytest.fixture
def blocker_client(client, django_user_model):
    """A staff member allowed to add to the block list, and nothing else."""
    user = django_user_model.objects.create_user("blocker", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_blockedidentifier"))
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_histogram_counts_profiles_per_cookie_count_bucket(shop_cluster):
    assert dict(cookies_per_profile_histogram()) == {
        "0": 1,
        "1": 1,
        "2": 1,
        "3": 0,
        "4": 0,
        "5": 0,
        "6-10": 1,
        "11-20": 0,
        "21-50": 0,
        "51+": 0,
    }


def test_largest_cluster_comes_first_with_the_cookies_each_email_joins(shop_cluster):
    shop, dave = largest_clusters()
    assert (shop.profile_id, shop.cookie_count) == (shop_cluster.id, 6)
    assert [(e.value, e.cookies) for e in shop.emails] == [
        (SHOP_EMAIL, 5),
        ("bob@example.com", 2),
        ("alice@example.com", 1),
    ]
    assert (dave.cookie_count, [(e.value, e.cookies) for e in dave.emails]) == (2, [("dave@example.com", 2)])


def test_a_phone_that_links_nobody_is_shown_as_the_profiles_trait(shop_cluster, settings):
    settings.IDENTITY_MATCH_PHONE = False
    [phone] = largest_clusters()[0].phones
    assert (phone.value, phone.cookies, phone.links) == ("+14155550100", 1, False)


def test_a_shared_phone_ranks_when_phones_link_records(settings):
    settings.IDENTITY_MATCH_PHONE = True
    ingest(*(record(cookie=f"p{n}", email=f"buyer{n}@example.com", phone_number=SHOP_PHONE) for n in range(3)))
    [cluster] = largest_clusters()
    assert [(p.value, p.cookies, p.links) for p in cluster.phones] == [("+14155550100", 3, True)]
    assert [(s.kind, s.value, s.cookies) for s in shared_identifiers()] == [("phone", "+14155550100", 3)]


def test_shared_identifiers_rank_values_by_the_cookies_they_join(shop_cluster):
    assert [(s.value, s.cookies, s.profile_cookies) for s in shared_identifiers()] == [
        (SHOP_EMAIL, 5, 6),
        ("bob@example.com", 2, 6),
        ("dave@example.com", 2, 2),
    ]


def test_a_value_blocked_after_it_linked_is_marked_blocked(shop_cluster, settings):
    settings.IDENTIFIER_BLOCKLIST = ["bob@example.com"]
    identifier_block(kind="email", value=SHOP_EMAIL)
    blocked = {e.value for e in largest_clusters()[0].emails if e.blocked}
    assert blocked == {SHOP_EMAIL, "bob@example.com"}


def test_page_draws_the_histogram_and_links_each_cluster_to_its_profile(admin_client, shop_cluster):
    page = admin_client.get(reverse(PAGE))
    assert page.status_code == 200
    html = page.content.decode()
    for fragment in (
        'id="chart-cookies-per-profile"',
        'id="cookies-per-profile-data"',
        'id="largest-clusters"',
        'id="shared-identifiers"',
        "vendor/chart.js-4.6.1/chart.umd.min.js",
        "users_app/clusters.js",
        reverse("admin:users_app_profile_change", args=[shop_cluster.id]),
        reverse(BLOCK),
    ):
        assert fragment in html
    assert page.context["clusters"][0].profile_id == shop_cluster.id
    assert page.context["histogram"]["profiles"] == [1, 1, 1, 0, 0, 0, 1, 0, 0, 0]


def test_page_opens_on_an_empty_database(admin_client):
    page = admin_client.get(reverse(PAGE))
    assert page.status_code == 200
    assert b"No profile has two or more cookies." in page.content


def test_page_needs_a_staff_login(client, shop_cluster):
    page = client.get(reverse(PAGE))
    assert page.status_code == 302 and reverse("admin:login") in page.url


def test_page_takes_the_same_number_of_queries_whatever_the_number_of_clusters(admin_client, shop_cluster):
    with CaptureQueriesContext(connection) as few:
        admin_client.get(reverse(PAGE))
    for n in range(5):
        ingest(
            record(cookie=f"x{n}a", email=f"twin{n}@example.com", phone_number=f"+1415555{n:04}"),
            record(cookie=f"x{n}b", email=f"twin{n}@example.com"),
        )
    with CaptureQueriesContext(connection) as many:
        page = admin_client.get(reverse(PAGE))
    assert len(page.context["clusters"]) == 7
    assert len(many) == len(few)


def test_block_stores_the_normalized_value_and_says_how_to_apply_it(admin_client, admin_user, shop_cluster):
    answer = admin_client.post(
        reverse(BLOCK), {"kind": "email", "value": " INFO@shop.example ", "reason": "shared"}, follow=True
    )
    assert answer.redirect_chain == [(reverse(PAGE), 302)]
    blocked = BlockedIdentifier.objects.get()
    assert (blocked.kind, blocked.value, blocked.reason) == ("email", SHOP_EMAIL, "shared")
    [message] = messages_of(answer)
    assert "no longer link through it" in message and "manage.py rebuild_profiles" in message
    assert LogEntry.objects.get().user == admin_user


def test_blocking_twice_keeps_one_entry_and_says_it_was_blocked_already(admin_client, shop_cluster):
    admin_client.post(reverse(BLOCK), {"kind": "email", "value": SHOP_EMAIL}, follow=True)
    answer = admin_client.post(reverse(BLOCK), {"kind": "email", "value": "Info@Shop.Example"}, follow=True)
    assert BlockedIdentifier.objects.count() == 1
    [message] = messages_of(answer)
    assert "already blocked" in message and "manage.py rebuild_profiles" in message


def test_a_value_in_the_configured_block_list_is_already_blocked(settings, db):
    settings.IDENTIFIER_BLOCKLIST = [SHOP_EMAIL]
    assert identifier_block(kind="email", value=SHOP_EMAIL).created is False
    assert not BlockedIdentifier.objects.exists()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"kind": "address", "value": SHOP_EMAIL}, "kind: unknown kind 'address'"),
        ({"kind": "email", "value": "  "}, "value: the email is empty"),
        ({"kind": "email"}, "value: the email is empty"),
        ({"kind": "email", "value": "not-an-email"}, "value: email: 'not-an-email' is not a valid address"),
        ({"kind": "cookie", "value": "null"}, "value: 'null' never links anyone"),
        ({"kind": "email", "value": SHOP_EMAIL, "reason": "x" * 300}, "reason: longer than 255 characters"),
    ],
)
def test_bad_block_input_is_refused_with_a_message(admin_client, data, problem):
    answer = admin_client.post(reverse(BLOCK), data, follow=True)
    assert answer.status_code == 200
    [message] = messages_of(answer)
    assert message.startswith("Nothing blocked") and problem in message
    assert not BlockedIdentifier.objects.exists()


def test_block_needs_the_permission_to_add_to_the_block_list(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.post(reverse(BLOCK), {"kind": "email", "value": SHOP_EMAIL}).status_code == 403
    assert client.get(reverse(PAGE)).status_code == 200
    assert not BlockedIdentifier.objects.exists()


def test_a_staff_member_with_the_permission_can_block(blocker_client, shop_cluster):
    assert b'class="button">Block</button>' in blocker_client.get(reverse(PAGE)).content
    assert blocker_client.post(reverse(BLOCK), {"kind": "email", "value": SHOP_EMAIL}).status_code == 302
    assert BlockedIdentifier.objects.filter(kind="email", value=SHOP_EMAIL).exists()


def test_block_sends_anonymous_visitors_to_the_login(client):
    answer = client.post(reverse(BLOCK), {"kind": "email", "value": SHOP_EMAIL})
    assert answer.status_code == 302 and reverse("admin:login") in answer.url
    assert not BlockedIdentifier.objects.exists()


def test_block_answers_post_only(admin_client):
    assert admin_client.get(reverse(BLOCK)).status_code == 405


def test_blocking_then_rebuilding_splits_the_cluster(admin_client, shop_cluster):
    admin_client.post(reverse(BLOCK), {"kind": "email", "value": SHOP_EMAIL})
    call_command("rebuild_profiles")

    assert not Profile.objects.with_identifier("email", SHOP_EMAIL).exists()
    for cookie in ("c3", "c4", "c5"):  # linked to the others only through the shop's email
        assert profile_for("cookie", cookie).cookie_count == 1
    assert profile_for("cookie", "c1") == profile_for("email", "alice@example.com")
    assert profile_for("cookie", "c2") == profile_for("cookie", "c6") == profile_for("email", "bob@example.com")
    assert [c.cookie_count for c in largest_clusters()] == [2, 2]
    assert SHOP_EMAIL not in {s.value for s in shared_identifiers()}
