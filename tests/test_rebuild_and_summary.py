"""``rebuild_profiles`` reproduces what ingestion built; ``summary`` reports it."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.builders import database_snapshot, ingest, ingest_batch, record
from users_app.models import BlockedIdentifier, Profile, RawRecord

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
