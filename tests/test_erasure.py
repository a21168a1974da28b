"""Erasure on request (``erase_person``, ``users_app.erasure``) and the suppression that keeps people erased.

The world: Alice, seen on two cookies and one email, whose records merged two profiles, with a CSV
reject line naming her; Bob, a stranger with his own merge, who must come out of every erasure of
Alice exactly as he went in; and a reject line of someone whose email merely contains hers.
"""

import json
import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.builders import (
    identifiers_of,
    ingest,
    ingest_batch,
    profile_for,
    profiles_snapshot,
    record,
    write_csv,
)
from users_app import erasure, governance
from users_app.importing import csv_import
from users_app.ingestion import profiles_rebuild
from users_app.models import (
    AuditEvent,
    HeldLink,
    Identifier,
    IdentityGuards,
    ImportReject,
    ImportRun,
    LinkDecision,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
    Suppression,
)
from users_app.suppression import identifier_hash, suppressed_identifiers

pytestmark = pytest.mark.django_db

ALICE_EMAIL = "alice@example.com"
ALICE_COOKIES = ("alice-laptop", "alice-phone")
BOB_EMAIL = "bob@example.com"
TABLES = {
    "profiles": Profile,
    "identifiers": Identifier,
    "raw_records": RawRecord,
    "profile_interests": ProfileInterest,
    "merge_ledger": ProfileMerge,
    "import_rejects": ImportReject,
    "held_links": HeldLink,
    "link_decisions": LinkDecision,
}


def counts() -> dict[str, int]:
    return {name: model.objects.count() for name, model in TABLES.items()}


def everything() -> dict:
    """Every row of every table an erasure touches, comparable before and after."""
    rows = {name: list(model.objects.order_by("pk").values()) for name, model in TABLES.items()}
    rows["suppressions"] = list(Suppression.objects.order_by("pk").values())
    rows["import_runs"] = list(ImportRun.objects.order_by("pk").values())
    return rows


def bob() -> dict:
    """Bob's profile as a snapshot entry (identifiers, traits, interests, raw records)."""
    return {key: value for key, value in profiles_snapshot().items() if f"email:{BOB_EMAIL}" in key}


@pytest.fixture
def world(tmp_path):
    # A CSV import first: Alice's laptop, a line naming her that is rejected (unreadable date),
    # Bob, and someone's rejected line whose email merely contains hers.
    write_csv(
        tmp_path / "first.csv",
        [
            record(cookie=ALICE_COOKIES[0], email="", interests="Tech|Travel", created_at="1/1/2025 9:00"),
            record(cookie="", email=ALICE_EMAIL, created_at="not a date"),
            record(cookie="bob-1", email=BOB_EMAIL, interests="Golf", created_at="1/1/2025 9:00"),
            record(cookie="", email=f"x{ALICE_EMAIL}", created_at="not a date"),
        ],
    )
    csv_import(path=tmp_path / "first.csv")
    # Then the API: Alice's phone with her email (a second profile), then a record linking both.
    ingest(
        record(cookie=ALICE_COOKIES[1], email=ALICE_EMAIL, country="India", created_at="1/2/2025 9:00"),
        record(cookie=ALICE_COOKIES[0], email=ALICE_EMAIL, age="31", created_at="1/3/2025 9:00"),
        record(cookie="bob-2", email="", created_at="1/2/2025 9:00"),
        record(cookie="bob-2", email=BOB_EMAIL, created_at="1/3/2025 9:00"),
    )
    alice = profile_for("email", ALICE_EMAIL)
    assert alice.cookie_count == 2 and ProfileMerge.objects.filter(survivor_id=alice.pk).count() == 1
    assert ProfileMerge.objects.count() == 2 and ImportReject.objects.count() == 2
    return alice


def erase(*args: str) -> tuple[str, dict]:
    """Run the command with --json; its text and its JSON summary."""
    out = StringIO()
    call_command("erase_person", *args, "--json", stdout=out)
    text, summary = out.getvalue().strip().rsplit("\n", 1)
    return text, json.loads(summary)


ALICE_ROWS = {
    "profiles": 1,
    "identifiers": 3,  # two cookies, one email
    "raw_records": 3,  # the CSV line and two API records
    "profile_interests": 2,
    "merge_ledger": 1,
    "import_rejects": 1,  # the line naming her; the x-alice line stays
    "held_links": 0,
    "link_decisions": 0,
}


def test_a_dry_run_changes_nothing_and_says_what_would_go(world):
    before = everything()

    text, summary = erase("--email", ALICE_EMAIL)

    assert everything() == before
    assert not Suppression.objects.exists() and not AuditEvent.objects.filter(action="erasure").exists()
    assert summary["dry_run"] is True and summary["profile_id"] == world.pk
    assert summary["removed"] == ALICE_ROWS and summary["rows_removed"] == 11
    assert summary["suppressions_recorded"] == 3 and summary["in_multi_device_cohort"] is True
    assert text.startswith(f"Dry run: erasing profile {world.pk} would remove 1 profile, 3 identifiers, 3 raw records")
    assert "--for-real" in text


def test_for_real_removes_the_person_everywhere_and_leaves_everyone_else_as_they_were(world):
    before, bob_before = counts(), bob()
    bob_ledger = list(ProfileMerge.objects.values_list("survivor_id", "absorbed_id", "identifier_value"))
    bob_ledger = [row for row in bob_ledger if row[2] != ALICE_EMAIL and row[2] not in ALICE_COOKIES]

    text, summary = erase("--email", ALICE_EMAIL, "--for-real")

    assert summary["dry_run"] is False and summary["removed"] == ALICE_ROWS
    assert counts() == {name: before[name] - ALICE_ROWS[name] for name in TABLES}
    assert not Profile.objects.filter(pk=world.pk).exists()
    assert not RawRecord.objects.filter(data__email=ALICE_EMAIL).exists()
    assert not RawRecord.objects.filter(data__cookie__in=ALICE_COOKIES).exists()
    assert not Identifier.objects.filter(value__in=[ALICE_EMAIL, *ALICE_COOKIES]).exists()
    assert f",x{ALICE_EMAIL}," in ImportReject.objects.get().original  # the line that only contains hers
    assert bob() == bob_before
    assert list(ProfileMerge.objects.values_list("survivor_id", "absorbed_id", "identifier_value")) == bob_ledger
    assert ImportRun.objects.get().accepted == 2  # the runs' counters are figures, not personal data
    assert text.startswith(f"Erased profile {world.pk}: removed 1 profile, 3 identifiers, 3 raw records")


def test_the_suppression_list_holds_salted_hashes_of_every_identifier_and_no_value(world):
    erase("--cookie", f"  {ALICE_COOKIES[1]} ", "--for-real")

    stored = set(Suppression.objects.values_list("kind", "value_hash"))
    expected = {("email", ALICE_EMAIL), *(("cookie", cookie) for cookie in ALICE_COOKIES)}
    assert stored == {(kind, identifier_hash(kind, value)) for kind, value in expected}
    assert suppressed_identifiers([*expected, ("email", BOB_EMAIL)]) == expected
    dump = repr(list(Suppression.objects.values()))
    assert not any(value in dump for _, value in expected)


def test_the_hash_depends_on_the_key_so_changing_the_key_forgets_suppressions(world, settings):
    erase("--email", ALICE_EMAIL, "--for-real")
    assert suppressed_identifiers([("email", ALICE_EMAIL)])

    settings.PII_HASH_KEY = "another key"

    assert not suppressed_identifiers([("email", ALICE_EMAIL)])


def test_an_erasure_is_in_the_audit_log_with_counts_and_without_the_erased_values(world):
    erase("--email", ALICE_EMAIL, "--for-real")

    event = AuditEvent.objects.get(action="erasure")
    assert event.actor.startswith("cli:")
    assert event.details["removed"] == ALICE_ROWS and event.details["profile_id"] == world.pk
    assert event.details["suppressions_recorded"] == 3
    logged = f"{event.summary} {json.dumps(event.details)}"
    assert ALICE_EMAIL not in logged and not any(cookie in logged for cookie in ALICE_COOKIES)


@pytest.mark.parametrize("given", [" Alice@EXAMPLE.com ", "ALICE@example.COM"])
def test_the_email_is_normalized_as_ingestion_does(world, given):
    _, summary = erase("--email", given)

    assert summary["profile_id"] == world.pk


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "nobody@example.com"], "No person has the email 'nobody@example.com'."),
        (["--cookie", "no-such-cookie"], "No person has the cookie 'no-such-cookie'."),
        (["--email", "not an email"], "'not an email' is not a valid email address"),
        (["--cookie", "   "], "Give a non-empty cookie."),
    ],
)
def test_an_identifier_that_matches_nobody_is_an_error_with_exit_code_1(world, args, message):
    before = everything()

    with pytest.raises(CommandError, match=message) as raised:
        call_command("erase_person", *args, "--for-real", stdout=StringIO())

    assert raised.value.returncode == 1
    assert everything() == before


def test_asking_again_after_an_erasure_says_the_person_was_erased(world):
    erase("--email", ALICE_EMAIL, "--for-real")

    with pytest.raises(CommandError, match="belonged to a person erased before"):
        call_command("erase_person", "--email", ALICE_EMAIL, stdout=StringIO())


def test_email_and_cookie_are_exclusive_and_one_is_required(world):
    with pytest.raises(CommandError):
        call_command("erase_person", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("erase_person", "--email", ALICE_EMAIL, "--cookie", "x", stdout=StringIO())


def test_a_later_csv_import_drops_and_counts_the_erased_persons_records(world, tmp_path):
    erase("--email", ALICE_EMAIL, "--for-real")
    raw_before = RawRecord.objects.count()
    path = write_csv(
        tmp_path / "later.csv",
        [
            record(cookie="new-cookie-1", email="  ALICE@Example.COM "),  # her email, another case
            record(cookie=ALICE_COOKIES[0], email="new@example.com"),  # her cookie, a new email
            record(cookie="new-cookie-2", email=BOB_EMAIL),  # Bob: stored and linked
            record(cookie="new-cookie-3", email="carol@example.com"),  # a new person: stored
            record(cookie="", email="alice@example.com ", created_at="not a date"),  # hers: dropped, not a reject
            record(cookie="", email="", created_at="1/1/2025 9:00"),  # nobody's: a reject as ever
        ],
    )
    rejects_before = ImportReject.objects.count()

    out = StringIO()
    call_command("import_csv", str(path), "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])

    assert (summary["rows"], summary["accepted"], summary["rejected"], summary["suppressed"]) == (6, 2, 1, 3)
    assert "3 rows dropped: they hold identifiers of people erased on request" in out.getvalue()
    run = ImportRun.objects.get(pk=summary["import_run"])
    assert (run.accepted, run.rejected, run.suppressed) == (2, 1, 3)
    assert ImportReject.objects.count() == rejects_before + 1
    assert not ImportReject.objects.filter(original__icontains=ALICE_EMAIL, import_run=run).exists()
    assert RawRecord.objects.count() == raw_before + 2
    assert not RawRecord.objects.filter(import_run=run, data__cookie__in=["new-cookie-1", ALICE_COOKIES[0]]).exists()
    assert not Identifier.objects.filter(value__in=[ALICE_EMAIL, ALICE_COOKIES[0], "new@example.com"]).exists()
    assert profile_for("email", BOB_EMAIL) == profile_for("cookie", "new-cookie-2")
    assert profile_for("email", "carol@example.com")


def test_records_ingested_later_are_dropped_and_counted_when_any_identifier_is_suppressed(world):
    erase("--email", ALICE_EMAIL, "--for-real")
    raw_before = RawRecord.objects.count()

    result = ingest_batch(
        [
            record(cookie="elsewhere", email=" Alice@Example.com"),
            record(cookie=ALICE_COOKIES[1], email=""),
            record(cookie="bob-3", email=BOB_EMAIL),
        ]
    )

    assert [o.status for o in result.outcomes] == ["suppressed", "suppressed", "updated"]
    assert (result.suppressed, result.accepted) == (2, 1)
    assert all(o.raw_record_id is None and o.profile_id is None for o in result.outcomes[:2])
    assert RawRecord.objects.count() == raw_before + 1
    assert not Identifier.objects.filter(value="elsewhere").exists()


def suppression_queries(records: list[dict]) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        result = ingest_batch(records)
    return sum(Suppression._meta.db_table in query["sql"] for query in queries.captured_queries), result


def test_a_batch_is_checked_against_the_suppression_list_in_two_queries_whatever_its_size(world):
    erase("--email", ALICE_EMAIL, "--for-real")

    small, _ = suppression_queries([record(), record()])
    large, result = suppression_queries([record() for _ in range(200)] + [record(email=ALICE_EMAIL)])

    assert result.suppressed == 1 and result.accepted == 200
    assert small == large == 2  # a probe (is anyone suppressed?), then one lookup for the whole batch


def test_while_nobody_is_suppressed_a_batch_costs_one_probe(db):
    count, result = suppression_queries([record() for _ in range(200)])

    assert result.accepted == 200
    assert count == 1


def rebuildable() -> dict:
    """What a rebuild recomputes, without surrogate ids and timestamps."""
    return {
        "profiles": profiles_snapshot(),
        "raw_records": list(RawRecord.objects.order_by("pk").values_list("pk", "data", "profile_id", "outcome")),
        "ledger": sorted(ProfileMerge.objects.values_list("survivor_id", "absorbed_id", "identifier_value")),
    }


def test_a_rebuild_after_an_erasure_brings_nothing_back(world):
    erase("--email", ALICE_EMAIL, "--for-real")
    before = rebuildable()

    out = StringIO()
    call_command("rebuild_profiles", "--json", stdout=out)

    assert rebuildable() == before
    assert not Identifier.objects.filter(value__in=[ALICE_EMAIL, *ALICE_COOKIES]).exists()
    assert json.loads(out.getvalue().strip().splitlines()[-1])["suppressed"] == 0


def test_a_rebuild_links_no_one_to_a_raw_record_holding_a_suppressed_identifier(world):
    erase("--email", ALICE_EMAIL, "--for-real")
    # Kept from before the erasure but linked to no one then (as a blocked identifier would leave it).
    stray = RawRecord.objects.create(
        data=record(cookie="stray", email=ALICE_EMAIL), source="api", created_at=world.first_seen
    )
    profiles_before = profiles_snapshot()

    result = profiles_rebuild()

    assert (result.suppressed, result.unlinked_ids) == (1, [stray.pk])
    assert profiles_snapshot() == profiles_before
    assert RawRecord.objects.get(pk=stray.pk).profile_id is None


def test_phone_identifiers_are_erased_and_suppressed_when_phone_matching_is_on(db, settings):
    settings.IDENTITY_MATCH_PHONE = True
    ingest(record(cookie="dana", email="dana@example.com", phone_number="+1 415 555 0100", country="USA"))

    erase("--cookie", "dana", "--for-real")

    assert suppressed_identifiers([("phone", "+14155550100")]) == {("phone", "+14155550100")}
    (outcome,) = ingest(record(cookie="dana-new", email="", phone_number="+14155550100", country="USA"))
    assert outcome.status == "suppressed"
    assert not Profile.objects.exists()


def test_erasing_a_profile_that_is_gone_is_an_error(world):
    Profile.objects.filter(pk=world.pk).delete()

    with pytest.raises(erasure.ErasureError, match=f"Profile {world.pk} no longer exists"):
        erasure.person_erase(profile=world, dry_run=False, actor="test")


def test_a_record_racing_an_erasure_is_dropped_not_stored(postgres, transactional_db):
    """PostgreSQL: an ingest that reaches the person's identifiers while an erasure holds them waits,
    then finds the suppression and drops the record, instead of founding the person again."""
    ingest(record(cookie="eve", email="eve@example.com"))
    eve = profile_for("email", "eve@example.com")
    erased, release = threading.Event(), threading.Event()
    outcomes = []

    def erase_and_hold():
        try:
            with transaction.atomic():
                erasure._erase(eve.pk, dry_run=False)
                erased.set()
                release.wait(30)
        finally:
            connection.close()

    def ingest_meanwhile():
        try:
            outcomes.extend(ingest(record(cookie="eve", email="eve-new@example.com")))
        finally:
            connection.close()

    eraser = threading.Thread(target=erase_and_hold)
    eraser.start()
    assert erased.wait(30)
    ingester = threading.Thread(target=ingest_meanwhile)
    ingester.start()
    time.sleep(0.5)  # the ingest is now waiting for the identifier row the erasure locked
    assert ingester.is_alive()
    release.set()
    eraser.join()
    ingester.join(30)

    assert [o.status for o in outcomes] == ["suppressed"]
    assert not Profile.objects.exists() and not RawRecord.objects.exists() and not Identifier.objects.exists()


# --- Identity governance: held links and link decisions ------------------------------------------

SHOP_EMAIL = "info@shop.example"


def shop_mailbox_people() -> None:
    """Alice, Bob and Carol, each with their own cookie and email, glued into one profile by the
    shop's info@ address they each used once; then the address is split off, giving the three back."""
    ingest(
        record(cookie="a1", email=ALICE_EMAIL, created_at="1/1/2025 09:00"),
        record(cookie="b1", email=BOB_EMAIL, created_at="1/2/2025 09:00"),
        record(cookie="k1", email="carol@example.com", created_at="1/3/2025 09:00"),
        record(cookie="a1", email=SHOP_EMAIL, created_at="1/4/2025 09:00"),
        record(cookie="b1", email=SHOP_EMAIL, created_at="1/5/2025 09:00"),
        record(cookie="k1", email=SHOP_EMAIL, created_at="1/6/2025 09:00"),
    )
    glued = profile_for("email", SHOP_EMAIL)
    assert glued.cookie_count == 3
    governance.profile_split(profile=glued, kind="email", value=SHOP_EMAIL, actor="user:tester")
    assert Profile.objects.count() == 3 and HeldLink.objects.filter(reason="detached").count() == 3


def governance_rows() -> str:
    """Every held link and link decision, as text to search for erased values."""
    return repr([list(HeldLink.objects.values()), list(LinkDecision.objects.values())])


def family_with_a_held_fourth_cookie() -> tuple[int, HeldLink]:
    """A family email on three cookies (the cap), and a fourth cookie's record held for review."""
    IdentityGuards.objects.create(max_cookies_per_email=3)
    outcomes = ingest(*[record(cookie=f"f{n}", email="family@example.com") for n in range(1, 5)])
    held = governance.pending_links().get()
    assert held.raw_record_id == outcomes[3].raw_record_id
    return outcomes[3].profile_id, held


def test_a_split_that_keeps_others_apart_stays_without_the_erased_persons_identifiers(db):
    shop_mailbox_people()
    decision = LinkDecision.objects.get()
    bob_and_carol = sorted(
        key for key in profiles_snapshot() if f"email:{BOB_EMAIL}" in key or "email:carol@example.com" in key
    )

    text, summary = erase("--email", ALICE_EMAIL, "--for-real")

    # Her info@ record's held link went with it; the decision stays, keeping Bob and Carol apart.
    assert (summary["removed"]["held_links"], summary["removed"]["link_decisions"]) == (1, 0)
    assert summary["link_decisions_redacted"] == 1
    assert "1 link decision keeping other people apart stays" in text
    decision.refresh_from_db()
    assert decision.active
    assert decision.anchors == [
        ["cookie", "b1"],
        ["cookie", "k1"],
        ["email", BOB_EMAIL],
        ["email", "carol@example.com"],
    ]
    assert HeldLink.objects.filter(decision=decision).count() == 2
    assert ALICE_EMAIL not in governance_rows() and "'a1'" not in governance_rows()
    assert sorted(profiles_snapshot()) == bob_and_carol
    # A rebuild reproduces that state: deleting the decision would have glued Bob and Carol again.
    before = profiles_snapshot()
    profiles_rebuild()
    assert profiles_snapshot() == before
    assert HeldLink.objects.filter(decision=decision).count() == 2


def test_a_decision_about_one_of_the_persons_identifiers_is_deleted_with_what_it_kept_apart(db):
    fourth_profile, held = family_with_a_held_fourth_cookie()
    governance.link_reject(held=held, actor="user:tester")
    assert LinkDecision.objects.get().identifier_value == "family@example.com"

    _, summary = erase("--email", "family@example.com", "--for-real")

    # The rejection named the family's email, and so did the fourth cookie's record (kept apart
    # from them): both go, and with its only record the fourth cookie's profile.
    assert (summary["removed"]["held_links"], summary["removed"]["link_decisions"]) == (1, 1)
    assert summary["rows_removed"] == sum(summary["removed"].values())
    assert not LinkDecision.objects.exists() and not HeldLink.objects.exists()
    assert not Profile.objects.filter(pk=fourth_profile).exists()
    assert not RawRecord.objects.filter(data__email="family@example.com").exists()
    after = profiles_snapshot()
    profiles_rebuild()
    assert profiles_snapshot() == after


def test_a_decision_taken_on_one_of_the_persons_records_goes_with_the_record(db):
    fourth_profile, held = family_with_a_held_fourth_cookie()
    governance.link_reject(held=held, actor="user:tester")
    family_before = {key: value for key, value in profiles_snapshot().items() if "cookie:f1" in key}

    _, summary = erase("--cookie", "f4", "--for-real")

    assert summary["profile_id"] == fourth_profile
    assert (summary["removed"]["held_links"], summary["removed"]["link_decisions"]) == (1, 1)
    assert summary["link_decisions_redacted"] == 0
    assert not LinkDecision.objects.exists() and not HeldLink.objects.exists()
    assert profiles_snapshot() == family_before
    profiles_rebuild()
    assert profiles_snapshot() == family_before


def test_an_approved_link_of_the_persons_record_goes_with_it(db):
    _, held = family_with_a_held_fourth_cookie()
    governance.link_approve(held=held, actor="user:tester")
    family = profile_for("email", "family@example.com")
    assert family.cookie_count == 4 and LinkDecision.objects.get().kind == "approve"

    _, summary = erase("--email", "family@example.com", "--for-real")

    assert summary["profile_id"] == family.pk
    assert (summary["removed"]["held_links"], summary["removed"]["link_decisions"]) == (0, 1)
    assert not LinkDecision.objects.exists() and not Profile.objects.exists()


def test_a_link_held_for_review_towards_the_person_leaves_the_review_queue(db):
    fourth_profile, held = family_with_a_held_fourth_cookie()

    _, summary = erase("--email", "family@example.com", "--for-real")

    # The held link named the family's email: it goes with its record, though that record sat in
    # another profile (a record sent with the email now would be dropped), and so does that profile.
    assert (summary["removed"]["held_links"], summary["removed"]["link_decisions"]) == (1, 0)
    assert summary["removed"]["raw_records"] == 4
    assert not governance.pending_links().exists()
    assert not RawRecord.objects.filter(pk=held.raw_record_id).exists()
    assert not Profile.objects.filter(pk=fourth_profile).exists()
    after = profiles_snapshot()
    profiles_rebuild()
    assert profiles_snapshot() == after


def test_a_dry_run_counts_the_governance_rows_and_changes_nothing(db):
    shop_mailbox_people()
    before = everything()

    text, summary = erase("--email", ALICE_EMAIL)

    assert everything() == before
    assert (summary["removed"]["held_links"], summary["removed"]["link_decisions"]) == (1, 0)
    assert summary["link_decisions_redacted"] == 1
    assert "1 held links, 0 link decisions" in text and "would stay" in text


def test_the_audit_event_counts_the_governance_rows_without_the_erased_values(db):
    shop_mailbox_people()

    erase("--email", ALICE_EMAIL, "--for-real")

    event = AuditEvent.objects.get(action="erasure")
    assert event.details["removed"]["held_links"] == 1 and event.details["removed"]["link_decisions"] == 0
    assert event.details["link_decisions_redacted"] == 1
    assert ALICE_EMAIL not in f"{event.summary} {json.dumps(event.details)}"


def test_a_profile_that_held_a_record_naming_the_person_is_resolved_again_without_it(db):
    fourth_profile, held = family_with_a_held_fourth_cookie()
    ingest(record(cookie="f4", email="own@example.com", city="Oslo"))

    _, summary = erase("--email", "family@example.com", "--for-real")

    # The record that named the family's email went; the device's other record founds its profile now.
    assert not RawRecord.objects.filter(pk=held.raw_record_id).exists()
    remaining = profile_for("email", "own@example.com")
    assert remaining.pk != fourth_profile
    assert identifiers_of(remaining) == {"cookie:f4", "email:own@example.com"}
    assert (remaining.email, remaining.city) == ("own@example.com", "Oslo")
    assert summary["removed"]["raw_records"] == 4
    after = profiles_snapshot()
    profiles_rebuild()
    assert profiles_snapshot() == after
