"""``manage.py split_profile``: split an identifier off a profile, re-link it, and refuse what cannot be done.

The world: Alice, Bob (two cookies) and Carol, each with their own cookie and email, glued into one
profile by the shop's info@ address that each of them used once.
"""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.builders import identifiers_of, ingest, profile_for, profiles_snapshot, record, writer_lock_held_elsewhere
from users_app.models import AuditEvent, HeldLink, LinkDecision, Profile

pytestmark = pytest.mark.django_db

SHOP_EMAIL = "info@shop.example"
PEOPLE = {
    "alice": {"cookie:a1", "email:alice@example.com"},
    "bob": {"cookie:b1", "cookie:b2", "email:bob@example.com"},
    "carol": {"cookie:k1", "email:carol@example.com"},
}


@pytest.fixture
def glued() -> Profile:
    ingest(
        record(cookie="a1", email="alice@example.com", city="Austin", created_at="1/1/2025 09:00"),
        record(cookie="b1", email="bob@example.com", city="Boston", created_at="1/2/2025 09:00"),
        record(cookie="b2", email="bob@example.com", created_at="1/3/2025 09:00"),
        record(cookie="k1", email="carol@example.com", city="Chicago", created_at="1/4/2025 09:00"),
        record(cookie="a1", email=SHOP_EMAIL, created_at="1/5/2025 09:00"),
        record(cookie="b1", email=SHOP_EMAIL, created_at="1/6/2025 09:00"),
        record(cookie="k1", email=SHOP_EMAIL, created_at="1/7/2025 09:00"),
    )
    profile = profile_for("email", SHOP_EMAIL)
    assert Profile.objects.count() == 1 and profile.cookie_count == 4
    return profile


def split_profile(*args) -> tuple[str, dict]:
    """Run the command with --json; its text and its JSON result."""
    out = StringIO()
    call_command("split_profile", *map(str, args), "--json", stdout=out)
    text, result = out.getvalue().strip().rsplit("\n", 1)
    return text, json.loads(result)


def people_by_identifiers() -> dict[frozenset, Profile]:
    return {frozenset(identifiers_of(profile)): profile for profile in Profile.objects.all()}


def state() -> dict:
    """What a refused command must leave as it was."""
    return {
        "profiles": profiles_snapshot(),
        "decisions": list(LinkDecision.objects.order_by("pk").values()),
        "held_links": list(HeldLink.objects.order_by("pk").values()),
        "audit": AuditEvent.objects.count(),
    }


def test_splitting_the_shared_email_gives_back_the_three_people(glued):
    text, result = split_profile(glued.pk, "--email", SHOP_EMAIL, "--reason", "shop mailbox")

    people = people_by_identifiers()
    assert set(people) == {frozenset(identifiers) for identifiers in PEOPLE.values()}
    assert sorted(result["profiles"]) == sorted(profile.pk for profile in people.values())
    decision = LinkDecision.objects.get()
    assert result["decision"] == decision.pk
    assert (decision.kind, decision.identifier_value, decision.profile_id) == ("detach", SHOP_EMAIL, glued.pk)
    assert (decision.reason, decision.actor[:4]) == ("shop mailbox", "cli:")
    assert result["identifier"] == {"kind": "email", "value": SHOP_EMAIL}
    assert (result["reversed"], result["records_replayed"], result["held"]) == (False, 7, 0)
    assert text.startswith(f"Split email {SHOP_EMAIL} off profile {glued.pk} (decision {decision.pk}):")
    assert "its records now make 3 profiles" in text and "Replayed 7 raw records" in text
    bob = people[frozenset(PEOPLE["bob"])]
    assert f"profile {bob.pk} (cookie b1, cookie b2, email bob@example.com)" in text
    assert (bob.city, bob.cookie_count) == ("Boston", 2)
    assert AuditEvent.objects.filter(action="link_decision").count() == 1


def test_the_value_is_normalized_as_ingestion_does(glued):
    _, result = split_profile(glued.pk, "--email", "  Info@SHOP.example ")

    assert result["identifier"]["value"] == SHOP_EMAIL and len(result["profiles"]) == 3


def test_a_cookie_can_be_split_off(db):
    """A shop's tablet, used by two customers, glued them."""
    ingest(
        record(cookie="d1", email="dana@example.com", created_at="1/1/2025 09:00"),
        record(cookie="e1", email="eli@example.com", created_at="1/2/2025 09:00"),
        record(cookie="tablet", email="dana@example.com", created_at="1/3/2025 09:00"),
        record(cookie="tablet", email="eli@example.com", created_at="1/4/2025 09:00"),
    )
    shop = profile_for("cookie", "tablet")

    _, result = split_profile(shop.pk, "--cookie", " tablet ")

    assert result["identifier"] == {"kind": "cookie", "value": "tablet"}
    assert LinkDecision.objects.get().identifier_value == "tablet"
    assert set(people_by_identifiers()) == {
        frozenset({"cookie:d1", "email:dana@example.com"}),
        frozenset({"cookie:e1", "email:eli@example.com"}),
    }


def test_a_phone_can_be_split_off_where_phones_link_people(db, settings):
    settings.IDENTITY_MATCH_PHONE = True
    ingest(
        record(cookie="d1", email="dana@example.com", phone_number="+1 415 555 0100", created_at="1/1/2025 09:00"),
        record(cookie="e1", email="eli@example.com", phone_number="+1 415 555 0100", created_at="1/2/2025 09:00"),
    )
    family = profile_for("phone", "+14155550100")

    _, result = split_profile(family.pk, "--phone", "+1 (415) 555-0100")

    assert result["identifier"] == {"kind": "phone", "value": "+14155550100"}
    assert set(people_by_identifiers()) == {
        frozenset({"cookie:d1", "email:dana@example.com"}),
        frozenset({"cookie:e1", "email:eli@example.com"}),
    }


def test_relink_restores_the_glued_profile(glued):
    before = profiles_snapshot()
    _, split = split_profile(glued.pk, "--email", SHOP_EMAIL)

    text, result = split_profile("--relink", split["decision"])

    assert profiles_snapshot() == before
    assert result["profiles"] == [glued.pk] and result["reversed"] is True
    decision = LinkDecision.objects.get()
    assert not decision.active and decision.reversed_by.startswith("cli:")
    assert text.startswith(
        f"Re-linked email {SHOP_EMAIL} (decision {decision.pk} reversed): its records now make 1 profile:"
    )
    assert AuditEvent.objects.filter(action="link_decision").count() == 2


def test_without_json_the_command_prints_only_its_summary(glued):
    out = StringIO()

    call_command("split_profile", str(glued.pk), "--email", SHOP_EMAIL, stdout=out)

    [line] = out.getvalue().strip().splitlines()
    assert line.startswith(f"Split email {SHOP_EMAIL} off profile {glued.pk}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999", "--email", SHOP_EMAIL], "PROFILE_ID 999999: no such profile"),
        (["{glued}", "--email", "nobody@example.com"], "--email: Profile {glued} holds no email 'nobody@example.com'."),
        (["{glued}", "--phone", "+14155550100"], "--phone: Profile {glued} holds no phone identifier."),
        (["{glued}", "--email", "not an email"], "--email: 'not an email' is not a valid address."),
        (["{glued}", "--cookie", "   "], "--cookie: give a non-empty cookie."),
        (["{glued}", "--phone", "call me"], "--phone: 'call me' has no digits."),
        (["{glued}", "--email", SHOP_EMAIL, "--reason", "x" * 301], "--reason: at most 300 characters."),
        (["{glued}"], "Give the identifier to split off profile {glued}"),
        ([], "Give PROFILE_ID with --email, --cookie or --phone to split, or --relink DECISION_ID."),
        (["--relink", "999999"], "--relink 999999: no such link decision."),
        (["{glued}", "--relink", "1"], "--relink takes no PROFILE_ID"),
        (["{glued}", "--email", SHOP_EMAIL, "--cookie", "a1"], "not allowed with argument"),
        (["{glued}", "--email", SHOP_EMAIL, "--relink", "1"], "not allowed with argument"),
        (["abc", "--email", SHOP_EMAIL], "invalid int value: 'abc'"),
    ],
)
def test_bad_input_is_an_error_naming_the_argument_with_exit_code_1_and_changes_nothing(glued, args, message):
    before = state()

    with pytest.raises(CommandError, match=message.format(glued=glued.pk).replace("(", r"\(").replace(")", r"\)")):
        call_command("split_profile", *(arg.format(glued=glued.pk) for arg in args), stdout=StringIO())

    assert state() == before


def test_refusals_exit_with_code_1(glued):
    with pytest.raises(CommandError) as raised:
        call_command("split_profile", "999999", "--email", SHOP_EMAIL, stdout=StringIO())

    assert raised.value.returncode == 1


def test_the_only_identifier_of_a_profile_cannot_be_split_off(db):
    [outcome] = ingest(record(cookie="solo", email=""))
    before = state()

    with pytest.raises(CommandError, match="--cookie: cookie 'solo' is the profile's only identifier"):
        call_command("split_profile", str(outcome.profile_id), "--cookie", "solo", stdout=StringIO())

    assert state() == before


def test_relinking_a_decision_twice_is_refused_and_changes_nothing(glued):
    _, split = split_profile(glued.pk, "--email", SHOP_EMAIL)
    split_profile("--relink", split["decision"])
    before = state()

    with pytest.raises(CommandError, match=f"--relink {split['decision']}: Decision {split['decision']} was already"):
        call_command("split_profile", "--relink", str(split["decision"]), stdout=StringIO())

    assert state() == before


def test_a_split_is_refused_while_an_import_runs_and_changes_nothing(glued, transactional_db):
    before = state()

    with writer_lock_held_elsewhere(), pytest.raises(CommandError, match="Another import or rebuild is running"):
        call_command("split_profile", str(glued.pk), "--email", SHOP_EMAIL, stdout=StringIO())

    assert state() == before


def test_a_relink_is_refused_while_an_import_runs_and_changes_nothing(glued, transactional_db):
    _, split = split_profile(glued.pk, "--email", SHOP_EMAIL)
    before = state()

    with writer_lock_held_elsewhere(), pytest.raises(CommandError, match="Another import or rebuild is running"):
        call_command("split_profile", "--relink", str(split["decision"]), stdout=StringIO())

    assert state() == before
    assert LinkDecision.objects.get().active
