"""The resolver's bulk writer (COPY on PostgreSQL, executemany on SQLite) stores what the ORM would."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction

from users_app import bulk
from users_app.models import Identifier, ImportRun, Profile, RawRecord

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2025, 1, 15, 10, 0, tzinfo=dt.UTC)


def raw_row(raw_id: int, **overrides) -> tuple:
    values = {
        "id": raw_id,
        "data": {"cookie": "c", "note": 'tab\there, newline\nthere, back\\slash, quote " and ünïcode'},
        "source": "api",
        "source_key": None,
        "created_at": WHEN,
        "received_at": WHEN,
        "warnings": ["age: 'x' is not a whole number"],
        "outcome": "created",
    }
    values.update(overrides)
    return tuple(values.values())


RAW_FIELDS = ("id", "data", "source", "source_key", "created_at", "received_at", "warnings", "outcome")


def test_allocated_ids_are_new_and_never_reused_by_the_orm():
    with transaction.atomic():
        first = bulk.allocate_ids(RawRecord, 3)
        bulk.insert_rows(RawRecord, RAW_FIELDS, [raw_row(raw_id) for raw_id in first])
    assert len(set(first)) == 3
    orm_made = RawRecord.objects.create(data={}, source="api", created_at=WHEN)
    assert orm_made.pk > max(first)
    with transaction.atomic():
        second = bulk.allocate_ids(RawRecord, 2)
    assert min(second) > orm_made.pk
    assert bulk.allocate_ids(RawRecord, 0) == []


def test_inserted_rows_read_back_exactly_through_the_orm_with_text_that_copy_must_escape():
    with transaction.atomic():
        (raw_id,) = bulk.allocate_ids(RawRecord, 1)
        assert bulk.insert_rows(RawRecord, RAW_FIELDS, [raw_row(raw_id, source_key="api:m1")]) == 1
    stored = RawRecord.objects.get(pk=raw_id)
    expected = raw_row(raw_id, source_key="api:m1")
    assert tuple(getattr(stored, name) for name in RAW_FIELDS) == expected


def test_nulls_and_foreign_keys_by_id():
    run = ImportRun.objects.create(file_name="f.csv", sha256="0" * 64)
    with transaction.atomic():
        (raw_id,) = bulk.allocate_ids(RawRecord, 1)
        bulk.insert_rows(RawRecord, (*RAW_FIELDS, "import_run", "line_number"), [(*raw_row(raw_id), run.pk, None)])
    stored = RawRecord.objects.get(pk=raw_id)
    assert stored.import_run_id == run.pk
    assert stored.line_number is None
    assert stored.profile_id is None


def test_update_rows_sets_only_the_named_fields_of_the_given_rows():
    profiles = [
        Profile.objects.create(id=pk, first_seen=WHEN, last_seen=WHEN, city="Old", trait_sources={}) for pk in (7, 8)
    ]
    later = WHEN + dt.timedelta(days=1)
    bulk.update_rows(Profile, ["city", "age", "last_seen", "trait_sources"], [(7, "New", 41, later, {"city": [1, 2]})])
    seven, eight = (Profile.objects.get(pk=p.pk) for p in profiles)
    assert (seven.city, seven.age, seven.last_seen, seven.trait_sources) == ("New", 41, later, {"city": [1, 2]})
    assert (eight.city, eight.age, eight.last_seen) == ("Old", None, WHEN)


def test_rows_matching_finds_each_row_once_by_value_and_kind():
    for pk in (3, 4):
        Profile.objects.create(id=pk, first_seen=WHEN, last_seen=WHEN, trait_sources={})
    Identifier.objects.create(kind="email", value="b@example.com", profile_id=4)
    Identifier.objects.create(kind="email", value="a@example.com", profile_id=3)
    Identifier.objects.create(kind="cookie", value="a@example.com", profile_id=4)
    values = ["a@example.com", "b@example.com", "nobody@example.com"] * 500  # past SQLite's chunk size
    rows = bulk.rows_matching(Identifier, ["value", "profile"], "value", values, kind="email", lock=True)
    assert sorted(rows) == [("a@example.com", 3), ("b@example.com", 4)]


def test_update_rows_leaves_rows_that_already_hold_the_values_untouched(postgres):
    for pk in (5, 6):
        Profile.objects.create(id=pk, first_seen=WHEN, last_seen=WHEN, city="Same", trait_sources={})

    def row_versions():
        with connection.cursor() as cursor:
            # ctid: where the row version lives; an UPDATE writes a new version elsewhere.
            cursor.execute("SELECT id, ctid::text FROM users_app_profile ORDER BY id")
            return dict(cursor.fetchall())

    before = row_versions()
    bulk.update_rows(Profile, ["city"], [(5, "Same"), (6, "Other")])
    after = row_versions()
    assert after[5] == before[5]  # no new row version
    assert after[6] != before[6]
    assert Profile.objects.get(pk=6).city == "Other"


def test_a_constraint_violation_is_djangos_integrity_error_so_the_ingest_is_retried():
    Profile.objects.create(id=9, first_seen=WHEN, last_seen=WHEN, trait_sources={})
    Identifier.objects.create(kind="email", value="taken@example.com", profile_id=9)
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert_rows(Identifier, ["kind", "value", "profile"], [("email", "taken@example.com", 9)])
