"""Masks for keys created with --mask-pii: an email keeps its first character and domain, a phone its last digits."""

import pytest

from users_app.masking import mask_email, mask_identifier, mask_phone, mask_record_data, mask_text


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("john@example.com", "j***@example.com"),
        ("j@example.com", "j***@example.com"),
        ("first.last+tag@mail.example.co.uk", "f***@mail.example.co.uk"),
        ("not-an-address", "n***"),
        ("", ""),
    ],
)
def test_an_email_keeps_its_first_character_and_its_domain(email, masked):
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+12025551087", "+1******1087"),
        ("2025551087", "******1087"),
        ("+44 20 7946 0000", "+4*******0000"),
        (2025551087, "******1087"),
        ("1087", "****"),
        ("n/a", "***"),
        ("", ""),
    ],
)
def test_a_phone_number_keeps_its_plus_and_first_digit_and_its_last_four_digits(phone, masked):
    assert mask_phone(phone) == masked


def test_an_identifier_is_masked_by_its_kind_and_cookies_are_kept():
    assert mask_identifier("email", "john@example.com") == "j***@example.com"
    assert mask_identifier("phone", "+12025551087") == "+1******1087"
    assert mask_identifier("cookie", "abc-123") == "abc-123"


def test_free_text_has_quoted_values_emails_and_phone_numbers_masked_but_dates_kept():
    assert mask_text("email: 'jo@x' is not a valid address") == "email: 'j***@x' is not a valid address"
    assert mask_text("phone_number: '12345' is not a possible phone number") == (
        "phone_number: '*2345' is not a possible phone number"
    )
    assert mask_text("csv:5e601127888e4:3 id2025551087") == "csv:5e601127888e4:3 id2025551087"
    line = "c1,john@example.com,+1 202 555 1087,2025-03-10,10.03.2025,03/10/2025 15:30"
    assert mask_text(line) == "c1,j***@example.com,+1******1087,2025-03-10,10.03.2025,03/10/2025 15:30"


def test_a_raw_record_keeps_its_traits_and_masks_identifiers_and_unknown_fields():
    data = {
        "cookie": "c1",
        "email": "john@example.com",
        "phone_number": "+12025551087",
        "country": "USA",
        "location": {"city": "Los Angeles"},
        "work email": "john@work.example",
        "_extra_values": ["x", "+12025550000"],
    }
    assert mask_record_data(data) == {
        "cookie": "c1",
        "email": "j***@example.com",
        "phone_number": "+1******1087",
        "country": "USA",
        "location": {"city": "Los Angeles"},
        "work email": "j***@work.example",
        "_extra_values": ["x", "+1******0000"],
    }
