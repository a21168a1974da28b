"""Fuzzing the normalizers: each is idempotent, its result fits its column, and the record parser only rejects.

Idempotent means normalizing a normalized value changes nothing: ``norm(norm(x)) == norm(x)``. For
the normalizers whose result is not of the input's kind it means:
- ``parse_income`` returns (text, lower, upper): reading its text again gives the same triple;
- ``normalize_interests`` returns {key: label}: reading the labels again (as a list, or as one
  ``|``-joined text when no label holds a ``|``) gives the same mapping and no warning;
- ``parse_created_at`` returns a UTC datetime: its ISO 8601 text, and its ``M/D/YYYY H:MM`` text when
  it has no seconds, read again give the same datetime.
A value the normalizer refuses (a ``FieldWarning``) has no normalized form and nothing to check.
Property tests of the fast paths are in test_normalize_fast.py, of resolution in test_properties.py.
"""

import datetime as dt

import pycountry
import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.builders import ingest, ingest_batch
from tests.test_normalize_fast import csv_like_dates, email_like
from users_app.models import Identifier, Profile
from users_app.normalize import (
    COUNTRY_ALIASES,
    GENDER_ALIASES,
    MAX_INTEREST_LENGTH,
    MAX_TEXT_LENGTH,
    RECORD_FIELDS,
    FieldWarning,
    RecordRejected,
    normalize_age,
    normalize_cookie,
    normalize_country,
    normalize_email,
    normalize_gender,
    normalize_interests,
    normalize_label,
    normalize_phone,
    parse_created_at,
    parse_income,
    parse_record,
)

# Letters whose case mappings change length or do not round-trip (sharp s, n preceded by apostrophe,
# ligatures, the DZ digraphs, dotted and dotless i, Greek iota with dialytika and tonos, sigma and
# final sigma, capital sharp s, a Cherokee small letter), mixed with plain letters and separators.
TRICKY_LETTERS = "aBz\u00df\u0149\ufb01\ufb03\u01c6\u01c5\u01c4\u0130\u0131\u0390\u03a3\u03c3\u03c2\u1e9e\uab70-'. \t"
WHITESPACE = st.sampled_from(["", " ", "  ", "\t", "\n", "\u00a0", "\u2003", " \r\n "])
texts = st.one_of(
    st.text(max_size=30),
    st.text(TRICKY_LETTERS, max_size=30),
    st.lists(
        st.sampled_from(["de", "la", "DE", "of", "new", "YORK", "s\u00e3o", "\u00df", "\u0149", "-", "x"]), max_size=5
    ).map(" ".join),
)
numbers = st.one_of(st.integers(-(10**20), 10**20), st.floats())


REFUSED = object()


def normalized_or_none(normalizer, *args):
    """The normalized value, or None when the normalizer refuses it (or normalizes it to nothing)."""
    result = normalized(normalizer, *args)
    return None if result is REFUSED else result


def normalized(normalizer, *args):
    try:
        return normalizer(*args)
    except FieldWarning:
        return REFUSED


def random_case(draw, text: str) -> str:
    """The text with each letter's case flipped or not, where flipping goes back and forth."""
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(
        c.swapcase() if flip and len(c.swapcase()) == 1 and c.swapcase().swapcase() == c else c
        for c, flip in zip(text, flips, strict=True)
    )


@st.composite
def variants(draw, texts_strategy):
    """A value in random case with random surrounding whitespace."""
    return draw(WHITESPACE) + random_case(draw, draw(texts_strategy)) + draw(WHITESPACE)


FAST = settings(max_examples=250, deadline=None)


# Identifiers --------------------------------------------------------------------------------------


@FAST
@given(st.one_of(texts, numbers, st.none()))
def test_normalize_cookie_is_idempotent(value):
    once = normalize_cookie(value)
    assert normalize_cookie(once) == once


@FAST
@given(st.one_of(variants(st.emails()), email_like(), texts))
@example("  Margaret.Lopez286@YAHOO.com ")
@example("İ@example.com")
def test_normalize_email_is_idempotent_fits_its_column_and_ignores_case_and_spaces(value):
    once = normalized_or_none(normalize_email, value)
    if once is None:
        return
    assert normalize_email(once) == once
    assert once == once.strip() and len(once) <= MAX_TEXT_LENGTH
    if once.isascii():
        assert normalize_email(f" \t{once.upper()}\u00a0") == once


@FAST
@given(
    st.one_of(
        st.text("0123456789+.-() x\u0663\uff11", max_size=25),
        st.integers(0, 10**20).map(lambda n: f"{n}.0"),
        numbers,
        texts,
    )
)
@example("19337251087.0")
@example("+1 (933) 725-1087")
@example("0.0")
@example("1.00.0")
def test_normalize_phone_is_idempotent_and_fits_its_column(value):
    once = normalized_or_none(normalize_phone, value)
    if once is None:
        return
    assert normalize_phone(once) == once
    assert len(once) <= 20  # Profile.phone_number


# Traits -------------------------------------------------------------------------------------------

COUNTRY_SPELLINGS = sorted(
    {*COUNTRY_ALIASES, *(c.name for c in pycountry.countries), *(c.alpha_2 for c in pycountry.countries)}
    | {c.alpha_3 for c in pycountry.countries}
    | {getattr(c, "common_name", c.name) for c in pycountry.countries}
    | {getattr(c, "official_name", c.name) for c in pycountry.countries}
)


@FAST
@given(st.one_of(variants(st.sampled_from(COUNTRY_SPELLINGS)), texts))
def test_normalize_country_is_idempotent_for_every_spelling_and_fits_its_column(value):
    once = normalized_or_none(normalize_country, value)
    if once is None:
        return
    assert normalize_country(once) == once
    assert len(once) <= 100  # Profile.country


def test_every_country_name_normalizes_to_itself():
    names = {
        normalize_country(spelling) for spelling in COUNTRY_SPELLINGS if normalized_or_none(normalize_country, spelling)
    }
    assert len(names) >= 240
    assert all(normalize_country(name) == name for name in names)


@FAST
@given(
    value=st.one_of(variants(texts), texts, numbers, st.none()), field=st.sampled_from(["state", "city", "education"])
)
@example(value="\u00df", field="city")
@example(value="\u0149", field="city")
@example(value="\ufb01", field="state")
@example(value="\u01c6", field="state")
@example(value="-".join(["\u00df"] * 128), field="city")
def test_normalize_label_is_idempotent_and_fits_its_column(value, field):
    once = normalized_or_none(normalize_label, value, field)
    if once is None:
        return
    assert normalize_label(once, field) == once
    assert len(once) <= MAX_TEXT_LENGTH


def test_one_case_labels_whose_letters_change_length_settle_at_once():
    assert normalize_label("\u00df", "city") == "Ss"  # sharp s: was "SS", which normalized again to "Ss"
    assert normalize_label("\u0149", "city") == "\u02bcn"  # was "\u02bcN", all upper case, then "\u02bcn"
    assert normalize_label("\u01c6", "city") == "\u01c5"  # the title-case DZ digraph, not the upper-case one
    assert normalize_label("TAMIL NADU", "state") == "Tamil Nadu"


@FAST
@given(
    st.one_of(
        st.integers(-5, 140),
        st.floats(-5, 140),
        st.integers(-5, 140).map(lambda n: f" {n}.0 "),
        st.text("0123456789.-e ", max_size=6),
        st.booleans(),
        texts,
        st.none(),
    )
)
def test_normalize_age_is_idempotent(value):
    once = normalized(normalize_age, value)
    if once is REFUSED:
        return
    assert normalize_age(once) == once
    assert once is None or 0 <= once <= 130


@FAST
@given(st.one_of(variants(st.sampled_from(sorted({*GENDER_ALIASES, *GENDER_ALIASES.values()}))), texts))
def test_normalize_gender_is_idempotent(value):
    once = normalized_or_none(normalize_gender, value)
    if once is None:
        return
    assert normalize_gender(once) == once
    assert len(once) <= 20  # Profile.gender


@st.composite
def incomes(draw):
    amount = draw(
        st.one_of(
            st.integers(0, 10**7).map(str),
            st.integers(0, 10**7).map("{:,}".format),
            st.integers(0, 999).map(lambda n: f"{n}k"),
            st.decimals(0, 10**6, places=2).map(str),
        )
    )
    other = draw(st.integers(0, 10**7).map("{:,}".format))
    dollar = draw(st.sampled_from(["", "$", "$ "]))
    shape = draw(
        st.sampled_from(
            [
                "{a}",
                "under {a}",
                "Below {a}",
                "less than {a}",
                "<{a}",
                "{a}+",
                "{a} and above",
                "{a} or more",
                "{a}-{b}",
                "{a} \u2013 {b}",
                "{a} to {b}",
                "{a}  -  {b}",
            ]
        )
    )
    return draw(WHITESPACE) + shape.format(a=dollar + amount, b=dollar + other) + draw(WHITESPACE)


@FAST
@given(st.one_of(incomes(), texts, numbers))
@example("$75,000-$99,999")
@example("  Under   $25,000 ")
@example("$150,000+")
def test_parse_income_read_again_from_its_text_gives_the_same_text_and_bounds(value):
    once = normalized_or_none(parse_income, value)
    if once is None:
        return
    text, low, high = once
    assert parse_income(text) == once
    assert len(text) <= MAX_TEXT_LENGTH
    assert low is None or high is None or low <= high


interest_items = st.one_of(texts, st.text(TRICKY_LETTERS, min_size=95, max_size=105), st.integers(), st.none())


@FAST
@given(st.one_of(st.lists(interest_items, max_size=8), st.lists(texts, max_size=8).map("|".join), texts))
@example(["\u00df", "SS", "ss"])
@example(["\ufb03" * 40])
@example("Tech|tech| TECH |Gaming")
def test_normalize_interests_read_again_from_its_labels_gives_the_same_interests(value):
    interests, _ = normalize_interests(value)
    labels = list(interests.values())
    assert normalize_interests(labels) == (interests, [])
    if not any("|" in label for label in labels):
        assert normalize_interests("|".join(labels)) == (interests, [])
    for key, label in interests.items():
        assert key == label.casefold()
        assert 0 < len(key) <= MAX_INTEREST_LENGTH and 0 < len(label) <= MAX_INTEREST_LENGTH  # Interest's columns


def test_an_interest_that_case_folding_lengthens_past_the_limit_is_a_warning():
    assert normalize_interests(["\ufb03" * 40]) == (
        {},
        [f"interests: an entry is longer than {MAX_INTEREST_LENGTH} characters"],
    )


@FAST
@given(
    st.one_of(
        csv_like_dates(),
        st.datetimes(
            min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones() | st.none()
        ).map(dt.datetime.isoformat),
        st.text("0123456789/: T-+Z.", max_size=25),
    )
)
def test_parse_created_at_read_again_from_its_own_text_gives_the_same_utc_time(value):
    try:
        once = parse_created_at(value)
    except RecordRejected:
        return
    assert once.utcoffset() == dt.timedelta(0)
    assert parse_created_at(once.isoformat()) == once
    if once.second == once.microsecond == 0:
        seed_format = f"{once.month}/{once.day}/{once.year:04d} {once.hour}:{once.minute:02d}"
        assert parse_created_at(seed_format) == once


# The record parser --------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.text(max_size=20), texts, numbers, st.booleans())
field_values = st.one_of(scalars, st.lists(scalars, max_size=4))
# Values the parser can accept, so that most drawn records get past the identifier and date checks
# and every field's reader is exercised, not only the rejections.
likely_values = {
    "cookie": st.one_of(st.text(min_size=1, max_size=10), st.sampled_from(["null", " c1 ", "c" * 300])),
    "email": st.one_of(email_like(), st.emails()),
    "phone_number": st.one_of(st.text("0123456789+.- ", max_size=20), st.integers(0, 10**18)),
    "created_at": st.one_of(
        st.sampled_from(["1/15/2025 10:00", "2025-01-15T10:00:00+05:30", "12/31/9999 23:59", "0001-01-01T00:00+01:00"]),
        st.datetimes(timezones=st.timezones() | st.none()).map(dt.datetime.isoformat),
        csv_like_dates(),
    ),
    "country": st.sampled_from(COUNTRY_SPELLINGS),
    "age": st.one_of(st.integers(-5, 140), st.integers(-5, 140).map(str)),
    "income": incomes(),
    "interests": st.lists(st.one_of(texts, numbers, st.none(), st.lists(st.text(max_size=3))), max_size=5),
}


@st.composite
def records(draw):
    fields = {}
    for name in RECORD_FIELDS:
        if name in ("cookie", "created_at") or draw(st.booleans()):
            usual = name in likely_values and draw(st.integers(0, 9)) > 0
            fields[name] = draw(likely_values[name] if usual else field_values)
    fields.update(draw(st.dictionaries(st.text(max_size=8), field_values, max_size=3)))
    return fields


@settings(max_examples=400, deadline=None)
@given(
    fields=records(),
    match_phone=st.booleans(),
    blocked=st.sets(st.tuples(st.sampled_from(["cookie", "email", "phone", "*"]), st.text(max_size=5)), max_size=3),
)
@example(
    fields={"cookie": "c", "created_at": "1/1/2025 0:00", "city": "\u00df", "interests": ["\ufb03" * 40]},
    match_phone=False,
    blocked=set(),
)
def test_parse_record_accepts_or_rejects_any_record_and_raises_nothing_else(fields, match_phone, blocked):
    try:
        parsed = parse_record(fields, blocked=frozenset(blocked), match_phone=match_phone)
    except RecordRejected as exc:
        assert str(exc) and exc.fields
        return
    assert parsed.identifiers and parsed.created_at.utcoffset() == dt.timedelta(0)
    assert all(isinstance(warning, str) and warning for warning in parsed.warnings)
    for kind, value in parsed.identifiers:
        assert kind in ("cookie", "email", "phone") and 0 < len(value) <= MAX_TEXT_LENGTH
    for columns in parsed.traits.values():
        for value in columns.values():
            assert not isinstance(value, str) or len(value) <= MAX_TEXT_LENGTH


# Case and whitespace variants of one email through records_ingest -----------------------------------


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(), email=st.emails().filter(lambda e: normalized_or_none(normalize_email, e)), count=st.integers(2, 6)
)
def test_case_and_whitespace_variants_of_one_email_give_exactly_one_profile(data, email, count):
    spellings = [data.draw(variants(st.just(email))) for _ in range(count)]
    records = [
        {"cookie": f"device-{n}", "email": spelling, "created_at": f"1/{n + 1}/2025 10:00"}
        for n, spelling in enumerate(spellings)
    ]
    split = data.draw(st.integers(0, count))
    with transaction.atomic():
        ingest(*records[:split])  # one request each, as the API would
        if records[split:]:
            ingest_batch(records[split:])  # the rest together, as a CSV batch would
        profile = Profile.objects.get()
        emails = list(Identifier.objects.filter(kind="email").values_list("value", flat=True))
        assert emails == [normalize_email(email)]
        assert profile.email == normalize_email(email) and profile.cookie_count == count
        transaction.set_rollback(True)
