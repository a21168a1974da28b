"""Turn one incoming record (CSV row or API payload) into normalized, resolvable values.

Pure functions, no database: the contract's normalization rules (docs/identity.md) live here and
only here, so CSV import, API ingestion and rebuild read records identically. A problem with one
field is a warning on the record and leaves that field empty; only a record with no usable
identifier or no readable ``created_at`` is rejected.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial

import email_validator
import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

# In the order of the seed's CSV header.
RECORD_FIELDS = (
    "cookie",
    "email",
    "phone_number",
    "country",
    "state",
    "city",
    "age",
    "gender",
    "income",
    "education",
    "interests",
    "created_at",
)

# Trait name -> the profile columns it sets together (income carries its numeric bounds).
TRAIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "cookie": ("cookie",),
    "email": ("email",),
    "phone_number": ("phone_number",),
    "country": ("country",),
    "state": ("state",),
    "city": ("city",),
    "age": ("age",),
    "gender": ("gender",),
    "income": ("income", "income_min", "income_max"),
    "education": ("education",),
}

COOKIE, EMAIL, PHONE = "cookie", "email", "phone"

# Values that tag managers and spreadsheets emit when there is no real identifier; they would
# otherwise join every anonymous visitor into one giant profile.
PLACEHOLDER_IDENTIFIERS = frozenset(
    {"", "null", "undefined", "none", "nil", "nan", "n/a", "na", "0", "-", "[object object]"}
)

MAX_TEXT_LENGTH = 255
MAX_INTEREST_LENGTH = 100
MAX_INTERESTS = 100  # different interests in one record
MAX_AGE = 130

# Bound of each memo of a low-cardinality field (see _memoized).
_MEMO_SIZE = 65_536

# Accepted spellings of gender (compared case-insensitively) -> canonical value.
GENDER_ALIASES = {
    "male": "Male",
    "m": "Male",
    "man": "Male",
    "female": "Female",
    "f": "Female",
    "woman": "Female",
    "other": "Other",
    "o": "Other",
    "non-binary": "Other",
    "nonbinary": "Other",
    "prefer not to say": "Prefer not to say",
    "prefer not to answer": "Prefer not to say",
    "prefer_not_to_say": "Prefer not to say",
    "undisclosed": "Prefer not to say",
}

# Common country names that ISO 3166 (pycountry) does not list; everything else is pycountry's.
COUNTRY_ALIASES = {
    "uk": "GB",
    "u.k.": "GB",
    "britain": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "u.s.": "US",
    "u.s.a.": "US",
    "america": "US",
    "united states of america": "US",
    "russia": "RU",
    "turkey": "TR",
    "ivory coast": "CI",
    "uae": "AE",
    "holland": "NL",
    "north korea": "KP",
    "laos": "LA",
    "syria": "SY",
    "vatican": "VA",
}

CSV_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y")

# Lower-case joining words that stay lower-case inside a place or label name.
LOWERCASE_PARTICLES = frozenset(
    {"de", "da", "do", "dos", "das", "del", "la", "le", "of", "the", "and", "von", "van", "der", "du", "y"}
)


class RecordRejected(ValueError):
    """The record cannot become a raw record: it has no usable identifier or no readable date."""

    def __init__(self, message: str, fields: tuple[str, ...]):
        super().__init__(message)
        self.fields = fields  # the record fields the reason is about


class FieldWarning(ValueError):
    """One field could not be used; the record is kept with that field empty."""


@dataclass(frozen=True)
class ParsedRecord:
    created_at: dt.datetime
    identifiers: tuple[tuple[str, str], ...]
    traits: dict[str, dict[str, object]]
    interests: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _text(value: object) -> str:
    if type(value) is str:  # the usual case (CSV cells, JSON strings); str() would return it as is
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _one_case(text: str) -> bool:
    return text.isupper() or text.islower()


def _title_words(text: str) -> str:
    def word(w: str, first: bool) -> str:
        if not first and w in LOWERCASE_PARTICLES:
            return w
        return "-".join(part[:1].title() + part[1:] for part in w.split("-"))

    words = text.lower().split()
    return " ".join(word(w, i == 0) for i, w in enumerate(words))


def canonical_case(text: str) -> str:
    """Title-case text typed in one case (``TAMIL NADU``); keep deliberate mixed case as given.

    Idempotent: a few letters' case mappings do not go back and forth (U+0149, an n after an
    apostrophe, title-cases to two letters in upper case, which lower-case to two other letters;
    sharp s title-cases to ``Ss``), so the rule is applied again until the text stops changing
    (twice at most in practice), and normalizing a normalized value changes nothing.
    """
    for _ in range(4):
        if not _one_case(text) or (titled := _title_words(text)) == text:
            break
        text = titled
    return text


def normalize_cookie(value: object) -> str:
    return _text(value)


# Addresses that email-validator accepts for sure, without running it: a lower-case ASCII dot-atom
# local part, then two or more letter-digit-hyphen labels ending in an alphabetic TLD, none of them
# special-use ('localhost', '.test', ...), Punycode ('xn--') or another 'ab--' label. Anything
# else, valid or not, goes through email-validator itself; tests/test_normalize_fast.py checks that
# email-validator accepts whatever this matches.
_ATOM = "[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
# email-validator refuses any label whose 3rd and 4th characters are '--' ('0---0' too), not only 'ab--'.
_LABEL = r"(?!..--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SPECIAL_USE = "|".join(map(re.escape, email_validator.SPECIAL_USE_DOMAIN_NAMES))
_PLAIN_EMAIL = re.compile(
    rf"{_ATOM}(?:\.{_ATOM})*@(?!(?:[a-z0-9-]+\.)*(?:{_SPECIAL_USE})\Z)(?:{_LABEL}\.)+[a-z]{{2,63}}"
)
_MAX_EMAIL_LENGTH = 254
_MAX_LOCAL_PART_LENGTH = 64


def _is_plain_email(text: str) -> bool:
    return (
        len(text) <= _MAX_EMAIL_LENGTH
        and _PLAIN_EMAIL.fullmatch(text) is not None
        and text.index("@") <= _MAX_LOCAL_PART_LENGTH
    )


def normalize_email(value: object) -> str:
    text = _text(value).lower()
    # Validating with email-validator costs ~25 µs; the common plain address is decided here.
    if _is_plain_email(text):
        return text
    return _normalize_email_with_validator(value)


def _normalize_email_with_validator(value: object) -> str:
    text = _text(value).lower()
    if not text:
        return ""
    # The contract's minimum (one @, a dot in the domain) plus email-validator's syntax rules;
    # no DNS lookups, and test/special-use domains are allowed (analytics data, not mail).
    if text.count("@") != 1 or "." not in text.rpartition("@")[2]:
        raise FieldWarning(f"email: '{text}' is not a valid address")
    try:
        validate_email(text, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        raise FieldWarning(f"email: '{text}' is not a valid address ({exc})") from None
    return text


_FLOAT_SUFFIX = re.compile(r"\.0+$")
_NON_DIGITS = re.compile(r"\D")


def normalize_phone(value: object) -> str:
    text = _text(value)
    if not text:
        return ""
    # Spreadsheets turn 19337251087 into 19337251087.0; undo that before keeping digits only.
    text = _FLOAT_SUFFIX.sub("", text)
    digits = _NON_DIGITS.sub("", text)
    if not digits:
        raise FieldWarning(f"phone_number: '{text}' has no digits")
    number = ("+" if text.startswith("+") else "") + digits
    if len(digits) > 17:
        raise FieldWarning(f"phone_number: '{text}' is too long to be a phone number")
    return number


# How each identifier kind is read: the road from a value someone types (a lookup, a split, a
# block) to the identifier ingestion stored.
IDENTIFIER_NORMALIZERS: dict[str, Callable[[object], str]] = {
    COOKIE: normalize_cookie,
    EMAIL: normalize_email,
    PHONE: normalize_phone,
}
# The record field each identifier kind is read from.
IDENTIFIER_FIELDS = {COOKIE: "cookie", EMAIL: "email", PHONE: "phone_number"}


def is_possible_phone(number: str, country_code: str | None) -> bool:
    international = number if number.startswith("+") else "+" + number
    possible = _possible_international(international[1:])
    if possible is None:
        possible = _phonenumbers_possible(international, country_code)
    if possible or not country_code or number == international:
        return possible
    return _phonenumbers_possible(number, country_code)


def _phonenumbers_possible(candidate: str, country_code: str | None) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(candidate, country_code))
    except phonenumbers.NumberParseException:
        return False


def _possible_international(digits: str) -> bool | None:
    """What ``_phonenumbers_possible("+" + digits, any region)`` answers, or None if it must be asked.

    Parsing costs ~15 µs. For 3-17 ASCII digits not starting with 0, phonenumbers takes the
    country calling code from the first 1-3 digits (the region is unused after a '+'); when the
    calling code's national-prefix rule does not match the rest, nothing is stripped, and
    is_possible_number only looks up the rest's length in the calling code's possible lengths.
    Other cases (unknown calling code, a prefix to strip) are left to phonenumbers.
    """
    if not (3 <= len(digits) <= 17 and digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        calling_code = int(digits[:size])
        if calling_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    rules = _calling_code_length_rules(calling_code)
    if rules is None:
        return None
    national_prefix, possible_lengths = rules
    national = digits[size:]
    if len(national) < 2:  # phonenumbers: too short to be a national number
        return False
    if national_prefix is not None and national_prefix.match(national):
        return None
    return len(national) in possible_lengths


@cache  # one entry per country calling code (~250)
def _calling_code_length_rules(calling_code: int) -> tuple[re.Pattern[str] | None, frozenset[int]] | None:
    """The national-prefix pattern and possible national-number lengths (local-only ones included)."""
    region = phonenumbers.region_code_for_country_code(calling_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(calling_code, region)
    desc = metadata.general_desc if metadata is not None else None
    if desc is None or not desc.possible_length:
        return None
    prefix = metadata.national_prefix_for_parsing
    return (
        re.compile(prefix) if prefix else None,
        frozenset(desc.possible_length) | frozenset(desc.possible_length_local_only or ()),
    )


# The seed's M/D/YYYY H:MM, read without strptime's overhead; other shapes and impossible values
# (month 13, 24:00) take the general path below, which gives them their usual result or error.
_CSV_MINUTE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2})")


def parse_created_at(value: object) -> dt.datetime:
    text = _text(value)
    if m := _CSV_MINUTE.fullmatch(text):
        month, day, year, hour, minute = map(int, m.groups())
        try:
            return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)
        except ValueError:
            pass
    return _parse_created_at_text(text)


def _parse_created_at_text(text: str) -> dt.datetime:
    if not text:
        raise RecordRejected("created_at: missing", ("created_at",))
    parsed = None
    for fmt in CSV_DATE_FORMATS:
        try:
            parsed = dt.datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise RecordRejected(
                f"created_at: cannot read '{text[:60]}' as a date (expected M/D/YYYY H:MM or ISO 8601)",
                ("created_at",),
            ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise RecordRejected(
            f"created_at: '{text[:60]}' is outside the years 1 to 9999 in UTC", ("created_at",)
        ) from None


@lru_cache(maxsize=4096)
def _country(text: str) -> tuple[str, str] | None:
    """(canonical name, alpha-2 code) for a country name, code or common alias."""
    code = COUNTRY_ALIASES.get(text.lower())
    try:
        country = pycountry.countries.get(alpha_2=code) if code else pycountry.countries.lookup(text)
    except LookupError:
        return None
    return getattr(country, "common_name", None) or country.name, country.alpha_2


def normalize_country(value: object) -> str:
    text = _text(value)
    if not text:
        return ""
    found = _country(text)
    if found is None:
        raise FieldWarning(f"country: '{text}' is not a known country")
    return found[0]


def country_code(name: str) -> str | None:
    found = _country(name) if name else None
    return found[1] if found else None


def normalize_label(value: object, field_name: str) -> str:
    # Measured after case changes, which can lengthen text (ß -> Ss): the result must fit its column.
    text = canonical_case(" ".join(_text(value).split()))
    if len(text) > MAX_TEXT_LENGTH:
        raise FieldWarning(f"{field_name}: longer than {MAX_TEXT_LENGTH} characters")
    return text


def normalize_age(value: object) -> int | None:
    if isinstance(value, bool):
        raise FieldWarning(f"age: '{value}' is not a whole number")
    text = _text(value)
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise FieldWarning(f"age: '{text[:40]}' is not a whole number") from None
    if not number.is_integer():
        raise FieldWarning(f"age: '{text}' is not a whole number")
    if not 0 <= number <= MAX_AGE:
        raise FieldWarning(f"age: {text} is outside 0..{MAX_AGE}")
    return int(number)


def normalize_gender(value: object) -> str:
    text = " ".join(_text(value).split())
    if not text:
        return ""
    try:
        return GENDER_ALIASES[text.lower()]
    except KeyError:
        raise FieldWarning(f"gender: '{text[:40]}' is not one of Male, Female, Other, Prefer not to say") from None


_MONEY = r"\$?\s*(\d[\d,]*(?:\.\d+)?)\s*(k)?"


def _amount(number: str, thousands: str | None) -> int:
    amount = float(number.replace(",", ""))
    return int(amount * 1000 if thousands else amount)


def parse_income(value: object) -> tuple[str, int | None, int | None]:
    """The income text as given plus the numeric bounds it denotes (upper None = open-ended)."""
    text = " ".join(_text(value).split())
    if not text:
        return "", None, None
    if len(text) > MAX_TEXT_LENGTH:
        raise FieldWarning(f"income: longer than {MAX_TEXT_LENGTH} characters")
    lowered = text.lower()
    if m := re.fullmatch(rf"(?:under|below|less than|<)\s*{_MONEY}", lowered):
        if (upper := _amount(m[1], m[2]) - 1) < 0:
            raise FieldWarning(f"income: '{text[:60]}' is an empty range")
        return text, 0, upper
    if m := re.fullmatch(rf"{_MONEY}\s*(?:\+|and (?:above|over|up)|or more)", lowered):
        return text, _amount(m[1], m[2]), None
    if m := re.fullmatch(rf"{_MONEY}\s*(?:-|\u2013|to)\s*{_MONEY}", lowered):
        low, high = _amount(m[1], m[2]), _amount(m[3], m[4])
        return text, min(low, high), max(low, high)
    if m := re.fullmatch(_MONEY, lowered):
        amount = _amount(m[1], m[2])
        return text, amount, amount
    raise FieldWarning(f"income: '{text[:60]}' is neither a bracket nor a number")


@lru_cache(maxsize=_MEMO_SIZE)
def _frozen_interests(value: str | tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """``normalize_interests`` of a string or of a tuple of strings, frozen so that cached results
    cannot be altered."""
    interests, warnings = normalize_interests(value)
    return tuple(interests.items()), tuple(warnings)


def normalize_interests(value: object) -> tuple[dict[str, str], list[str]]:
    """Interest key (case-folded) -> display label, plus warnings for unusable entries.

    More than ``MAX_INTERESTS`` different interests is no list a person gave (the API refuses it):
    none are kept, with a warning. Each warning is given once, however many entries it is about.
    """
    if value is None:
        return {}, []
    items: Iterable[object] = value if isinstance(value, (list, tuple)) else _text(value).split("|")
    interests: dict[str, str] = {}
    warnings: dict[str, None] = {}  # an ordered set
    for item in items:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            warnings["interests: an entry is not text"] = None
            continue
        label = " ".join(_text(item).split())
        if not label:
            continue
        # The key is the name's, so that reading a name again gives the same key (a dotless i is
        # named "I", whose key is "i"). Both fit Interest's columns, though case changes can lengthen text.
        name = canonical_case(label)
        key = name.casefold()
        if max(len(label), len(key), len(name)) > MAX_INTEREST_LENGTH:
            warnings[f"interests: an entry is longer than {MAX_INTEREST_LENGTH} characters"] = None
            continue
        interests.setdefault(key, name)
    if len(interests) > MAX_INTERESTS:
        warnings[f"interests: {len(interests):,} different entries, more than {MAX_INTERESTS}; none kept"] = None
        interests = {}
    return interests, list(warnings)


def _outcome(normalizer: Callable[..., object], value: object, *args: object) -> tuple[object, str | None]:
    """The normalized value and no warning, or None and the warning's text."""
    try:
        return normalizer(value, *args), None
    except FieldWarning as exc:
        return None, str(exc)


def _memoized(normalizer: Callable[..., object]) -> Callable[..., tuple[object, str | None]]:
    """``_outcome`` of the normalizer, memoized for str values (JSON numbers, lists etc. are not:
    1, 1.0 and True are equal keys yet read differently, and lists are unhashable)."""
    cached = lru_cache(maxsize=_MEMO_SIZE)(partial(_outcome, normalizer))

    def outcome(value: object, *args: object) -> tuple[object, str | None]:
        if type(value) is str:
            return cached(value, *args)
        return _outcome(normalizer, value, *args)

    return outcome


# How parse_record reads each field. Memoized: these columns hold a few hundred distinct values
# over millions of rows; emails and phone numbers are mostly unique, so caching them would not pay.
_read_email = partial(_outcome, normalize_email)
_read_phone = partial(_outcome, normalize_phone)
_read_country = _memoized(normalize_country)
_read_label = _memoized(normalize_label)
_read_age = _memoized(normalize_age)
_read_gender = _memoized(normalize_gender)
_read_income = _memoized(parse_income)


def is_placeholder(value: str) -> bool:
    return value.casefold() in PLACEHOLDER_IDENTIFIERS


def is_blocked(blocked: frozenset[tuple[str, str]], kind: str, value: str) -> bool:
    """Whether ``blocked`` (see ``resolution.load_blocklist``) holds the value, for its kind or any (``*``)."""
    return (kind, value) in blocked or ("*", value) in blocked


def link_refusal(kind: str, value: str, blocked: frozenset[tuple[str, str]] = frozenset()) -> str | None:
    """Why a normalized, non-empty identifier may not link records (the warning), or None when it may."""
    if is_placeholder(value):
        return f"{kind}: '{value}' is a placeholder, not an identifier"
    if len(value) > MAX_TEXT_LENGTH:
        return f"{kind}: longer than {MAX_TEXT_LENGTH} characters, not used"
    if is_blocked(blocked, kind, value):
        return f"{kind}: '{value}' is on the block list, not used to link records"
    return None


def parse_record(
    fields: Mapping[str, object],
    *,
    blocked: frozenset[tuple[str, str]] = frozenset(),
    match_phone: bool = False,
) -> ParsedRecord:
    """Normalize one flat record. ``blocked`` holds (kind, value) pairs, kind ``*`` for any kind."""
    created_at = parse_created_at(fields.get("created_at"))
    warnings: list[str] = []
    traits: dict[str, dict[str, object]] = {}

    def read(name: str, reader, *args):
        value, warning = reader(fields.get(name), *args)
        if warning is not None:
            warnings.append(warning)
        return value

    def usable(kind: str, value: str) -> bool:
        if not value:
            return False
        refusal = link_refusal(kind, value, blocked)
        if refusal:
            warnings.append(refusal)
        return refusal is None

    identifiers = []
    cookie = normalize_cookie(fields.get("cookie"))
    if usable(COOKIE, cookie):
        identifiers.append((COOKIE, cookie))
        traits["cookie"] = {"cookie": cookie}
    email = read("email", _read_email)
    if email and usable(EMAIL, email):
        identifiers.append((EMAIL, email))
        traits["email"] = {"email": email}
    phone = read("phone_number", _read_phone)
    country = read("country", _read_country)
    if phone:
        if not is_possible_phone(phone, country_code(country or "")):
            warnings.append(f"phone_number: '{phone}' is not a possible phone number")
        if not match_phone or usable(PHONE, phone):
            traits["phone_number"] = {"phone_number": phone}
            if match_phone:
                identifiers.append((PHONE, phone))
    if not identifiers:
        raise RecordRejected("no usable identifier: needs a cookie or a valid email", ("cookie", "email"))

    if country:
        traits["country"] = {"country": country}
    for name in ("state", "city", "education"):
        if text := read(name, _read_label, name):
            traits[name] = {name: text}
    age = read("age", _read_age)
    if age is not None:
        traits["age"] = {"age": age}
    if gender := read("gender", _read_gender):
        traits["gender"] = {"gender": gender}
    income = read("income", _read_income)
    if income and income[0]:
        traits["income"] = dict(zip(TRAIT_COLUMNS["income"], income, strict=True))
    raw_interests = fields.get("interests")
    # A file's rows name interests in text, the API's records in a list: both come in a few
    # hundred combinations over millions of records, so they are read through a cache.
    if type(raw_interests) is list and all(type(item) is str for item in raw_interests):
        raw_interests = tuple(raw_interests)
    if type(raw_interests) in (str, tuple):
        interest_items, interest_warnings = _frozen_interests(raw_interests)
        interests = dict(interest_items)
    else:
        interests, interest_warnings = normalize_interests(raw_interests)
    warnings.extend(interest_warnings)
    return ParsedRecord(
        created_at=created_at,
        identifiers=tuple(identifiers),
        traits=traits,
        interests=interests,
        warnings=tuple(warnings),
    )


NESTED_GROUPS = ("location", "demographics")


def record_fields(data: Mapping[str, object]) -> dict[str, object]:
    """Flatten a stored record: JSON payloads nest ``location`` and ``demographics``, CSV rows do not."""
    flat = {key: value for key, value in data.items() if not (key in NESTED_GROUPS and isinstance(value, Mapping))}
    for group in NESTED_GROUPS:
        nested = data.get(group)
        if isinstance(nested, Mapping):
            for key, value in nested.items():
                flat.setdefault(key, value)
    return flat
