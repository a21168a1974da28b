"""Emails and phone numbers masked for API keys created with ``--mask-pii``.

An email keeps its first character and its domain (``j***@example.com``); a phone number keeps its
``+`` and first digit and its last four digits (``+1******1087``), so a client can still tell people
apart and route by domain or country without holding the identifiers. Free text that may quote them
(warnings, reject lines, extra CSV columns) is masked wherever something looks like one; that errs
towards masking too much (a long digit run such as an income range reads as a phone number).
"""

from __future__ import annotations

import re

# Raw-record fields that hold no email or phone number; anything else a record carries is masked as text.
NON_PERSONAL_FIELDS = frozenset(
    {
        "cookie", "created_at", "country", "state", "city", "age", "gender", "income", "education", "interests",
        "location", "demographics",
    }
)  # fmt: skip
EMAIL_FIELDS = frozenset({"email"})
PHONE_FIELDS = frozenset({"phone_number"})

_EMAIL_IN_TEXT = re.compile(r"[^\s@,;:'\"<>()\[\]{}]+@[^\s@,;:'\"<>()\[\]{}]+")
# Not inside a word: the digits of a checksum or an id are not a phone number.
_PHONE_IN_TEXT = re.compile(r"(?<!\w)\+?\d[\d\s().-]{5,}\d(?!\w)")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[.-]\d{1,2}[.-]\d{4}")
# Warnings quote the value they refuse: "email: 'x' is not a valid address", "phone_number: '12' ...".
_QUOTED_FIELD = re.compile(r"\b(email|phone_number): '([^']*)'")
MIN_PHONE_DIGITS_IN_TEXT = 7
KEPT_DIGITS = 4


def mask_email(value: object) -> str:
    text = "" if value is None else str(value)
    if not text:
        return text
    local, at, domain = text.rpartition("@")
    if not at:
        return text[0] + "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(value: object) -> str:
    text = "" if value is None else str(value).strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text:
        return text
    if len(digits) <= KEPT_DIGITS:
        return "*" * max(len(digits), 3)
    start = "+" + digits[0] if text.startswith("+") else ""
    hidden = len(digits) - KEPT_DIGITS - (1 if start else 0)
    return f"{start}{'*' * hidden}{digits[-KEPT_DIGITS:]}"


def mask_identifier(kind: str, value: str) -> str:
    """An identifier's value masked by its kind (``IdentifierKind``); cookies are not personal data here."""
    if kind == "email":
        return mask_email(value)
    if kind == "phone":
        return mask_phone(value)
    return value


def _mask_phone_run(match: re.Match) -> str:
    run = match.group()
    if _DATE.fullmatch(run) or sum(ch.isdigit() for ch in run) < MIN_PHONE_DIGITS_IN_TEXT:
        return run
    return mask_phone(run)


def _mask_quoted(match: re.Match) -> str:
    field, value = match.groups()
    masked = mask_email(value) if field == "email" else mask_phone(value)
    return f"{field}: '{masked}'"


def mask_text(text: str) -> str:
    """Free text with anything that looks like an email or a phone number masked."""
    text = _QUOTED_FIELD.sub(_mask_quoted, text)
    text = _EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group()), text)
    return _PHONE_IN_TEXT.sub(_mask_phone_run, text)


def mask_any(value: object) -> object:
    """``mask_text`` applied to every text (and long number) inside a JSON value."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: mask_any(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_any(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        masked = mask_text(str(value))
        return value if masked == str(value) else masked
    return value


def mask_record_data(data: object) -> object:
    """A raw record's fields as received: identifiers masked by field, unknown fields as text."""
    if not isinstance(data, dict):
        return mask_any(data)
    masked = {}
    for key, value in data.items():
        if key in EMAIL_FIELDS:
            masked[key] = None if value is None else mask_email(value)
        elif key in PHONE_FIELDS:
            masked[key] = None if value is None else mask_phone(value)
        elif key in NON_PERSONAL_FIELDS:
            masked[key] = value
        else:
            masked[key] = mask_any(value)
    return masked
