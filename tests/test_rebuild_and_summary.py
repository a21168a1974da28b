"""``rebuild_profiles`` reproduces what ingestion built; ``summary`` reports it."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from tests.builders import database_snapshot, foreign_keys, indexes, ingest, ingest_batch, record
from users_app import bulk
from users_app.models import BlockedIdentifier, Identifier, Profile, RawRecord

pytestmark = pytest.mark.django_db


def test_rebuild_reproduces_profiles_ids_and_ledger_built_one_record_at_a_time():
    ingest(
        record(cookie="A", email="x@example.com", country="India", created_at="2/1/2025 0:00"),
        record(cookie="B", email="y@example.com", age="40", interests="Tech"),
        record(cookie="B", email="x@example.com", country="Japan", created_at="1/1/2025 0:00"),
        record(cookie="C", email="z@example.com"),
    )
    ingest_batch([record(cookie="C", email="y@example.com", interests="gaming"), record(cookie="D", email="")])
    before = database_snapshot()
    ids_before = sorted(Profile.objects.values_list("id", flat=True))

    call_command("rebuild_profiles", stdout=StringIO())

    assert database_snapshot() == before
    assert sorted(Profile.objects.values_list("id", flat=True)) == ids_before


def test_offline_rebuild_gives_what_the_live_one_gives():
    ingest(
        record(cookie="A", email="x@example.com", interests="Tech", created_at="2/1/2025 0:00"),
        record(cookie="B", email="y@example.com", age="40"),
        record(cookie="B", email="x@example.com", country="Japan", created_at="1/1/2025 0:00"),
        record(cookie="C", email="info@shop.com"),
        record(cookie="D", email="info@shop.com"),
    )
    BlockedIdentifier.objects.create(kind="email", value="info@shop.com")
    call_command("rebuild_profiles", stdout=StringIO())
    live = database_snapshot()
    ingest(record(cookie="E", email="y@example.com"))  # drift the rebuild must undo
    RawRecord.objects.filter(data__cookie="E").delete()

    call_command("rebuild_profiles", "--offline", stdout=StringIO())

    assert database_snapshot() == live
    assert Profile.objects.count() == 3  # A+B, C and D apart: the block list holds


def test_offline_rebuild_puts_every_foreign_key_back(postgres):
    ingest(record(cookie="A", email="x@example.com"), record(cookie="B", email="x@example.com"))
    before = foreign_keys()
    assert len(before) >= 10

    call_command("rebuild_profiles", "--offline", stdout=StringIO())

    assert foreign_keys() == before
    assert Profile.objects.get().cookie_count == 2


def test_a_row_breaking_a_key_set_aside_is_refused_when_the_keys_come_back(postgres):
    ingest(record(cookie="A", email="x@example.com"))
    before = foreign_keys()

    with pytest.raises(IntegrityError), transaction.atomic(), bulk.foreign_keys_set_aside(Identifier):
        assert len(foreign_keys()) < len(before)
        Identifier.objects.create(kind="cookie", value="orphan", profile_id=10**9)

    assert foreign_keys() == before
    assert not Identifier.objects.filter(value="orphan").exists()


def test_an_offline_rebuild_builds_the_indexes_it_set_aside_again_even_when_it_fails(postgres):
    ingest(record(cookie="A", email="x@example.com"), record(cookie="B", email="x@example.com"))
    before = indexes()

    call_command("rebuild_profiles", "--offline", stdout=StringIO())
    assert indexes() == before

    with pytest.raises(RuntimeError), transaction.atomic(), bulk.indexes_set_aside(Profile, RawRecord):
        assert "profile_country_age_idx" not in {name for _, name, _ in indexes()}
        raise RuntimeError("the load failed half way")
    assert indexes() == before


def test_rebuild_applies_a_block_list_added_later_and_keeps_every_raw_record():
    ingest(record(cookie="A", email="info@shop.com"), record(cookie="B", email="info@shop.com"))
    assert Profile.objects.count() == 1
    BlockedIdentifier.objects.create(kind="email", value="info@shop.com")

    out = StringIO()
    call_command("rebuild_profiles", "--json", stdout=out)

    assert Profile.objects.count() == 2
    assert RawRecord.objects.count() == 2
    assert json.loads(out.getvalue().splitlines()[-1])["profiles"] == 2


def test_summary_json_counts_records_profiles_cohort_and_identifiers():
    ingest(record(cookie="A", email="x@example.com"), record(cookie="B", email="x@example.com"), record(cookie="C"))
    out = StringIO()
    call_command("summary", "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["raw_records"] == 3
    assert summary["profiles"] == 2
    assert summary["multi_cookie_profiles"] == 1
    assert summary["identifiers"] == {"cookie": 3, "email": 2, "phone": 0}
