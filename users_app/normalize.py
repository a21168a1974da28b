"""Turn one incoming record (CSV row or API payload) into normalized, resolvable values.

Pure functions, no database: the contract's normalization rules (docs/identity.md) live here and
only here, so CSV import, API ingestion and rebuild read records identically. A problem with one
field is a warning on the record and leaves that field empty; only a record with no usable
identifier or no readable ``created_at`` is rejected.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

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
MAX_AGE = 130

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
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def canonical_case(text: str) -> str:
    """Title-case text typed in one case (``TAMIL NADU``); keep deliberate mixed case as given."""
    if not (text.isupper() or text.islower()):
        return text

    def word(w: str, first: bool) -> str:
        if not first and w in LOWERCASE_PARTICLES:
            return w
        return "-".join(part[:1].upper() + part[1:] for part in w.split("-"))

    words = text.lower().split()
    return " ".join(word(w, i == 0) for i, w in enumerate(words))


def normalize_cookie(value: object) -> str:
    return _text(value)


def normalize_email(value: object) -> str:
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


def normalize_phone(value: object) -> str:
    text = _text(value)
    if not text:
        return ""
    # Spreadsheets turn 19337251087 into 19337251087.0; undo that before keeping digits only.
    text = re.sub(r"\.0+$", "", text)
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise FieldWarning(f"phone_number: '{text}' has no digits")
    number = ("+" if text.startswith("+") else "") + digits
    if len(digits) > 17:
        raise FieldWarning(f"phone_number: '{text}' is too long to be a phone number")
    return number


def is_possible_phone(number: str, country_code: str | None) -> bool:
    candidates = [number if number.startswith("+") else "+" + number]
    if country_code:
        candidates.append(number)
    for candidate in candidates:
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(candidate, country_code)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def parse_created_at(value: object) -> dt.datetime:
    text = _text(value)
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
    text = " ".join(_text(value).split())
    if len(text) > MAX_TEXT_LENGTH:
        raise FieldWarning(f"{field_name}: longer than {MAX_TEXT_LENGTH} characters")
    return canonical_case(text)


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
        return text, 0, _amount(m[1], m[2]) - 1
    if m := re.fullmatch(rf"{_MONEY}\s*(?:\+|and (?:above|over|up)|or more)", lowered):
        return text, _amount(m[1], m[2]), None
    if m := re.fullmatch(rf"{_MONEY}\s*(?:-|\u2013|to)\s*{_MONEY}", lowered):
        low, high = _amount(m[1], m[2]), _amount(m[3], m[4])
        return text, min(low, high), max(low, high)
    if m := re.fullmatch(_MONEY, lowered):
        amount = _amount(m[1], m[2])
        return text, amount, amount
    raise FieldWarning(f"income: '{text[:60]}' is neither a bracket nor a number")


def normalize_interests(value: object) -> tuple[dict[str, str], list[str]]:
    """Interest key (case-folded) -> display label, plus warnings for unusable entries."""
    if value is None:
        return {}, []
    items: Iterable[object] = value if isinstance(value, (list, tuple)) else _text(value).split("|")
    interests: dict[str, str] = {}
    warnings = []
    for item in items:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            warnings.append("interests: an entry is not text")
            continue
        label = " ".join(_text(item).split())
        if not label:
            continue
        if len(label) > MAX_INTEREST_LENGTH:
            warnings.append(f"interests: an entry is longer than {MAX_INTEREST_LENGTH} characters")
            continue
        interests.setdefault(label.casefold(), canonical_case(label))
    return interests, warnings


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

    def read(name: str, normalizer, *args):
        try:
            return normalizer(fields.get(name), *args)
        except FieldWarning as exc:
            warnings.append(str(exc))
            return None

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
    email = read("email", normalize_email)
    if email and usable(EMAIL, email):
        identifiers.append((EMAIL, email))
        traits["email"] = {"email": email}
    phone = read("phone_number", normalize_phone)
    country = read("country", normalize_country)
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
        if text := read(name, normalize_label, name):
            traits[name] = {name: text}
    age = read("age", normalize_age)
    if age is not None:
        traits["age"] = {"age": age}
    if gender := read("gender", normalize_gender):
        traits["gender"] = {"gender": gender}
    income = read("income", parse_income)
    if income and income[0]:
        traits["income"] = dict(zip(TRAIT_COLUMNS["income"], income, strict=True))
    interests, interest_warnings = normalize_interests(fields.get("interests"))
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
