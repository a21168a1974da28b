"""The synthetic sample-data generator: format, shares, people across rows, determinism, bad rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
import uuid
from collections import Counter, defaultdict

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, settings
from hypothesis import strategies as st

from users_app import sample_data
from users_app.normalize import RecordRejected, parse_record
from users_app.sample_data import GenerationStats, generate_sample_csv

HEADER = "cookie,email,phone_number,country,state,city,age,gender,income,education,interests,created_at"
DATE = re.compile(r"(1[0-2]|[1-9])/(3[01]|[12]\d|[1-9])/(2024|2025) (1\d|2[0-3]|\d):[0-5]\d")
EMAIL = re.compile(r"[a-z]+\.[a-z]+\d{1,3}@[a-z]+\.com")
PHONE = re.compile(r"1[2-9]\d{9}")
HANDLE = re.compile(r"[a-z]+\d+")


def generate(rows: int, *, seed: int = 42, malformed: bool = False) -> tuple[str, GenerationStats]:
    out = io.StringIO(newline="")
    stats = generate_sample_csv(out=out, rows=rows, seed=seed, malformed=malformed)
    return out.getvalue(), stats


def data_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.fixture(scope="module")
def big() -> tuple[list[dict[str, str]], GenerationStats]:
    text, stats = generate(20_000)
    return data_rows(text), stats


@pytest.fixture(scope="module")
def huge() -> list[dict[str, str]]:
    """Enough rows for the rarest cases (~1 in 10,000 rows)."""
    return data_rows(generate(100_000, seed=1)[0])


def is_well_formed(row: dict[str, str]) -> bool:
    """Every column holds a value the generator may write when no malformed rows are asked for."""
    regions = sample_data.REGIONS
    country = next((name for name in regions if row["country"] in (name, name.upper())), None)
    if country is None:
        return False
    states = regions[country]
    state = next((name for name in states if row["state"] in (name, name.upper())), None)
    interests = row["interests"].split("|") if row["interests"] else []
    return (
        state is not None
        and (row["city"] in states[state] if states[state] else row["city"] == "")
        and (bool(uuid_or_none(row["cookie"])) or bool(HANDLE.fullmatch(row["cookie"])))
        and bool(EMAIL.fullmatch(row["email"]))
        and (row["phone_number"] == "" or bool(PHONE.fullmatch(row["phone_number"])))
        and (row["age"] == "" or 18 <= int(row["age"]) <= 85)
        and row["gender"] in ("", *sample_data.GENDERS)
        and row["income"] in ("", *sample_data.INCOMES)
        and row["education"] in ("", *sample_data.EDUCATIONS)
        and len(interests) <= 5
        and len(set(interests)) == len(interests)
        and set(interests) <= set(sample_data.INTEREST_LABELS)
        and bool(DATE.fullmatch(row["created_at"]))
        and dt.datetime(2024, 1, 1) <= parse_date(row["created_at"]) < dt.datetime(2025, 7, 1)
    )


def uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        value = uuid.UUID(text)
    except ValueError:
        return None
    return value if str(value) == text and value.version == 4 and value.variant == uuid.RFC_4122 else None


def emails_of(rows: list[dict[str, str]]) -> set[str]:
    return {row["email"] for row in rows}


def parse_date(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%m/%d/%Y %H:%M")


def malformed_kinds(row: dict[str, str]) -> set[str]:
    """The defects of ``sample_data.MALFORMED_KINDS`` this row shows."""
    kinds = set()
    if not row["cookie"] and not row["email"]:
        kinds.add("no_identifier")
    if not DATE.fullmatch(row["created_at"]):
        kinds.add("bad_created_at")
    if row["age"] and (not row["age"].isdigit() or int(row["age"]) > 130):
        kinds.add("bad_age")
    if row["gender"] not in ("", *sample_data.GENDERS):
        kinds.add("bad_gender")
    if row["email"] and "@" not in row["email"]:
        kinds.add("email_without_at")
    if row["cookie"] == "null":
        kinds.add("null_cookie")
    if row["email"] != row["email"].strip() and row["email"] != row["email"].lower():
        kinds.add("messy_email")
    if row["phone_number"].endswith(".0"):
        kinds.add("float_phone")
    return kinds


def test_header_is_exact_and_ends_lines_with_newline_only():
    text, _ = generate(3)
    assert text.split("\n")[0] == HEADER
    assert "\r" not in text
    assert text.endswith("\n")


@pytest.mark.parametrize("rows", [1, 2, 3, 10, 99, 1_000])
@pytest.mark.parametrize("malformed", [False, True])
def test_exactly_the_requested_number_of_data_rows_is_written(rows, malformed):
    text, stats = generate(rows, malformed=malformed)
    assert len(data_rows(text)) == rows == stats.rows


def test_rows_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        generate_sample_csv(out=io.StringIO(), rows=0)


def test_same_arguments_give_identical_bytes_and_another_seed_another_file(tmp_path):
    first, second, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    generate_sample_csv(out=first, rows=2_000, seed=7, malformed=True)
    generate_sample_csv(out=str(second), rows=2_000, seed=7, malformed=True)
    generate_sample_csv(out=other, rows=2_000, seed=8, malformed=True)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_a_path_and_a_text_stream_get_the_same_utf8_text(tmp_path):
    path = tmp_path / "x.csv"
    generate_sample_csv(out=path, rows=500)
    text, _ = generate(500)
    assert path.read_bytes() == text.encode("utf-8")


def test_stats_count_distinct_non_empty_cookies_and_emails_as_written():
    for malformed in (False, True):
        text, stats = generate(5_000, seed=3, malformed=malformed)
        rows = data_rows(text)
        assert stats.distinct_cookies == len({row["cookie"] for row in rows if row["cookie"]})
        assert stats.distinct_emails == len({row["email"] for row in rows if row["email"]})


def test_without_the_flag_every_row_is_well_formed(big):
    rows, stats = big
    assert stats.malformed_rows == 0
    assert [row for row in rows if not is_well_formed(row)] == []


def test_well_formed_rows_pass_the_importers_normalization_without_warnings():
    text, _ = generate(2_000, seed=5)
    for row in data_rows(text):
        assert parse_record(row).warnings == ()


def test_created_at_has_no_leading_zeros_and_spans_the_period(big):
    rows, _ = big
    dates = [row["created_at"] for row in rows]
    assert all(DATE.fullmatch(text) for text in dates)
    assert not any(re.search(r"(^|/| )0\d", text) for text in dates)
    parsed = [parse_date(text) for text in dates]
    assert min(parsed) < dt.datetime(2024, 1, 15) and max(parsed) > dt.datetime(2025, 6, 15)
    assert len({d.hour for d in parsed}) == 24


def test_value_shares_follow_the_sample_file(big):
    rows, _ = big
    total = len(rows)

    def empty_share(column: str) -> float:
        return sum(1 for row in rows if row[column] == "") / total

    expected_empty = {
        "phone_number": 0.20,
        "city": 0.81,
        "age": 0.10,
        "gender": 0.145,
        "income": 0.29,
        "education": 0.19,
        "interests": 0.17,
    }
    for column, share in expected_empty.items():
        assert empty_share(column) == pytest.approx(share, abs=0.015), column
    countries = Counter(row["country"] for row in rows if row["country"] in sample_data.REGIONS)
    assert set(countries) == set(sample_data.REGIONS)
    assert all(count / total == pytest.approx(0.1, abs=0.015) for count in countries.values())
    genders = Counter(row["gender"] for row in rows if row["gender"])
    assert all(count / total == pytest.approx(0.214, abs=0.015) for count in genders.values())
    interest_counts = Counter(len(row["interests"].split("|")) for row in rows if row["interests"])
    assert sorted(interest_counts) == [1, 2, 3, 4, 5]


def test_income_brackets_with_commas_are_quoted_like_the_sample_file():
    text, _ = generate(200)
    assert '"$75,000-$99,999"' in text or '"$150,000+"' in text
    assert all(line.count('"') in (0, 2) for line in text.splitlines())


def test_cookies_are_uuid4_with_a_few_hand_typed_ones(huge):
    cookies = {row["cookie"] for row in huge}
    hand_typed = {cookie for cookie in cookies if uuid_or_none(cookie) is None}
    assert 1 <= len(hand_typed) <= len(cookies) * 0.0005
    assert all(HANDLE.fullmatch(cookie) for cookie in hand_typed)


def test_a_few_rows_spell_country_and_state_in_capitals(huge):
    shouted = [row for row in huge if row["country"] not in sample_data.REGIONS]
    assert 1 <= len(shouted) <= len(huge) * 0.0005
    assert all(row["country"].isupper() and row["state"].isupper() for row in shouted)


def test_about_five_percent_of_emails_are_seen_on_two_or_more_cookies(big):
    rows, _ = big
    cookies_by_email = defaultdict(set)
    for row in rows:
        cookies_by_email[row["email"]].add(row["cookie"])
    multi_device = sum(1 for cookies in cookies_by_email.values() if len(cookies) >= 2)
    assert 0.03 <= multi_device / len(cookies_by_email) <= 0.08
    rows_per_email = Counter(Counter(row["email"] for row in rows).values())
    assert rows_per_email[1] / len(cookies_by_email) == pytest.approx(0.95, abs=0.01)
    assert rows_per_email[3] >= 1
    assert max(rows_per_email) <= 4


def test_rows_of_one_person_are_never_adjacent_and_some_come_much_later(big):
    rows, _ = big
    for before, after in itertools.pairwise(rows):
        assert before["email"] != after["email"] and before["cookie"] != after["cookie"]
    positions = defaultdict(list)
    for index, row in enumerate(rows):
        positions[row["email"]].append(index)
    gaps = [found[-1] - found[0] for found in positions.values() if len(found) > 1]
    assert max(gaps) > 1_000


def test_a_persons_later_rows_may_be_dated_before_or_after_their_first(big):
    rows, _ = big
    first_date: dict[str, dt.datetime] = {}
    earlier = later = 0
    for row in rows:
        date = parse_date(row["created_at"])
        if row["email"] in first_date:
            earlier += date < first_date[row["email"]]
            later += date > first_date[row["email"]]
        else:
            first_date[row["email"]] = date
    assert earlier > 50 and later > 50


def test_a_repeated_cookie_comes_back_with_the_same_email_and_another_location(huge):
    by_cookie = defaultdict(list)
    for row in huge:
        by_cookie[row["cookie"]].append(row)
    repeated = [found for found in by_cookie.values() if len(found) > 1 and len(emails_of(found)) == 1]
    assert repeated
    for first, again in repeated:
        assert first["state"] != again["state"]


def test_chains_link_two_cookies_and_two_emails_into_one_person(big):
    rows, _ = big
    cookies_by_email, emails_by_cookie = defaultdict(set), defaultdict(set)
    for row in rows:
        cookies_by_email[row["email"]].add(row["cookie"])
        emails_by_cookie[row["cookie"]].add(row["email"])
    chains = [
        (cookie, emails)
        for cookie, emails in emails_by_cookie.items()
        if len(emails) == 2 and any(len(cookies_by_email[email]) == 2 for email in emails)
    ]
    assert chains


def test_emails_stay_unique_past_the_space_of_names_numbers_and_domains():
    sample = sample_data._SampleRows(rows=1, seed=1, malformed=False)
    space = sample_data._EMAIL_COUNT
    sample.people = space - 3
    emails = [sample._new_email() for _ in range(6)]
    assert len(set(emails)) == 6
    assert all(EMAIL.fullmatch(email) for email in emails[:3])
    assert all(int(re.search(r"(\d+)@", email)[1]) > 1_000 for email in emails[3:])


def test_with_the_flag_every_kind_of_malformed_row_appears():
    text, stats = generate(5_000, malformed=True)
    rows = data_rows(text)
    found = Counter(kind for row in rows for kind in malformed_kinds(row))
    assert set(found) == set(sample_data.MALFORMED_KINDS)
    assert sum(1 for row in rows if malformed_kinds(row)) == stats.malformed_rows == 8
    assert [row for row in rows if not malformed_kinds(row) and not is_well_formed(row)] == []


def test_malformed_rows_are_rejected_or_warned_about_by_the_importer():
    text, _ = generate(800, malformed=True)
    outcomes = {}
    for row in data_rows(text):
        (kind,) = malformed_kinds(row) or {None}
        if kind is None:
            continue
        try:
            outcomes[kind] = "warned" if parse_record(row).warnings else "clean"
        except RecordRejected:
            outcomes[kind] = "rejected"
    assert outcomes == {
        "no_identifier": "rejected",
        "bad_created_at": "rejected",
        "bad_age": "warned",
        "bad_gender": "warned",
        "email_without_at": "warned",
        "null_cookie": "warned",
        "messy_email": "clean",  # trimmed and lower-cased
        "float_phone": "clean",  # repaired
    }


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(1, 1), (100, 1), (799, 7), (800, 8), (5_000, 8), (20_000, 20)],
)
def test_malformed_rows_are_a_tenth_of_a_percent_but_at_least_one_and_each_kind_from_800(rows, expected):
    assert generate(rows, malformed=True)[1].malformed_rows == expected


def test_without_the_flag_no_row_is_malformed(big):
    rows, _ = big
    assert [row for row in rows if malformed_kinds(row)] == []


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 400), seed=st.integers(0, 2**32), malformed=st.booleans())
def test_any_size_gives_exact_rows_true_stats_and_no_adjacent_repeats(rows, seed, malformed):
    text, stats = generate(rows, seed=seed, malformed=malformed)
    written = data_rows(text)
    assert len(written) == rows
    assert stats.distinct_cookies == len({row["cookie"] for row in written if row["cookie"]})
    assert stats.distinct_emails == len({row["email"] for row in written if row["email"]})
    for before, after in itertools.pairwise(written):
        assert not (before["email"] and before["email"] == after["email"])
        assert not (before["cookie"] not in ("", "null") and before["cookie"] == after["cookie"])


def test_command_writes_the_file_and_prints_one_summary_line(tmp_path):
    out, stdout = tmp_path / "x.csv", io.StringIO()
    call_command("generate_sample_data", rows=50, out=str(out), seed=1, stdout=stdout)
    assert out.read_text(encoding="utf-8") == generate(50, seed=1)[0]
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Wrote 50 rows (") and str(out) in lines[0]


def test_command_passes_the_malformed_flag(tmp_path):
    out = tmp_path / "x.csv"
    arguments = ["--rows", "100", "--out", str(out), "--malformed"]
    call_command("generate_sample_data", *arguments, stdout=io.StringIO())
    assert sum(1 for row in data_rows(out.read_text(encoding="utf-8")) if malformed_kinds(row)) == 1


@pytest.mark.parametrize(
    ("rows", "out", "message"),
    [
        (0, "x.csv", "at least 1"),
        (10, "missing/x.csv", "does not exist"),
        (10, ".", "Cannot write"),
    ],
)
def test_command_refuses_bad_arguments_with_a_clear_message(tmp_path, rows, out, message):
    with pytest.raises(CommandError, match=message):
        call_command("generate_sample_data", rows=rows, out=str(tmp_path / out), stdout=io.StringIO())
