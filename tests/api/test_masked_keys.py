"""Read keys created with --mask-pii: every answer masks emails and phone numbers; lookups stay exact.

The leak test walks every read route of tests/api/test_authorization.py (whose own test fails when a
route under /api/ has no row there), so a new route that returns personal data unmasked fails here.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cohorts_app.models import Segment
from tests.api.conftest import client_with
from tests.api.test_authorization import READ, REVIEW, ROUTES
from tests.builders import write_csv
from users_app.governance import link_reject, pending_links
from users_app.models import ApiKey, IdentityGuards, ImportRun, LinkDecision, Profile, RawRecord

pytestmark = pytest.mark.django_db

EMAIL, SECOND_EMAIL, EXTRA_EMAIL = "alice.smith@example.com", "alice.work@example.org", "alice.home@example.net"
PHONE, REJECTED_PHONE = "+12025551087", "+12025550123"
REJECTED_EMAIL = "rejected.person@example.org"
# What must never appear in a masked answer: every email's local part and every phone's national digits.
SECRETS = ["alice.smith", "alice.work", "alice.home", "rejected.person", "2025551087", "2025550123"]


def create_key(*options: str) -> str:
    out = StringIO()
    call_command("create_api_key", "partner", *options, stdout=out)
    return out.getvalue().split()[-1]


@pytest.fixture
def masked_key() -> str:
    return create_key("--scope", "read", "--mask-pii")


@pytest.fixture
def masked_client(masked_key):
    return client_with(masked_key)


@pytest.fixture
def world(ingest_client, settings, tmp_path) -> dict[str, int]:
    """Alice on two devices with two emails and a phone (merged through them), and an import with a reject;
    then, the cookie cap on, two more devices of hers held for review, one rejected by a reviewer whose user
    name is an email address (a decision naming her identifiers), one still in the queue."""
    settings.IDENTITY_MATCH_PHONE = True  # phones are identifiers too, so they are in the identifier lists

    def post(message_id: str | None = None, **data):
        body = {"data": {"created_at": "2025-01-01T00:00:00Z", **data}}
        if message_id:
            body["message_id"] = message_id
        response = ingest_client.post("/api/ingest", body, format="json")
        assert response.status_code in (200, 201), response.content

    post(cookie="user_cookie_id", email=EMAIL, phone_number=PHONE, country="USA", backup_email=EXTRA_EMAIL)
    post(cookie="a2", email=SECOND_EMAIL, message_id=f"order-{EMAIL}")
    post(cookie="a2", email=EMAIL)  # joins the two: a merge through an identifier
    post(cookie="a3", email="alice.smith@example", phone_number="5551087")  # warnings quote both values
    rows = [
        {"cookie": "", "email": REJECTED_EMAIL, "phone_number": REJECTED_PHONE, "created_at": ""},  # rejected
        {"cookie": "c9", "email": "", "phone_number": "", "created_at": "1/15/2025 10:00"},
    ]
    call_command("import_csv", str(write_csv(tmp_path / "people.csv", rows)), stdout=StringIO())
    # Alice holds two cookies, so the cap holds a third; the decision's replay keeps her profile as it was.
    IdentityGuards.objects.create(max_cookies_per_email=2)
    post(cookie="a4", email=EMAIL)
    post(cookie="a5", email=SECOND_EMAIL)
    link_reject(held=pending_links().first(), actor=f"user:{EXTRA_EMAIL}")
    profile = Profile.objects.get(identifiers__value=EMAIL)
    return {
        "profile": profile.pk,
        "member": profile.pk,
        "raw_record": RawRecord.objects.filter(profile=profile).first().pk,
        "import_run": ImportRun.objects.get().pk,
        "segment": Segment.objects.create(name="Americans", filters={"country": "USA"}).pk,
        "held_link": pending_links().get().pk,
        "decision": LinkDecision.objects.get().pk,
    }


def test_create_api_key_mask_pii_stores_a_masking_read_key(masked_key):
    key = ApiKey.objects.get()
    assert key.scope == "read" and key.mask_pii is True
    assert key.prefix in masked_key


def test_create_api_key_refuses_mask_pii_for_an_ingest_key():
    with pytest.raises(CommandError, match="--mask-pii is for read keys"):
        create_key("--scope", "ingest", "--mask-pii")
    assert not ApiKey.objects.exists()


READ_ROUTES = [route for route in ROUTES if route.needs in (READ, REVIEW) and route.method == "get"]


@pytest.mark.parametrize("route", READ_ROUTES, ids=[route.path for route in READ_ROUTES])
def test_no_read_route_shows_a_masking_key_an_email_or_a_phone_number(route, world, masked_client, read_client):
    path = route.path.format(**world)
    masked = masked_client.get(path)
    assert masked.status_code == 200, masked.content[:300]
    body = masked.content.decode()
    leaked = [secret for secret in SECRETS if secret in body]
    assert not leaked, (path, leaked)
    # The same route for an ordinary read key has the same shape: only values changed.
    plain = read_client.get(path)
    if path.endswith(".json") or "application/json" in plain["Content-Type"]:
        assert _shape(masked.json()) == _shape(plain.json())


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items() if key not in ("next", "previous")}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def test_the_profile_detail_masks_emails_and_phones_as_the_mask_format_says(world, masked_client):
    detail = masked_client.get(f"/api/v1/profiles/{world['profile']}/").json()

    assert detail["email"].endswith("***@example.com") and detail["email"][0] == "a"
    assert detail["phone_number"] == "+1******1087"
    values = {(i["kind"], i["value"]) for i in detail["identifiers"]}
    assert {("email", "a***@example.com"), ("email", "a***@example.org"), ("phone", "+1******1087")} <= values
    assert ("cookie", "user_cookie_id") in values  # cookies are not masked
    first = next(r for r in detail["raw_records"] if r["data"].get("cookie") == "user_cookie_id")
    assert first["data"]["email"] == "a***@example.com"
    assert first["data"]["backup_email"] == "a***@example.net"
    assert first["data"]["country"] == "USA"
    assert detail["merges"]
    for merge in detail["merges"]:
        assert "***" in merge["identifier_value"] or merge["identifier_kind"] == "cookie"


def test_an_ordinary_read_key_and_staff_see_the_real_values(world, read_client, staff_client):
    for client in (read_client, staff_client):
        detail = client.get(f"/api/v1/profiles/{world['profile']}/").json()
        assert detail["phone_number"] == PHONE
        assert {EMAIL, SECOND_EMAIL} <= {i["value"] for i in detail["identifiers"]}


def test_an_ordinary_read_key_sees_every_secret_the_leak_test_looks_for(world, read_client):
    """So the leak test above cannot pass by looking for values the answers never held."""
    bodies = "".join(
        read_client.get(path).content.decode()
        for path in (f"/api/v1/profiles/{world['profile']}/", f"/api/v1/import-runs/{world['import_run']}/")
    )
    assert [secret for secret in SECRETS if secret not in bodies] == []


def test_the_governance_routes_hold_secrets_for_an_ordinary_read_key(world, read_client):
    """So the leak test covers the review queue, the decisions and explain with values they really hold."""
    queue = read_client.get("/api/v1/links/pending/").content.decode()
    decisions = read_client.get("/api/v1/link-decisions/").content.decode()
    explanation = read_client.get(f"/api/v1/profiles/{world['profile']}/explain/").content.decode()

    assert SECOND_EMAIL in queue
    assert EMAIL in decisions and EXTRA_EMAIL in decisions  # the identifier, and the reviewer's user name
    assert EMAIL in explanation and SECOND_EMAIL in explanation


def test_the_governance_routes_mask_for_a_masking_key_as_the_mask_format_says(world, masked_client):
    [held] = masked_client.get("/api/v1/links/pending/").json()["results"]
    [decision] = masked_client.get("/api/v1/link-decisions/").json()["results"]

    assert held["identifier"] == {"kind": "email", "value": "a***@example.org"}
    assert decision["identifier"] == {"kind": "email", "value": "a***@example.com"}
    assert decision["anchors"] == [{"kind": "cookie", "value": "a4"}]  # cookies are not masked
    assert decision["actor"] == "user:a***@example.net"


def test_user_lookup_with_a_masking_key_takes_the_exact_email_and_answers_masked(world, masked_client):
    response = masked_client.get("/api/user", {"email": EMAIL.upper()})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == world["profile"]
    assert data["phone_number"] == "+1******1087"
    assert sorted(data["emails"]) == ["a***@example.com", "a***@example.org"]
    assert EMAIL not in json.dumps(data)

    for partial in ("alice.smith", "example.com", "alice.smith@example.co", "*@example.com", "a***@example.com"):
        assert masked_client.get("/api/user", {"email": partial}).status_code == 404


def test_cohort_route_with_a_masking_key_masks_the_seed_documents(world, masked_client):
    people = masked_client.get("/api/cohort/user", {"email": EMAIL}).json()
    assert [person["data"]["id"] for person in people] == [world["profile"]]
    assert people[0]["data"]["email"].startswith("a***@")


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("/api/v1/profiles/", {"email": "alice.smith"}),
        ("/api/v1/profiles/", {"email": "example.com"}),
        ("/api/v1/profiles/", {"cookie": "a"}),
        ("/api/v1/profiles/", {"search": "alice"}),
        ("/api/v1/profiles/", {"search": "2025551087"}),
        ("/api/v1/cohort-members/", {"email": "alice"}),
        ("/api/cohort/user", {"email": "alice.smith@"}),
        ("/api/cohort/user", {"cookie": "a"}),
    ],
)
def test_identifier_filters_and_search_match_whole_values_only(world, masked_client, route, params):
    response = masked_client.get(route, params)
    assert response.status_code == 200
    body = response.json()
    assert (body["results"] if isinstance(body, dict) else body) == []


@pytest.mark.parametrize("field", ["email", "phone_number", "cookie", "data", "source_key"])
def test_lists_cannot_be_sorted_by_personal_data(world, masked_client, field):
    """Sorting by a masked value would leak its order; DRF ignores an ordering field it was not given."""
    by_id = masked_client.get("/api/v1/cohort-members/").json()["results"]
    assert masked_client.get("/api/v1/cohort-members/", {"ordering": field}).json()["results"] == by_id
    records = masked_client.get("/api/v1/raw-records/").json()["results"]
    assert masked_client.get("/api/v1/raw-records/", {"ordering": field}).json()["results"] == records
