"""Field normalization rules of the contract (docs/identity.md), without a database."""

import datetime as dt

import pytest

from users_app.normalize import (
    FieldWarning,
    RecordRejected,
    canonical_case,
    normalize_age,
    normalize_country,
    normalize_email,
    normalize_gender,
    normalize_interests,
    normalize_label,
    normalize_phone,
    parse_created_at,
    parse_income,
    parse_record,
    record_fields,
)


def test_email_is_trimmed_and_lower_cased():
    assert normalize_email("  Margaret.Lopez286@YAHOO.com \t") == "margaret.lopez286@yahoo.com"


@pytest.mark.parametrize("bad", ["no-at-sign.com", "two@@example.com", "a@b@example.com", "user@localhost", "x@"])
def test_email_without_one_at_and_a_dotted_domain_is_invalid(bad):
    with pytest.raises(FieldWarning, match="email"):
        normalize_email(bad)


def test_email_on_a_test_domain_is_accepted():
    assert normalize_email("user@example.com") == "user@example.com"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("19337251087.0", "19337251087"),
        ("19337251087", "19337251087"),
        (19337251087.0, "19337251087"),
        ("+1 (933) 725-1087", "+19337251087"),
        ("  +44 20 7946 0958 ", "+442079460958"),
        ("", ""),
    ],
)
def test_phone_keeps_digits_and_a_leading_plus_and_repairs_float_renderings(given, expected):
    assert normalize_phone(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("INDIA", "India"),
        ("india", "India"),
        (" India ", "India"),
        ("UK", "United Kingdom"),
        ("uk", "United Kingdom"),
        ("Great Britain", "United Kingdom"),
        ("USA", "United States"),
        ("US", "United States"),
        ("United States of America", "United States"),
        ("DEU", "Germany"),
        ("South Korea", "South Korea"),
    ],
)
def test_country_folds_case_codes_and_aliases_to_one_name(given, expected):
    assert normalize_country(given) == expected


def test_country_normalization_is_idempotent():
    for name in ("UK", "USA", "INDIA", "Russia", "Vietnam", "Bolivia", "Iran"):
        once = normalize_country(name)
        assert normalize_country(once) == once


def test_unknown_country_is_a_warning():
    with pytest.raises(FieldWarning, match="country: 'Atlantis'"):
        normalize_country("Atlantis")


def test_state_and_city_in_one_case_are_title_cased_and_mixed_case_is_kept():
    assert normalize_label("  TAMIL   NADU ", "state") == "Tamil Nadu"
    assert normalize_label("rio de janeiro", "state") == "Rio de Janeiro"
    assert normalize_label("Saint-Denis", "city") == "Saint-Denis"
    assert normalize_label("SAINT-DENIS", "city") == "Saint-Denis"
    assert canonical_case(canonical_case("NEW YORK")) == "New York"


@pytest.mark.parametrize(
    ("given", "expected"), [("56", 56), (56, 56), ("25.0", 25), ("0", 0), ("130", 130), ("", None)]
)
def test_age_accepts_whole_numbers_0_to_130(given, expected):
    assert normalize_age(given) == expected


@pytest.mark.parametrize("bad", ["abc", "-1", "131", "25.5", True])
def test_age_outside_rules_is_a_warning(bad):
    with pytest.raises(FieldWarning, match="age"):
        normalize_age(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("male", "Male"), ("M", "Male"), ("FEMALE", "Female"), ("f", "Female"), ("other", "Other"),
     ("prefer NOT to say", "Prefer not to say"), ("", "")],
)  # fmt: skip
def test_gender_accepts_case_variants_and_short_forms(given, expected):
    assert normalize_gender(given) == expected


def test_unknown_gender_is_a_warning():
    with pytest.raises(FieldWarning, match="gender"):
        normalize_gender("robot")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("$75,000-$99,999", ("$75,000-$99,999", 75000, 99999)),
        ("Under $25,000", ("Under $25,000", 0, 24999)),
        ("$150,000+", ("$150,000+", 150000, None)),
        ("50000", ("50000", 50000, 50000)),
        (50000, ("50000", 50000, 50000)),
        ("$50k-$75k", ("$50k-$75k", 50000, 75000)),
        ("", ("", None, None)),
    ],
)
def test_income_keeps_the_text_and_gives_numeric_bounds(given, expected):
    assert parse_income(given) == expected


def test_income_that_is_no_bracket_is_a_warning():
    with pytest.raises(FieldWarning, match="income"):
        parse_income("quite a lot")


def test_interests_are_trimmed_case_insensitive_and_unique():
    interests, warnings = normalize_interests(" Tech | tech |GAMING||Travel ")
    assert interests == {"tech": "Tech", "gaming": "Gaming", "travel": "Travel"}
    assert warnings == []
    listed, _ = normalize_interests(["Tech", "TECH", "Gaming"])
    assert listed == {"tech": "Tech", "gaming": "Gaming"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("11/25/2024 9:20", dt.datetime(2024, 11, 25, 9, 20, tzinfo=dt.UTC)),
        ("03/10/2025 15:30", dt.datetime(2025, 3, 10, 15, 30, tzinfo=dt.UTC)),
        ("2025-03-10T15:30:00Z", dt.datetime(2025, 3, 10, 15, 30, tzinfo=dt.UTC)),
        ("2025-03-10T17:30:00+02:00", dt.datetime(2025, 3, 10, 15, 30, tzinfo=dt.UTC)),
        ("2025-03-10 15:30", dt.datetime(2025, 3, 10, 15, 30, tzinfo=dt.UTC)),
    ],
)
def test_created_at_reads_the_seed_format_and_iso_8601_naive_as_utc(given, expected):
    assert parse_created_at(given) == expected


@pytest.mark.parametrize("bad", ["", "yesterday", "13/45/2024 9:20", None])
def test_unreadable_created_at_rejects_the_record(bad):
    with pytest.raises(RecordRejected, match="created_at"):
        parse_created_at(bad)


@pytest.mark.parametrize("placeholder", ["", "null", "NULL", "undefined", "None", "0", "[object Object]"])
def test_placeholder_cookies_are_not_identifiers(placeholder):
    parsed = parse_record({"cookie": placeholder, "email": "a@example.com", "created_at": "1/1/2025 0:00"})
    assert parsed.identifiers == (("email", "a@example.com"),)


def test_record_with_only_placeholders_is_rejected():
    with pytest.raises(RecordRejected, match="no usable identifier"):
        parse_record({"cookie": "undefined", "email": "null", "created_at": "1/1/2025 0:00"})


def test_invalid_email_is_not_an_identifier_and_warns():
    parsed = parse_record({"cookie": "c1", "email": "not-an-email", "created_at": "1/1/2025 0:00"})
    assert parsed.identifiers == (("cookie", "c1"),)
    assert "email" not in parsed.traits
    assert any(w.startswith("email:") for w in parsed.warnings)


def test_blocked_values_are_not_identifiers():
    parsed = parse_record(
        {"cookie": "c1", "email": "info@shop.com", "created_at": "1/1/2025 0:00"},
        blocked=frozenset({("email", "info@shop.com")}),
    )
    assert parsed.identifiers == (("cookie", "c1"),)
    assert any("block list" in w for w in parsed.warnings)


def test_phone_is_an_identifier_only_when_phone_matching_is_on():
    fields = {"cookie": "c1", "phone_number": "19337251087.0", "created_at": "1/1/2025 0:00"}
    assert ("phone", "19337251087") not in parse_record(fields).identifiers
    assert ("phone", "19337251087") in parse_record(fields, match_phone=True).identifiers


def test_nested_json_groups_are_flattened():
    assert record_fields({"cookie": "c", "location": {"country": "USA"}, "demographics": {"age": 25}}) == {
        "cookie": "c",
        "country": "USA",
        "age": 25,
    }
