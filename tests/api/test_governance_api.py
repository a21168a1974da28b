"""Identity governance over the API: the review queue, approve / reject, split, explain, decisions and reversal.

The data is made as in production: records ingested through ``records_ingest`` with the identity guards
on, decisions taken through ``users_app.governance`` by the routes themselves.
"""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.api.conftest import client_with
from tests.builders import (
    identifiers_of,
    ingest,
    profile_for,
    profiles_snapshot,
    record,
    writer_lock_held_elsewhere,
)
from users_app.access import api_key_create
from users_app.governance import held_link_target, link_reject, pending_links, profile_split
from users_app.models import ApiKey, AuditEvent, HeldLink, IdentityGuards, LinkDecision, Profile, ProfileMerge

pytestmark = pytest.mark.django_db

FAMILY = "family@example.com"
SHARED = "info@shop.example"
PENDING = "/api/v1/links/pending/"
DECISIONS = "/api/v1/link-decisions/"


def guards(**caps):
    IdentityGuards.objects.create(**caps)


def family(cookies: int = 4):
    """One record per cookie with the same email, a day apart, the cap at 3: from the fourth on, held."""
    guards(max_cookies_per_email=3)
    return ingest(
        *(
            record(cookie=f"c{n}", email=FAMILY, created_at=f"1/{n}/2025 10:00", city=f"City {n}")
            for n in range(1, cookies + 1)
        )
    )


def glued():
    """Alice and Bob, each on their own device, both once with the shop's info@ address: one profile."""
    ingest(
        record(cookie="alice-phone", email="alice@example.com"),
        record(cookie="alice-phone", email=SHARED),
        record(cookie="bob-laptop", email="bob@example.com"),
        record(cookie="bob-laptop", email=SHARED),
    )
    return profile_for("email", SHARED)


def split_path(profile_id: int) -> str:
    return f"/api/v1/profiles/{profile_id}/split/"


def explain_path(profile_id: int) -> str:
    return f"/api/v1/profiles/{profile_id}/explain/"


@pytest.fixture
def masked_client(db) -> APIClient:
    return client_with(api_key_create(name="partner", scope="read", mask_pii=True)[1])


@pytest.fixture
def decider_client(db, django_user_model) -> APIClient:
    """A staff login with the permission the admin asks to decide links."""
    user = django_user_model.objects.create_user("reviewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_linkdecision", content_type__app_label="users_app"))
    client = APIClient()
    client.force_login(user)
    return client


# --- The review queue ----------------------------------------------------------------------------


def test_the_queue_shows_each_held_link_with_its_record_both_profiles_and_the_identifier(read_client):
    outcomes = family()
    held = pending_links().get()

    response = read_client.get(PENDING)

    assert response.status_code == 200, response.content
    [item] = response.json()["results"]
    fourth = outcomes[3]
    assert item == {
        "id": held.pk,
        "raw_record": {
            "id": fourth.raw_record_id,
            "created_at": "2025-01-04T10:00:00Z",
            "source": "api",
        },
        "record_profile_id": fourth.profile_id,
        "target_profile_id": profile_for("email", FAMILY).pk,
        "identifier": {"kind": "email", "value": FAMILY},
        "reason": "cap",
        "detail": "would put 4 cookies in one profile through this email; the cap is 3",
        "held_at": item["held_at"],
    }
    assert item["target_profile_id"] == held_link_target(held)
    assert item["held_at"].startswith(held.held_at.strftime("%Y-%m-%dT"))


def test_the_queue_is_paginated_oldest_first(read_client):
    family(cookies=6)  # the 4th, 5th and 6th cookies are held
    held = list(pending_links().values_list("id", flat=True))
    assert len(held) == 3

    first = read_client.get(PENDING, {"page_size": 2}).json()
    second = read_client.get(first["next"]).json()

    assert [item["id"] for item in first["results"]] == held[:2]
    assert [item["id"] for item in second["results"]] == held[2:]
    assert second["next"] is None


def test_the_queue_filters_by_reason_and_kind(read_client):
    family()

    assert len(read_client.get(PENDING, {"reason": "cap", "kind": "email"}).json()["results"]) == 1
    assert read_client.get(PENDING, {"reason": "merge"}).json()["results"] == []
    assert read_client.get(PENDING, {"kind": "cookie"}).json()["results"] == []
    assert read_client.get(PENDING, {"reason": "nonsense"}).status_code == 400


def test_a_held_link_has_a_detail_route(read_client):
    family()
    held = pending_links().get()

    response = read_client.get(f"{PENDING}{held.pk}/")

    assert response.status_code == 200
    assert response.json()["identifier"] == {"kind": "email", "value": FAMILY}
    assert read_client.get(f"{PENDING}999999/").status_code == 404
    assert read_client.get(f"{PENDING}abc/").status_code == 404


def test_a_masking_key_sees_the_queue_with_emails_masked(masked_client):
    family()

    response = masked_client.get(PENDING)

    assert response.status_code == 200
    [item] = response.json()["results"]
    assert item["identifier"] == {"kind": "email", "value": "f***@example.com"}
    assert FAMILY not in response.content.decode()


# --- Approve and reject --------------------------------------------------------------------------


def test_approving_a_held_link_merges_the_two_profiles(govern_client, govern_key):
    outcomes = family()
    held = pending_links().get()
    family_id = profile_for("email", FAMILY).pk

    response = govern_client.post(f"{PENDING}{held.pk}/approve/")

    assert response.status_code == 200, response.content
    decision = LinkDecision.objects.get()
    assert response.json() == {
        "decision": decision.pk,
        "kind": "approve",
        "identifier": {"kind": "email", "value": FAMILY},
        "reversed": False,
        "profiles": [family_id],
        "records_replayed": 4,
        "merges": 1,
        "held": 0,
    }
    merged = Profile.objects.get(pk=family_id)
    assert merged.cookie_count == 4
    assert identifiers_of(merged) == {"cookie:c1", "cookie:c2", "cookie:c3", "cookie:c4", f"email:{FAMILY}"}
    assert not Profile.objects.filter(pk=outcomes[3].profile_id).exists()
    assert ProfileMerge.objects.filter(absorbed_id=outcomes[3].profile_id, survivor_id=family_id).exists()
    assert not pending_links().exists()
    prefix = ApiKey.objects.get(scope="govern").prefix
    assert decision.actor == f"key:tests govern ({prefix})" and prefix in govern_key
    assert AuditEvent.objects.get(action="link_decision").actor == decision.actor


def test_rejecting_a_held_link_keeps_the_record_apart_now_and_later(govern_client):
    outcomes = family()
    held = pending_links().get()
    family_id, fourth_id = profile_for("email", FAMILY).pk, outcomes[3].profile_id

    response = govern_client.post(f"{PENDING}{held.pk}/reject/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["kind"], body["reversed"], body["profiles"]) == ("detach", False, sorted([family_id, fourth_id]))
    assert Profile.objects.get(pk=family_id).cookie_count == 3
    assert identifiers_of(Profile.objects.get(pk=fourth_id)) == {"cookie:c4"}
    assert not pending_links().exists()
    # The same device with the family's address again: still apart, and not asked about again.
    [later] = ingest(record(cookie="c4", email=FAMILY))
    assert later.profile_id == fourth_id
    assert govern_client.get(PENDING).json()["results"] == []


def test_a_decided_link_is_no_longer_in_the_queue_and_cannot_be_decided_again(govern_client):
    family()
    held = pending_links().get()
    assert govern_client.post(f"{PENDING}{held.pk}/reject/").status_code == 200
    detached = HeldLink.objects.get()  # the record's link, now kept apart by the decision
    assert detached.reason == HeldLink.Reason.DETACHED

    assert govern_client.get(f"{PENDING}{detached.pk}/").status_code == 404
    assert govern_client.post(f"{PENDING}{detached.pk}/approve/").status_code == 404
    assert govern_client.post(f"{PENDING}{detached.pk}/reject/").status_code == 404
    assert LinkDecision.objects.count() == 1


def test_rejecting_a_link_the_record_has_joined_since_is_a_400_naming_the_held_link(govern_client):
    family()
    first = pending_links().get()
    # The held device later shows up with another address of the family's, and that link is approved.
    ingest(record(cookie="c1", email="fourth@example.com"), record(cookie="c4", email="fourth@example.com"))
    other = pending_links().exclude(raw_record=first.raw_record).get()
    assert govern_client.post(f"{PENDING}{other.pk}/approve/").status_code == 200
    still_held = pending_links().get()  # made again, under a new id, by the approval's replay

    response = govern_client.post(f"{PENDING}{still_held.pk}/reject/")

    assert response.status_code == 400
    assert list(response.json()) == ["held_link"]
    assert "split the profile" in response.json()["held_link"][0]
    assert LinkDecision.objects.count() == 1


# --- Split ---------------------------------------------------------------------------------------


def test_splitting_a_shared_address_off_gives_each_person_their_profile_back(govern_client):
    profile = glued()

    response = govern_client.post(
        split_path(profile.pk), {"kind": "email", "value": " Info@Shop.example ", "reason": "shop mailbox"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    alice, bob = profile_for("email", "alice@example.com"), profile_for("email", "bob@example.com")
    assert alice.pk != bob.pk
    assert body["profiles"] == sorted([alice.pk, bob.pk])
    assert body["identifier"] == {"kind": "email", "value": SHARED}
    assert (body["kind"], body["records_replayed"], body["reversed"]) == ("detach", 4, False)
    assert identifiers_of(alice) == {"cookie:alice-phone", "email:alice@example.com"}
    assert identifiers_of(bob) == {"cookie:bob-laptop", "email:bob@example.com"}
    decision = LinkDecision.objects.get(pk=body["decision"])
    assert (decision.reason, decision.profile_id, decision.identifier_value) == ("shop mailbox", profile.pk, SHARED)


def test_a_split_without_a_reason_is_recorded_as_a_split(govern_client):
    profile = glued()

    assert govern_client.post(split_path(profile.pk), {"kind": "email", "value": SHARED}).status_code == 200
    assert LinkDecision.objects.get().reason == "split"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "fax", "value": SHARED}, "kind"),
        ({"value": SHARED}, "kind"),
        ({"kind": "email"}, "value"),
        ({"kind": "email", "value": "   "}, "value"),
        ({"kind": "email", "value": None}, "value"),
        ({"kind": "email", "value": 12}, "value"),
        ({"kind": "email", "value": ["info@shop.example"]}, "value"),
        ({"kind": "email", "value": "not-an-address"}, "value"),
        ({"kind": "email", "value": "a\x00b@shop.example"}, "value"),
        ({"kind": "email", "value": "x" * 256}, "value"),
        ({"kind": "phone", "value": "no digits"}, "value"),
        ({"kind": "email", "value": "nobody@example.com"}, "value"),  # not the profile's
        ({"kind": "phone", "value": "+12025551087"}, "kind"),  # the profile holds no phone at all
        ({"kind": "email", "value": SHARED, "reason": "x" * 301}, "reason"),
        ({"kind": "email", "value": SHARED, "reason": 5}, "reason"),
        ({"kind": "email", "value": SHARED, "why": "typo"}, "why"),
    ],
)
def test_a_bad_split_is_a_400_naming_the_field_and_changes_nothing(govern_client, body, field):
    profile = glued()

    response = govern_client.post(split_path(profile.pk), body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Profile.objects.count() == 1 and not LinkDecision.objects.exists()


@pytest.mark.parametrize("body", [[], "email", 5])
def test_a_split_body_that_is_not_an_object_is_a_400(govern_client, body):
    profile = glued()

    response = govern_client.post(split_path(profile.pk), body, format="json")

    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_splitting_off_the_only_identifier_is_a_400_naming_the_value(govern_client):
    [only] = ingest(record(cookie="lonely", email=None))

    response = govern_client.post(split_path(only.profile_id), {"kind": "cookie", "value": "lonely"})

    assert response.status_code == 400
    assert "only identifier" in response.json()["value"][0]


@pytest.mark.parametrize("pk", ["999999", "abc"])
def test_splitting_an_unknown_profile_is_a_404(govern_client, pk):
    glued()

    assert govern_client.post(split_path(pk), {"kind": "email", "value": SHARED}).status_code == 404


# --- Decisions and their reversal ----------------------------------------------------------------


def test_reversing_a_split_puts_the_profile_back_together(govern_client):
    profile = glued()
    split = govern_client.post(split_path(profile.pk), {"kind": "email", "value": SHARED}).json()
    assert Profile.objects.count() == 2

    response = govern_client.post(f"{DECISIONS}{split['decision']}/reverse/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["decision"], body["reversed"], body["profiles"]) == (split["decision"], True, [profile.pk])
    assert identifiers_of(Profile.objects.get()) == {
        "cookie:alice-phone",
        "cookie:bob-laptop",
        "email:alice@example.com",
        "email:bob@example.com",
        f"email:{SHARED}",
    }
    decision = LinkDecision.objects.get()
    assert decision.reversed_at is not None and decision.reversed_by.startswith("key:tests govern")


def test_reversing_a_decision_twice_is_a_400_naming_the_decision(govern_client):
    profile = glued()
    decision = govern_client.post(split_path(profile.pk), {"kind": "email", "value": SHARED}).json()["decision"]
    assert govern_client.post(f"{DECISIONS}{decision}/reverse/").status_code == 200

    response = govern_client.post(f"{DECISIONS}{decision}/reverse/")

    assert response.status_code == 400
    assert "already reversed" in response.json()["decision"][0]
    assert Profile.objects.count() == 1


def test_reversing_a_rejection_makes_the_link_held_again(govern_client):
    family()
    assert govern_client.post(f"{PENDING}{pending_links().get().pk}/reject/").status_code == 200
    decision = LinkDecision.objects.get()

    assert govern_client.post(f"{DECISIONS}{decision.pk}/reverse/").status_code == 200

    [held] = govern_client.get(PENDING).json()["results"]
    assert held["identifier"] == {"kind": "email", "value": FAMILY} and held["reason"] == "cap"


def test_reversing_an_unknown_decision_is_a_404(govern_client):
    assert govern_client.post(f"{DECISIONS}999999/reverse/").status_code == 404
    assert govern_client.post(f"{DECISIONS}abc/reverse/").status_code == 404


def test_decisions_are_listed_newest_first_with_what_they_decided(read_client):
    profile = glued()
    split = profile_split(profile=profile, kind="email", value=SHARED, actor="user:ana", reason="shop mailbox")
    family()
    rejected = link_reject(held=pending_links().get(), actor="user:ana")

    response = read_client.get(DECISIONS)

    assert response.status_code == 200
    newest, oldest = response.json()["results"]
    assert (newest["id"], oldest["id"]) == (rejected.decision.pk, split.decision.pk)
    assert oldest == {
        "id": split.decision.pk,
        "kind": "detach",
        "identifier": {"kind": "email", "value": SHARED},
        "anchors": [
            {"kind": "cookie", "value": "alice-phone"},
            {"kind": "cookie", "value": "bob-laptop"},
            {"kind": "email", "value": "alice@example.com"},
            {"kind": "email", "value": "bob@example.com"},
        ],
        "raw_record": None,
        "profile_id": profile.pk,
        "reason": "shop mailbox",
        "actor": "user:ana",
        "created_at": oldest["created_at"],
        "reversed_at": None,
        "reversed_by": "",
    }
    assert newest["raw_record"] == rejected.decision.raw_record_id and newest["kind"] == "detach"
    assert read_client.get(f"{DECISIONS}{split.decision.pk}/").json() == oldest
    assert [d["id"] for d in read_client.get(DECISIONS, {"kind": "approve"}).json()["results"]] == []


def test_a_masking_key_sees_decisions_with_emails_masked_and_cookies_as_they_are(masked_client):
    profile = glued()
    profile_split(
        profile=profile, kind="email", value=SHARED, actor="user:ana@example.com", reason="for bob@example.com"
    )

    [decision] = masked_client.get(DECISIONS).json()["results"]

    assert decision["identifier"] == {"kind": "email", "value": "i***@shop.example"}
    assert {(a["kind"], a["value"]) for a in decision["anchors"]} == {
        ("cookie", "alice-phone"),
        ("cookie", "bob-laptop"),
        ("email", "a***@example.com"),
        ("email", "b***@example.com"),
    }
    assert decision["actor"] == "user:a***@example.com" and decision["reason"] == "for b***@example.com"


# --- Explain -------------------------------------------------------------------------------------


def test_explain_shows_each_record_what_it_linked_and_the_decisions(read_client, govern_client):
    outcomes = family()
    family_id, fourth_id = profile_for("email", FAMILY).pk, outcomes[3].profile_id
    held = pending_links().get()

    before = read_client.get(explain_path(fourth_id)).json()

    assert (before["profile"], before["records"], before["truncated"], before["decisions"]) == (fourth_id, 1, False, [])
    [step] = before["steps"]
    assert step["added"] == [{"kind": "cookie", "value": "c4"}] and step["joined_via"] == []
    assert step["held"] == [
        {
            "identifier": {"kind": "email", "value": FAMILY},
            "reason": "cap",
            "detail": held.detail,
            "decision": None,
            "held_link": held.pk,
        }
    ]

    assert govern_client.post(f"{PENDING}{held.pk}/approve/").status_code == 200
    after = read_client.get(explain_path(family_id)).json()

    assert after["records"] == 4
    first, second, _, fourth = after["steps"]
    assert first["record"] == outcomes[0].raw_record_id and first["outcome"] == "created"
    assert first["added"] == [{"kind": "cookie", "value": "c1"}, {"kind": "email", "value": FAMILY}]
    assert second["joined_via"] == [{"kind": "email", "value": FAMILY}]
    assert second["added"] == [{"kind": "cookie", "value": "c2"}]
    assert (second["created_at"], second["source"]) == ("2025-01-02T10:00:00Z", "api")
    assert fourth["merged"] == [{"absorbed": fourth_id, "into": family_id, "via": {"kind": "email", "value": FAMILY}}]
    assert fourth["held"] == []
    [decision] = after["decisions"]
    assert (decision["kind"], decision["identifier"]["value"], decision["raw_record"]) == (
        "approve",
        FAMILY,
        outcomes[3].raw_record_id,
    )


def test_explain_shows_a_link_kept_apart_by_a_split(read_client, govern_client):
    profile = glued()
    decision = govern_client.post(split_path(profile.pk), {"kind": "email", "value": SHARED}).json()["decision"]

    explanation = read_client.get(explain_path(profile_for("email", "alice@example.com").pk)).json()

    kept_apart = [held for step in explanation["steps"] for held in step["held"]]
    assert kept_apart == [
        {
            "identifier": {"kind": "email", "value": SHARED},
            "reason": "detached",
            "detail": "kept apart by a decision",
            "decision": decision,
            "held_link": None,
        }
    ]
    assert [d["id"] for d in explanation["decisions"]] == [decision]


def test_explain_masks_emails_for_a_masking_key(masked_client):
    outcomes = family()

    response = masked_client.get(explain_path(outcomes[3].profile_id))

    assert response.status_code == 200
    [step] = response.json()["steps"]
    assert step["held"][0]["identifier"] == {"kind": "email", "value": "f***@example.com"}
    assert step["added"] == [{"kind": "cookie", "value": "c4"}]
    assert FAMILY not in response.content.decode()


def test_explaining_an_unknown_profile_is_a_404(read_client):
    assert read_client.get(explain_path(999999)).status_code == 404


# --- Who may do what -----------------------------------------------------------------------------


def test_a_read_key_reads_the_queue_and_decisions_but_decides_nothing(read_client):
    profile = glued()
    family()
    held = pending_links().get()
    split = profile_split(profile=profile, kind="email", value=SHARED, actor="user:ana")

    assert read_client.get(PENDING).status_code == 200
    assert read_client.get(DECISIONS).status_code == 200
    for path, body in [
        (f"{PENDING}{held.pk}/approve/", None),
        (f"{PENDING}{held.pk}/reject/", None),
        (f"{DECISIONS}{split.decision.pk}/reverse/", None),
        (split_path(profile_for("email", "alice@example.com").pk), {"kind": "cookie", "value": "alice-phone"}),
    ]:
        response = read_client.post(path, body, format="json")
        assert response.status_code == 403, path
        assert "govern key" in response.json()["detail"]
    assert LinkDecision.objects.count() == 1 and pending_links().count() == 1


def test_a_govern_key_reads_the_queue_and_decisions_but_no_profile_record_or_explanation(govern_client):
    family()

    assert govern_client.get(PENDING).status_code == 200
    assert govern_client.get(DECISIONS).status_code == 200
    profile_id = profile_for("email", FAMILY).pk
    for path in (explain_path(profile_id), f"/api/v1/profiles/{profile_id}/", "/api/v1/raw-records/"):
        assert govern_client.get(path).status_code == 403, path
    assert govern_client.post("/api/ingest", {"data": record()}, format="json").status_code == 403


@pytest.mark.parametrize("key", ["ingest_key", "erase_key"])
def test_ingest_and_erase_keys_may_neither_read_nor_decide(key, request):
    family()
    held = pending_links().get()
    client = client_with(request.getfixturevalue(key))

    assert client.get(PENDING).status_code == 403
    assert client.get(DECISIONS).status_code == 403
    assert client.post(f"{PENDING}{held.pk}/approve/").status_code == 403
    assert not LinkDecision.objects.exists()


def test_an_anonymous_caller_gets_401_everywhere():
    family()
    held = pending_links().get()
    client = APIClient()

    for method, path in [
        ("get", PENDING),
        ("get", f"{PENDING}{held.pk}/"),
        ("post", f"{PENDING}{held.pk}/approve/"),
        ("post", f"{PENDING}{held.pk}/reject/"),
        ("get", DECISIONS),
        ("post", f"{DECISIONS}1/reverse/"),
        ("get", explain_path(held.raw_record.profile_id)),
        ("post", split_path(held.raw_record.profile_id)),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert FAMILY.encode() not in response.content
    assert not LinkDecision.objects.exists()


def test_staff_read_the_queue_and_need_the_add_link_decision_permission_to_decide(staff_client, decider_client):
    family()
    held = pending_links().get()

    assert staff_client.get(PENDING).status_code == 200
    assert staff_client.post(f"{PENDING}{held.pk}/approve/").status_code == 403
    assert not LinkDecision.objects.exists()

    assert decider_client.post(f"{PENDING}{held.pk}/approve/").status_code == 200
    assert LinkDecision.objects.get().actor == "user:reviewer"


# --- While an import runs ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["approve", "reject", "split", "reverse"])
def test_decisions_are_refused_with_a_409_while_an_import_holds_the_writer_lock(route, govern_key, transactional_db):
    family()
    split = profile_split(profile=glued(), kind="email", value=SHARED, actor="user:ana")
    held = pending_links().get()
    path = {
        "approve": f"{PENDING}{held.pk}/approve/",
        "reject": f"{PENDING}{held.pk}/reject/",
        "split": split_path(profile_for("email", FAMILY).pk),
        "reverse": f"{DECISIONS}{split.decision.pk}/reverse/",
    }[route]
    body = {"kind": "cookie", "value": "c1"} if route == "split" else None
    before = profiles_snapshot()

    with writer_lock_held_elsewhere():
        response = client_with(govern_key).post(path, body, format="json")

    assert response.status_code == 409, response.content
    assert "Another import or rebuild is running" in response.json()["detail"]
    assert list(LinkDecision.objects.values_list("pk", "reversed_at")) == [(split.decision.pk, None)]
    assert profiles_snapshot() == before
    assert pending_links().get().pk == held.pk


# --- Keys ----------------------------------------------------------------------------------------


def test_create_api_key_makes_govern_keys_and_its_help_names_the_scope():
    out = StringIO()
    call_command("create_api_key", "review desk", "--scope", "govern", stdout=out)

    key = ApiKey.objects.get()
    assert (key.scope, key.mask_pii) == ("govern", False)
    assert key.prefix in out.getvalue().split()[-1]
    with pytest.raises(CommandError, match="--mask-pii is for read keys"):
        call_command("create_api_key", "masked review", "--scope", "govern", "--mask-pii", stdout=StringIO())
    assert ApiKey.objects.count() == 1
