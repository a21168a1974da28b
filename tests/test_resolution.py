"""Identity resolution as the contract says: one profile per person, transitively, with traits
from the latest record, whatever road and order the records take."""

import pytest
from django.test import override_settings

from tests.builders import identifiers_of, ingest, ingest_batch, profile_for, record
from users_app.models import BlockedIdentifier, Identifier, Profile, ProfileMerge, RawRecord

pytestmark = pytest.mark.django_db


def test_a_new_record_creates_a_profile_whose_id_is_the_founding_record():
    (outcome,) = ingest(record(cookie="A", email="x@example.com"))
    profile = Profile.objects.get()
    assert outcome.status == "created"
    assert profile.id == outcome.raw_record_id
    assert identifiers_of(profile) == {"cookie:A", "email:x@example.com"}
    assert RawRecord.objects.get().profile_id == profile.id


def test_transitive_chain_is_one_person_with_two_cookies_and_two_emails():
    ingest(
        record(cookie="A", email="x@example.com"),
        record(cookie="B", email="x@example.com"),
        record(cookie="B", email="y@example.com"),
    )
    profile = Profile.objects.get()
    assert identifiers_of(profile) == {"cookie:A", "cookie:B", "email:x@example.com", "email:y@example.com"}
    assert profile.cookie_count == 2
    assert Profile.objects.multi_device().count() == 1
    assert set(profile.raw_records.values_list("id", flat=True)) == set(RawRecord.objects.values_list("id", flat=True))


def test_the_same_chain_in_one_batch_gives_the_same_profile():
    ingest_batch(
        [
            record(cookie="A", email="x@example.com"),
            record(cookie="B", email="x@example.com"),
            record(cookie="B", email="y@example.com"),
        ]
    )
    assert identifiers_of(Profile.objects.get()) == {
        "cookie:A",
        "cookie:B",
        "email:x@example.com",
        "email:y@example.com",
    }


def test_a_record_bridging_two_profiles_merges_them_into_the_first_seen_and_writes_the_ledger():
    later, earlier = ingest(
        record(cookie="A", email="late@example.com", created_at="2/1/2025 10:00"),
        record(cookie="B", email="early@example.com", created_at="1/1/2025 10:00"),
    )
    (bridge,) = ingest(record(cookie="A", email="early@example.com", created_at="3/1/2025 10:00"))

    profile = Profile.objects.get()
    assert bridge.status == "merged"
    assert profile.id == earlier.profile_id  # first seen survives, though it arrived second
    assert identifiers_of(profile) == {"cookie:A", "cookie:B", "email:late@example.com", "email:early@example.com"}
    merge = ProfileMerge.objects.get()
    assert (merge.survivor_id, merge.absorbed_id) == (earlier.profile_id, later.profile_id)
    assert (merge.identifier_kind, merge.identifier_value) == ("cookie", "A")
    assert merge.raw_record_id == bridge.raw_record_id
    assert RawRecord.objects.filter(profile_id=profile.id).count() == 3


def test_a_bridge_inside_one_batch_is_recorded_in_the_ledger_too():
    result = ingest_batch(
        [
            record(cookie="A", email="x@example.com"),
            record(cookie="B", email="y@example.com"),
            record(cookie="A", email="y@example.com"),
        ]
    )
    assert result.merges == 1
    assert Profile.objects.count() == 1
    assert ProfileMerge.objects.count() == 1


def test_email_case_and_whitespace_do_not_split_a_person():
    ingest(record(cookie="A", email="Jane.Doe@Example.COM"), record(cookie="B", email="  jane.doe@example.com "))
    profile = Profile.objects.get()
    assert identifiers_of(profile) == {"cookie:A", "cookie:B", "email:jane.doe@example.com"}
    assert profile.email == "jane.doe@example.com"


def test_cookie_whitespace_is_trimmed_but_case_matters():
    ingest(record(cookie=" abc ", email=""), record(cookie="abc", email=""), record(cookie="ABC", email=""))
    assert Profile.objects.count() == 2
    assert profile_for("cookie", "abc").raw_records.count() == 2


def test_invalid_email_is_not_used_as_an_identifier_and_warns():
    first, _ = ingest(
        record(cookie="A", email="broken-at-example.com"), record(cookie="B", email="broken-at-example.com")
    )
    assert Profile.objects.count() == 2
    assert not Identifier.objects.filter(kind="email").exists()
    assert any(w.startswith("email:") for w in first.warnings)
    assert RawRecord.objects.get(pk=first.raw_record_id).warnings == list(first.warnings)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"cookie": "", "email": ""}, "no usable identifier"),
        ({"cookie": "", "email": "not-an-email"}, "no usable identifier"),
        ({"cookie": "null", "email": "undefined"}, "no usable identifier"),
        ({"created_at": "not a date"}, "created_at"),
        ({"created_at": ""}, "created_at"),
    ],
)
def test_records_without_identifier_or_readable_date_are_rejected_and_not_stored(fields, reason):
    (outcome,) = ingest(record(**fields))
    assert outcome.status == "rejected"
    assert reason in outcome.reason
    assert not RawRecord.objects.exists()
    assert not Profile.objects.exists()


def test_bad_age_and_unknown_gender_are_warnings_on_an_accepted_record():
    (outcome,) = ingest(record(cookie="A", age="abc", gender="robot", country="Japan"))
    profile = Profile.objects.get()
    assert outcome.status == "created"
    assert profile.age is None and profile.gender == "" and profile.country == "Japan"
    assert {w.split(":")[0] for w in outcome.warnings} == {"age", "gender"}


def test_latest_created_at_wins_even_when_records_arrive_out_of_order():
    ingest(
        record(cookie="A", country="India", age="30", created_at="3/1/2025 10:00"),
        record(cookie="A", country="Japan", age="25", created_at="1/1/2025 10:00"),
    )
    profile = Profile.objects.get()
    assert (profile.country, profile.age) == ("India", 30)
    assert profile.first_seen.month == 1 and profile.last_seen.month == 3


def test_equal_created_at_is_decided_by_arrival_order():
    ingest(
        record(cookie="A", country="Brazil", state="Rio de Janeiro", created_at="6/29/2024 9:20"),
        record(cookie="A", country="INDIA", state="TAMIL NADU", created_at="6/29/2024 9:20"),
    )
    profile = Profile.objects.get()
    assert (profile.country, profile.state) == ("India", "Tamil Nadu")


def test_an_empty_value_never_erases_a_known_one():
    ingest(
        record(cookie="A", city="Pune", income="$150,000+", phone_number="19337251087", created_at="1/1/2025 0:00"),
        record(cookie="A", city="", income="", phone_number="", created_at="2/1/2025 0:00"),
    )
    profile = Profile.objects.get()
    assert (profile.city, profile.income, profile.income_min, profile.income_max) == ("Pune", "$150,000+", 150000, None)
    assert profile.phone_number == "19337251087"


def test_traits_of_merged_profiles_follow_the_latest_record_of_either():
    ingest(
        record(cookie="A", email="a@example.com", gender="Male", education="Doctorate", created_at="1/1/2025 0:00"),
        record(cookie="B", email="b@example.com", gender="Female", created_at="5/1/2025 0:00"),
        record(cookie="A", email="b@example.com", created_at="2/1/2025 0:00"),
    )
    profile = Profile.objects.get()
    assert (profile.gender, profile.education) == ("Female", "Doctorate")
    assert (profile.cookie, profile.email) == ("B", "b@example.com")  # most recent of each


def test_interests_are_the_union_of_all_records_case_insensitively():
    ingest(
        record(cookie="A", interests="Tech|Gaming"),
        record(cookie="A", interests="tech| travel "),
    )
    keys = set(Profile.objects.get().interests.values_list("key", flat=True))
    assert keys == {"tech", "gaming", "travel"}


def test_phone_float_rendering_is_repaired():
    ingest(record(cookie="A", phone_number="19337251087.0"))
    assert Profile.objects.get().phone_number == "19337251087"


def test_country_case_and_aliases_fold_to_one_value():
    ingest(record(cookie="A", country="INDIA"), record(cookie="B", country="India"), record(cookie="C", country="UK"))
    assert sorted(Profile.objects.values_list("country", flat=True)) == ["India", "India", "United Kingdom"]


@pytest.mark.parametrize("placeholder", ["", "null", "undefined", "none", "0", "[object Object]"])
def test_placeholder_values_never_link_anyone(placeholder):
    ingest(record(cookie=placeholder, email="a@example.com"), record(cookie=placeholder, email="b@example.com"))
    assert Profile.objects.count() == 2


def test_block_listed_values_never_link_anyone():
    BlockedIdentifier.objects.create(kind="email", value="info@shop.com", reason="shared mailbox")
    ingest(record(cookie="A", email="info@shop.com"), record(cookie="B", email="INFO@shop.com"))
    assert Profile.objects.count() == 2
    assert not Identifier.objects.filter(value="info@shop.com").exists()


@override_settings(IDENTIFIER_BLOCKLIST=["test-cookie"])
def test_block_list_from_settings_applies_to_any_kind():
    ingest(record(cookie="test-cookie", email="a@example.com"), record(cookie="test-cookie", email="b@example.com"))
    assert Profile.objects.count() == 2


def test_phone_is_a_trait_not_an_identifier_by_default():
    ingest(record(cookie="A", phone_number="19337251087"), record(cookie="B", phone_number="19337251087"))
    assert Profile.objects.count() == 2


@override_settings(IDENTITY_MATCH_PHONE=True)
def test_phone_links_records_when_phone_matching_is_on():
    ingest(record(cookie="A", phone_number="19337251087"), record(cookie="B", phone_number="19337251087.0"))
    profile = Profile.objects.get()
    assert "phone:19337251087" in identifiers_of(profile)


def test_the_same_message_key_is_stored_once():
    from users_app.ingestion import IncomingRecord, records_ingest

    data = record(cookie="A")
    first = records_ingest(records=[IncomingRecord(data=data, source="api", source_key="api:m1")])
    again = records_ingest(records=[IncomingRecord(data=data, source="api", source_key="api:m1")] * 2)
    assert [(o.status, o.duplicate) for o in again.outcomes] == [("created", True), ("created", True)]
    assert {o.raw_record_id for o in again.outcomes} == {first.outcomes[0].raw_record_id}
    assert RawRecord.objects.count() == 1
