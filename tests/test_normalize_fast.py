"""The fast paths of users_app.normalize give exactly what the general (reference) paths give."""

import datetime as dt

import phonenumbers
import pycountry
import pytest
from email_validator import validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from users_app import normalize
from users_app.normalize import (
    FieldWarning,
    RecordRejected,
    is_possible_phone,
    normalize_email,
    normalize_interests,
    parse_created_at,
    parse_record,
)


def outcome(function, *args):
    """A function's result, or the type, text and fields of what it raised, for comparisons."""
    try:
        result = function(*args)
    except (FieldWarning, RecordRejected) as exc:
        return type(exc), str(exc), getattr(exc, "fields", None)
    if isinstance(result, dt.datetime):
        return result, result.tzinfo
    return result


# Email ----------------------------------------------------------------------------------------


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(normalize._PLAIN_EMAIL, fullmatch=True).filter(normalize._is_plain_email))
def test_every_address_the_fast_email_path_takes_is_valid_for_email_validator(address):
    validate_email(address, check_deliverability=False, globally_deliverable=False)
    assert normalize_email(address) == normalize._normalize_email_with_validator(address) == address


@pytest.mark.parametrize("address", ["x@0---0.aa", "x@ab--cd.com", "x@a.b---c.org"])
def test_labels_with_two_dashes_at_characters_3_and_4_are_left_to_email_validator(address):
    """Found by the property above: email-validator refuses them, so the fast path must not take them."""
    assert not normalize._is_plain_email(address)
    with pytest.raises(FieldWarning):
        normalize_email(address)


EMAIL_CHARACTERS = "abcXYZ019.-_+!#$%&'*/=?^`{|}~\"<> ()[]\\@,;:é\u0301ü\u200b\uff20\uff0e"
domain_labels = st.one_of(
    st.sampled_from(["com", "co", "example", "test", "localhost", "local", "onion", "arpa", "invalid", "c"]),
    st.sampled_from(
        ["xn--p1ai", "xn--abc", "ab--cd", "0---0", "a---b", "a-b", "-ab", "ab-", "123", "1a", "a" * 63, "a" * 64]
    ),
    st.text("abz09-_.", max_size=8),
)


@st.composite
def email_like(draw):
    local = draw(st.text(EMAIL_CHARACTERS, max_size=12) | st.just("a" * 65) | st.just("a" * 64))
    domain = ".".join(draw(st.lists(domain_labels, max_size=5)))
    separator = draw(st.sampled_from(["@", "@@", " @", "@ ", ""]))
    return draw(st.sampled_from(["", " ", "\t"])) + local + separator + domain + draw(st.sampled_from(["", " ", "."]))


@settings(max_examples=3000, deadline=None)
@given(email_like() | st.text(EMAIL_CHARACTERS) | st.text())
@example("user@example.test")
@example("user@mail.localhost")
@example("user@xn--p1ai.com")
@example("user@ab--cd.com")
@example("a" * 65 + "@example.com")
@example("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com")
def test_normalize_email_equals_the_email_validator_path_for_any_text(text):
    assert outcome(normalize_email, text) == outcome(normalize._normalize_email_with_validator, text)
    if normalize._is_plain_email(text.strip().lower()):
        validate_email(text.strip().lower(), check_deliverability=False, globally_deliverable=False)


def test_the_fast_email_path_takes_common_addresses():
    assert normalize._is_plain_email("margaret.lopez286@yahoo.com")
    assert normalize._is_plain_email("o'neil+news@mail.example.co.uk")


# created_at -----------------------------------------------------------------------------------

# Digits in and around the M/D/YYYY H:MM shape: unpadded, padded, too many, non-ASCII, empty.
date_part = st.one_of(
    st.integers(0, 99).map(str),
    st.integers(0, 99).map("{:02d}".format),
    st.integers(0, 99999).map(str),
    st.text("0123456789\u0663 ", max_size=5),
)


@st.composite
def csv_like_dates(draw):
    month, day, year, hour, minute = (draw(date_part) for _ in range(5))
    year = draw(st.integers(0, 10000).map("{:04d}".format) | st.just(year))
    seconds = draw(st.sampled_from(["", ":00", ":7", ":61"]))
    space = draw(st.sampled_from([" ", "  ", "T", "\t", ""]))
    padding = draw(st.sampled_from(["", " ", "\n"]))
    return f"{padding}{month}/{day}/{year}{space}{hour}:{minute}{seconds}{padding}"


@settings(max_examples=3000, deadline=None)
@given(csv_like_dates() | st.text("0123456789/: T-+Z.", max_size=25))
@example("1/21/2024 12:14")
@example("2/29/2023 1:00")
@example("13/1/2024 1:00")
@example("1/1/0000 0:00")
@example("12/31/9999 23:59")
@example("1/1/2024 24:00")
def test_parse_created_at_equals_the_strptime_path(text):
    assert outcome(parse_created_at, text) == outcome(normalize._parse_created_at_text, text.strip())


def test_the_fast_date_path_reads_the_seed_format():
    assert normalize._CSV_MINUTE.fullmatch("1/21/2024 12:14")
    assert parse_created_at("1/21/2024 2:05") == dt.datetime(2024, 1, 21, 2, 5, tzinfo=dt.UTC)


# Phone ----------------------------------------------------------------------------------------

REGIONS = [None, "", *sorted(phonenumbers.SUPPORTED_REGIONS | {c.alpha_2 for c in pycountry.countries})]
CALLING_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def possible_for_phonenumbers(number, region):
    """The rule without the fast path: possible as given with a '+', or as a national number of the region."""
    candidates = [number if number.startswith("+") else "+" + number] + ([number] if region else [])
    for candidate in candidates:
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(candidate, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


phone_digits = st.one_of(
    st.text("0123456789", min_size=1, max_size=17),
    st.builds(
        lambda code, rest: (code + rest)[:17], st.sampled_from(CALLING_CODES), st.text("0123456789", max_size=15)
    ),
    st.text("0123456789\u0663\uff11", min_size=1, max_size=17),
)


@settings(max_examples=5000, deadline=None)
@given(digits=phone_digits, plus=st.booleans(), region=st.sampled_from(REGIONS))
@example(digits="15656889169", plus=False, region="GB")
@example(digits="442079460958", plus=True, region=None)
@example(digits="11234567890", plus=False, region="US")
def test_is_possible_phone_equals_phonenumbers(digits, plus, region):
    number = "+" + digits if plus else digits
    assert is_possible_phone(number, region) == possible_for_phonenumbers(number, region)


def test_the_fast_phone_path_decides_common_numbers():
    assert normalize._possible_international("15656889169") is True
    assert normalize._possible_international("442079460958") is True
    assert normalize._possible_international("1565688916") is False


# Memoized fields ------------------------------------------------------------------------------

field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-200, 200),
    st.floats(allow_nan=False),
    st.sampled_from(["", " 45 ", "45.0", "131", "India", "UK", "Atlantis", "f", "robot", "TAMIL NADU", "x" * 300]),
    st.sampled_from(["Under $25,000", "$150,000+", "$10k - $20k", "lots", "Tech|tech| Gaming |", "a" * 101]),
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=3),
)

READERS = [
    (normalize._read_country, normalize.normalize_country, ()),
    (normalize._read_label, normalize.normalize_label, ("state",)),
    (normalize._read_label, normalize.normalize_label, ("city",)),
    (normalize._read_age, normalize.normalize_age, ()),
    (normalize._read_gender, normalize.normalize_gender, ()),
    (normalize._read_income, normalize.parse_income, ()),
]


@pytest.mark.parametrize(("reader", "normalizer", "args"), READERS)
@settings(max_examples=300, deadline=None)
@given(value=field_values)
def test_memoized_readers_give_the_normalizers_result_or_warning_on_every_call(reader, normalizer, args, value):
    try:
        expected = normalizer(value, *args), None
    except FieldWarning as exc:
        expected = None, str(exc)
    for _ in range(2):  # a miss, then a hit for text values
        got = reader(value, *args)
        assert got == expected
        assert type(got[0]) is type(expected[0])


@settings(max_examples=500, deadline=None)
@given(field_values)
def test_memoized_interests_equal_normalize_interests(value):
    expected = normalize_interests(value)
    for _ in range(2):
        fields = {"cookie": "c1", "interests": value, "created_at": "1/1/2025 0:00"}
        record = parse_record(fields)
        assert (list(record.interests.items()), list(record.warnings)) == (list(expected[0].items()), expected[1])


def test_a_changed_parsed_record_does_not_change_the_next_one():
    fields = {"cookie": "c1", "state": "TAMIL NADU", "interests": "Tech|Gaming", "created_at": "1/1/2025 0:00"}
    first = parse_record(fields)
    first.interests["books"] = "Books"
    first.traits["state"]["state"] = "changed"
    second = parse_record(fields)
    assert second.interests == {"tech": "Tech", "gaming": "Gaming"}
    assert second.traits["state"] == {"state": "Tamil Nadu"}
