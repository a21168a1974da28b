"""Synthetic user-data CSV shaped like the product's sample file, for the demo and the benchmarks.

``generate_sample_csv(out=..., rows=N, seed=42)`` writes a header and exactly N data rows with the
columns, value formats and value shares measured on ``shared/data/sample_user_data.csv``
(10,002 rows): UUID cookies (a few hand-typed), ``first.lastNNN@domain`` emails, 11-digit phones,
ten countries with their real regions, optional demographics and ``M/D/YYYY H:MM`` dates.

People, not rows, are generated: ~95% of emails have one row, ~4.8% two, ~0.25% three and ~0.01%
four, each extra row from a different device (cookie) and with its own traits and created_at
(earlier or later than the first). Rarely a cookie repeats with the same email and a new location,
and ~0.05% of people form a chain (cookie A + email X, cookie B + email X, cookie B + email Y).
A person's later rows wait in a small heap and come out up to ``MAX_SPREAD`` rows after the
previous one, never right after one another; memory stays flat however many rows are asked for.
``malformed=True`` adds ~0.1% bad rows (at least one, and one of each kind once there are 800
rows) of the kinds in ``MALFORMED_KINDS``.

The output depends only on the arguments: the same rows, seed and flag give a byte-identical file.

Run it through the management command::

    python manage.py generate_sample_data --rows 1000000 --out /tmp/users_1m.csv [--seed 42] [--malformed]
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import itertools
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from .normalize import RECORD_FIELDS

HEADER = RECORD_FIELDS
COOKIE, EMAIL, PHONE, COUNTRY, STATE, CITY, AGE, GENDER, INCOME, EDUCATION, INTERESTS, CREATED_AT = range(12)

DEFAULT_SEED = 42

# Country -> region -> cities. As in the sample file, only one region per country (two for the USA)
# names a city, which leaves the city empty in ~81% of rows.
REGIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "UK": {
        "England": ("Birmingham", "Liverpool", "Manchester", "London"),
        "Scotland": (),
        "Wales": (),
        "Northern Ireland": (),
    },
    "Japan": {
        "Tokyo": ("Shibuya", "Setagaya", "Shinjuku", "Minato"),
        "Osaka": (),
        "Kyoto": (),
        "Hokkaido": (),
        "Aichi": (),
        "Kanagawa": (),
        "Hyogo": (),
        "Chiba": (),
    },
    "Mexico": {
        "Mexico City": ("Miguel Hidalgo", "Tlalpan", "Cuauhtémoc", "Coyoacán"),
        "Guanajuato": (),
        "Nuevo León": (),
        "Veracruz": (),
        "Jalisco": (),
        "Puebla": (),
    },
    "Canada": {
        "Ontario": ("Ottawa", "Hamilton", "Mississauga", "Toronto"),
        "Quebec": (),
        "British Columbia": (),
        "Alberta": (),
        "Manitoba": (),
        "Nova Scotia": (),
        "Saskatchewan": (),
    },
    "Brazil": {
        "São Paulo": ("São Paulo City", "Campinas", "Santos", "São José dos Campos"),
        "Rio de Janeiro": (),
        "Bahia": (),
        "Paraná": (),
        "Rio Grande do Sul": (),
        "Minas Gerais": (),
    },
    "India": {
        "Maharashtra": ("Mumbai", "Pune", "Nagpur", "Thane"),
        "Tamil Nadu": (),
        "Karnataka": (),
        "Delhi": (),
        "Uttar Pradesh": (),
        "Gujarat": (),
        "West Bengal": (),
    },
    "France": {
        "Île-de-France": ("Paris", "Saint-Denis", "Versailles", "Boulogne-Billancourt"),
        "Normandy": (),
        "Auvergne-Rhône-Alpes": (),
        "Occitanie": (),
        "Provence-Alpes-Côte d'Azur": (),
    },
    "Germany": {
        "Bavaria": ("Munich", "Augsburg", "Nuremberg", "Regensburg"),
        "North Rhine-Westphalia": (),
        "Baden-Württemberg": (),
        "Hesse": (),
        "Berlin": (),
        "Saxony": (),
    },
    "Australia": {
        "New South Wales": ("Sydney", "Newcastle", "Wollongong", "Central Coast"),
        "Victoria": (),
        "Queensland": (),
        "South Australia": (),
        "Western Australia": (),
        "Tasmania": (),
    },
    "USA": {
        "California": ("Los Angeles", "San Diego", "San Jose", "San Francisco"),
        "New York": ("New York City", "Buffalo", "Rochester", "Syracuse"),
        "Texas": ("Houston", "Dallas", "Austin", "San Antonio"),
        "Florida": (),
        "Pennsylvania": (),
        "Illinois": (),
        "Ohio": (),
        "Georgia": (),
        "Michigan": (),
    },
}

FIRST_NAMES = (
    "andrew", "anthony", "ashley", "betty", "charles", "christopher", "daniel", "david", "donald", "donna",
    "dorothy", "elizabeth", "emily", "james", "jennifer", "jessica", "john", "joseph", "joshua", "karen",
    "kimberly", "linda", "lisa", "margaret", "mark", "mary", "matthew", "michael", "michelle", "nancy",
    "patricia", "paul", "richard", "robert", "sandra", "sarah", "steven", "susan", "thomas", "william",
)  # fmt: skip
LAST_NAMES = (
    "adams", "allen", "anderson", "baker", "brown", "clark", "davis", "garcia", "gonzalez", "green",
    "hall", "harris", "hernandez", "jackson", "johnson", "jones", "king", "lee", "lewis", "lopez",
    "martin", "martinez", "miller", "moore", "nelson", "perez", "robinson", "rodriguez", "sanchez", "scott",
    "smith", "taylor", "thomas", "thompson", "walker", "white", "williams", "wilson", "wright", "young",
)  # fmt: skip
EMAIL_DOMAINS = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "protonmail.com",
)  # fmt: skip
EMAIL_NUMBERS = 999  # the digits after the name run 1..999, as in the sample file

# Hand-typed cookies (``ashokpravin10``) are a given name, a family name and a running number.
HANDLE_GIVEN = ("ashok", "priya", "ravi", "anita", "kenji", "sofia", "lucas", "emma", "diego", "chloe")
HANDLE_FAMILY = ("pravin", "kumar", "sharma", "tanaka", "silva", "muller", "dubois", "reyes", "smith", "ng")

GENDERS = ("Prefer not to say", "Male", "Other", "Female")
INCOMES = (
    "Under $25,000",
    "$25,000-$49,999",
    "$50,000-$74,999",
    "$75,000-$99,999",
    "$100,000-$149,999",
    "$150,000+",
)
EDUCATIONS = (
    "Bachelor's Degree",
    "Doctorate",
    "Some College",
    "Trade School",
    "High School",
    "Master's Degree",
)
INTEREST_LABELS = (
    "Politics", "Travel", "Finance", "Fashion", "Movies", "Tech", "Education", "Photography",
    "Health", "Food", "Sports", "Books", "Art", "Music", "Gaming",
)  # fmt: skip
MAX_INTERESTS = 5  # the sample file lists 1 to 5 interests, each count about equally often
AGE_RANGE = (18, 85)

# Shares of empty values, as measured on the sample file.
EMPTY_SHARE = {
    "phone_number": 0.20,
    "age": 0.10,
    "gender": 0.145,
    "income": 0.29,
    "education": 0.19,
    "interests": 0.17,
}
UPPER_CASE_SHARE = 0.0001  # ``INDIA``, ``TAMIL NADU``
HAND_TYPED_COOKIE_SHARE = 0.0001

FIRST_DAY = dt.date(2024, 1, 1)
LAST_DAY = dt.date(2025, 6, 30)

# What each new person looks like: (share of people, kind, number of rows after the first).
# Everyone else has a single row.
PERSON_KINDS = (
    (0.0005, "chain", 2),  # (cookie A, email X), (cookie B, email X), (cookie B, email Y)
    (0.0001, "repeated_cookie", 1),  # same cookie and email again, another location
    (0.0001, "devices", 3),
    (0.0025, "devices", 2),
    (0.0484, "devices", 1),
)
MAX_SPREAD = 20_000  # a person's next row comes at most this many rows (plus any backlog) after the last

MALFORMED_KINDS = (
    "no_identifier",  # neither cookie nor email: rejected downstream
    "bad_created_at",  # rejected downstream
    "bad_age",
    "bad_gender",
    "email_without_at",
    "null_cookie",
    "messy_email",  # mixed case with surrounding spaces
    "float_phone",  # 19337251087.0, as a spreadsheet renders it
)
MALFORMED_SHARE = 0.001
MALFORMED_MIN_ROWS_PER_KIND = 100  # below ~100 rows per kind, fewer kinds appear (but at least one)

TABLE_BITS = 17  # weighted values are drawn from tables of 2**17 slots (see ``_table``)
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant: what uuid.UUID(version=4) sets


@dataclass(frozen=True)
class GenerationStats:
    """What was written. Distinct counts are of non-empty values exactly as written in the file."""

    rows: int
    distinct_cookies: int
    distinct_emails: int
    malformed_rows: int


def _table(weighted: Sequence[tuple[object, float]]) -> tuple:
    """``2**TABLE_BITS`` slots shared out by weight, so ``table[getrandbits(TABLE_BITS)]`` draws a value.

    One C call per draw matters at 10M rows. Largest remainders round each share to within 1/2**17.
    """
    size = 1 << TABLE_BITS
    total = sum(weight for _, weight in weighted)
    exact = [weight / total * size for _, weight in weighted]
    counts = [int(share) for share in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    return tuple(value for (value, _), count in zip(weighted, counts, strict=True) for _ in range(count))


def _optional(values: Sequence, empty_share: float, empty: object = "") -> tuple:
    share = (1 - empty_share) / len(values)
    return _table([(empty, empty_share), *((value, share) for value in values)])


def _locations() -> tuple:
    weighted = []
    for country, regions in REGIONS.items():
        for state, cities in regions.items():
            weight = 1 / len(REGIONS) / len(regions)
            if cities:
                weighted.extend(((country, state, city), weight / len(cities)) for city in cities)
            else:
                weighted.append(((country, state, ""), weight))
    return _table(weighted)


def _interest_choices() -> tuple[tuple[str, ...], ...]:
    """A table of the sets to choose one from: ("",) or every set of 1..MAX_INTERESTS interests.

    Each set is listed in one order, shuffled once, so drawing a row's interests takes two draws.
    """
    order = random.Random(0)
    by_count = []
    for count in range(1, MAX_INTERESTS + 1):
        listed = []
        for labels in itertools.combinations(INTEREST_LABELS, count):
            shuffled = list(labels)
            order.shuffle(shuffled)
            listed.append("|".join(shuffled))
        by_count.append(tuple(listed))
    return _optional(by_count, EMPTY_SHARE["interests"], empty=("",))


def _date_texts() -> tuple[str, ...]:
    days = (LAST_DAY - FIRST_DAY).days + 1
    dates = (FIRST_DAY + dt.timedelta(days=n) for n in range(days))
    return tuple(f"{d.month}/{d.day}/{d.year}" for d in dates)


_LOCATIONS = _locations()
_AGES = _optional([str(age) for age in range(AGE_RANGE[0], AGE_RANGE[1] + 1)], EMPTY_SHARE["age"])
_GENDERS = _optional(GENDERS, EMPTY_SHARE["gender"])
_INCOMES = _optional(INCOMES, EMPTY_SHARE["income"])
_EDUCATIONS = _optional(EDUCATIONS, EMPTY_SHARE["education"])
_INTEREST_CHOICES = _interest_choices()
_DATES = _date_texts()
_TIMES = tuple(f"{hour}:{minute:02d}" for hour in range(24) for minute in range(60))
_MINUTES = len(_DATES) * len(_TIMES)
_PHONE_SHARE = 1 - EMPTY_SHARE["phone_number"]
# A phone is 1, an area code not starting with 0 or 1, and seven digits (North American style).
_FIRST_PHONE, _PHONE_COUNT = 12_000_000_000, 8_000_000_000
_PHONE_SCALE = _PHONE_COUNT / _PHONE_SHARE  # a draw below _PHONE_SHARE, scaled, picks the number
# Emails are "<first>.<last>" + "<number>@<domain>"; both halves are listed once.
_EMAIL_NAMES = tuple(f"{first}.{last}" for first in FIRST_NAMES for last in LAST_NAMES)
_EMAIL_TAILS = tuple(f"{n}@{domain}" for n in range(1, EMAIL_NUMBERS + 1) for domain in EMAIL_DOMAINS)
_NAME_COUNT, _TAIL_COUNT = len(_EMAIL_NAMES), len(_EMAIL_TAILS)
_EMAIL_COUNT = _NAME_COUNT * _TAIL_COUNT
_MULTI_ROW_SHARE = sum(share for share, _, _ in PERSON_KINDS)


def _person_kind(share: float) -> tuple[str, int]:
    """The PERSON_KINDS entry a uniform draw below ``_MULTI_ROW_SHARE`` falls in."""
    for kind_share, kind, extra in PERSON_KINDS:
        if share < kind_share:
            return kind, extra
        share -= kind_share
    return "single", 0


# A later row of a person, waiting in a heap: (due row index, order pushed, person, row). A person
# is known by the index of their first row.
_Waiting = tuple[int, int, int, list[str]]


class _SampleRows:
    """Yields the data rows of one file; all randomness comes from one ``random.Random(seed)``.

    The per-row code binds names locally and draws from precomputed tables: it runs once per row,
    and at 10M rows every attribute lookup counts.
    """

    def __init__(self, *, rows: int, seed: int, malformed: bool):
        self.rows = rows
        self.rng = random.Random(seed)
        self.random = self.rng.random
        self.bits = self.rng.getrandbits
        self.malformed_total = self._malformed_count(rows) if malformed else 0
        # Small files get a small spread, or every repeat would be pushed to the end of the file.
        self.spread = max(2, min(MAX_SPREAD, rows // 4))
        self.email_keys = (self.rng.getrandbits(32), self.rng.getrandbits(32))
        self.people = 0
        self.handles = 0
        self.distinct_cookies = 0
        self.distinct_emails = 0
        self.wrote_null_cookie = False

    @staticmethod
    def _malformed_count(rows: int) -> int:
        per_kind = min(len(MALFORMED_KINDS), rows // MALFORMED_MIN_ROWS_PER_KIND)
        return min(rows, max(1, per_kind, round(rows * MALFORMED_SHARE)))

    def __iter__(self) -> Iterator[list[str]]:
        rows, random = self.rows, self.random
        new_row, new_cookie, new_email = self._new_row, self._new_cookie, self._new_email
        # Malformed rows sit at fixed, evenly spaced positions; the rest are people's rows.
        malformed_done = 0
        next_malformed = self._malformed_position(0)
        people_end = rows - self.malformed_total  # rows left for people = people_end - index
        pending: list[_Waiting] = []
        order = 0
        last_person = -1
        for index in range(rows):
            if index == next_malformed:
                kind = MALFORMED_KINDS[malformed_done % len(MALFORMED_KINDS)]
                malformed_done += 1
                people_end += 1
                next_malformed = self._malformed_position(malformed_done)
                last_person = -1
                yield self._malformed_row(kind)
                continue
            # Near the end of the file, waiting rows go out every other row at least.
            if pending and (pending[0][0] <= index or 2 * len(pending) >= people_end - index):
                entry = self._pop_other_person(pending, last_person, force=len(pending) >= people_end - index)
                if entry is not None:
                    last_person = entry[2]
                    yield entry[3]
                    continue
            last_person = index
            share = random()
            if share >= _MULTI_ROW_SHARE:
                yield new_row(new_cookie(), new_email())
                continue
            kind, extra = _person_kind(share)
            # A person's rows must fit, with room to keep them apart, before the file ends.
            if 2 * (len(pending) + extra) > people_end - index - 2:
                kind, extra = "single", 0
            first, later = self._person_rows(kind, extra)
            due = index + 1
            for row in later:
                due += 1 + int(random() * self.spread)
                order += 1
                heapq.heappush(pending, (due, order, index, row))
            yield first

    def _malformed_position(self, done: int) -> int:
        if done >= self.malformed_total:
            return -1
        return (2 * done + 1) * self.rows // (2 * self.malformed_total)

    @staticmethod
    def _pop_other_person(pending: list[_Waiting], last_person: int, *, force: bool) -> _Waiting | None:
        """The earliest waiting row of someone other than the person just written.

        None when only that person's rows wait, unless ``force`` (no rows are left to put between):
        every row must be written, so theirs then comes out anyway.
        """
        if pending[0][2] != last_person or (force and len(pending) == 1):
            return heapq.heappop(pending)
        if len(pending) == 1:
            return None
        held = heapq.heappop(pending)
        entry = heapq.heappop(pending)
        if entry[2] == last_person and not force:
            heapq.heappush(pending, entry)
            entry = None
        heapq.heappush(pending, held)
        return entry

    # People -------------------------------------------------------------------------------------

    def _person_rows(self, kind: str, extra: int) -> tuple[list[str], list[list[str]]]:
        email = self._new_email()
        first = self._new_row(self._new_cookie(), email)
        if kind == "chain":
            second_cookie = self._new_cookie()
            return first, [
                self._new_row(second_cookie, email),
                self._new_row(second_cookie, self._new_email()),
            ]
        if kind == "repeated_cookie":
            # The same device and person again, somewhere else and at another time.
            again = self._new_row(first[COOKIE], email)
            again[AGE:CREATED_AT] = first[AGE:CREATED_AT]
            while again[STATE] == first[STATE]:
                again[COUNTRY], again[STATE], again[CITY] = _LOCATIONS[self.bits(TABLE_BITS)]
            return first, [again]
        return first, [self._new_row(self._new_cookie(), email) for _ in range(extra)]

    def _new_cookie(self) -> str:
        self.distinct_cookies += 1
        random = self.random
        if random() < HAND_TYPED_COOKIE_SHARE:
            # The running number ends every handle, so no two handles are equal.
            self.handles += 1
            given = HANDLE_GIVEN[int(random() * len(HANDLE_GIVEN))]
            family = HANDLE_FAMILY[int(random() * len(HANDLE_FAMILY))]
            return f"{given}{family}{9 + self.handles}"
        h = (self.bits(128) & _UUID_CLEAR | _UUID_SET).to_bytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _new_email(self) -> str:
        """The next person's email, which no other person gets.

        Person numbers are put through a keyed two-round Feistel-style permutation of
        (first x last name) x (number x domain), so consecutive people get unrelated names without a
        record of the emails used; past that space the numbers go on from 1001, 2001, ...
        """
        cycle, position = divmod(self.people, _EMAIL_COUNT)
        self.people += 1
        self.distinct_emails += 1
        # Each round adds a scramble of one half to the other; with any scramble that is a permutation.
        # The name varies fastest, so the second round spreads consecutive people over all names.
        tail, name = divmod(position, _NAME_COUNT)
        key_a, key_b = self.email_keys
        mixed = ((name ^ key_a) * 0x9E3779B1) & 0xFFFFFFFF
        tail = (tail + (mixed ^ (mixed >> 15))) % _TAIL_COUNT
        mixed = ((tail ^ key_b) * 0x9E3779B1) & 0xFFFFFFFF
        name = (name + (mixed ^ (mixed >> 15))) % _NAME_COUNT
        if cycle:
            number, domain = _EMAIL_TAILS[tail].split("@")
            return f"{_EMAIL_NAMES[name]}{int(number) + 1000 * cycle}@{domain}"
        return _EMAIL_NAMES[name] + _EMAIL_TAILS[tail]

    # Rows ---------------------------------------------------------------------------------------

    def _new_row(self, cookie: str, email: str) -> list[str]:
        random, bits = self.random, self.bits
        phone = random()
        phone = str(_FIRST_PHONE + int(phone * _PHONE_SCALE)) if phone < _PHONE_SHARE else ""
        country, state, city = _LOCATIONS[bits(TABLE_BITS)]
        if random() < UPPER_CASE_SHARE:
            country, state = country.upper(), state.upper()
        interests = _INTEREST_CHOICES[bits(TABLE_BITS)]
        day, minute = divmod(int(random() * _MINUTES), len(_TIMES))
        return [
            cookie,
            email,
            phone,
            country,
            state,
            city,
            _AGES[bits(TABLE_BITS)],
            _GENDERS[bits(TABLE_BITS)],
            _INCOMES[bits(TABLE_BITS)],
            _EDUCATIONS[bits(TABLE_BITS)],
            interests[bits(20) % len(interests)],  # bias below 1 in 300: up to 3,003 sets in 2**20
            f"{_DATES[day]} {_TIMES[minute]}",
        ]

    def _malformed_row(self, kind: str) -> list[str]:
        """A row of a new person with one defect of the given kind."""
        row = self._new_row(self._new_cookie(), self._new_email())
        if kind == "no_identifier":
            row[COOKIE] = row[EMAIL] = ""
            self.distinct_cookies -= 1
            self.distinct_emails -= 1
        elif kind == "bad_created_at":
            row[CREATED_AT] = "not a date"
        elif kind == "bad_age":
            row[AGE] = "abc" if self.random() < 0.5 else "200"
        elif kind == "bad_gender":
            row[GENDER] = "unknown-ish"
        elif kind == "email_without_at":
            row[EMAIL] = row[EMAIL].replace("@", "")
        elif kind == "null_cookie":
            if self.wrote_null_cookie:
                self.distinct_cookies -= 1
            row[COOKIE] = "null"
            self.wrote_null_cookie = True
        elif kind == "messy_email":
            local, domain = row[EMAIL].split("@")
            name, tld = domain.rsplit(".", 1)
            row[EMAIL] = f"  {local.title()}@{name.capitalize()}.{tld.upper()} "
        elif kind == "float_phone":
            row[PHONE] = f"{row[PHONE] or _FIRST_PHONE + int(self.random() * _PHONE_COUNT)}.0"
        return row


def generate_sample_csv(
    *, out: TextIO | str | os.PathLike[str], rows: int, seed: int = DEFAULT_SEED, malformed: bool = False
) -> GenerationStats:
    """Write the header and ``rows`` data rows to ``out`` (a path, or a text file opened with newline="")."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if isinstance(out, (str, os.PathLike)):
        with open(out, "w", encoding="utf-8", newline="", buffering=1 << 20) as handle:
            return generate_sample_csv(out=handle, rows=rows, seed=seed, malformed=malformed)
    sample = _SampleRows(rows=rows, seed=seed, malformed=malformed)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(sample)
    return GenerationStats(
        rows=rows,
        distinct_cookies=sample.distinct_cookies,
        distinct_emails=sample.distinct_emails,
        malformed_rows=sample.malformed_total,
    )
