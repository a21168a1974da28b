"""``rebuild_profiles`` reproduces what ingestion built; ``summary`` reports it."""

import json
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from tests.builders import database_snapshot, foreign_keys, indexes, ingest, ingest_batch, record, started_thread
from users_app import bulk
from users_app.ingestion import IncomingRecord, profiles_rebuild, records_ingest
from users_app.models import BlockedIdentifier, Identifier, Profile, RawRecord
from users_app.queued import queue_only, queued_drain

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


def test_ingests_during_a_live_rebuild_wait_for_it_and_neither_fails(postgres, transactional_db):
    """PostgreSQL: a new person and a known one sent while a live rebuild runs. Both wait for it (a
    new person's profile committed meanwhile clashed with the one the rebuild then made from the same
    record); a queued record is stored at once and resolved afterwards."""
    ingest(*(record(cookie=f"c{i}", email=f"p{i % 10}@x.com") for i in range(40)))
    rebuilding, release = threading.Event(), threading.Event()
    rebuilt, outcomes, errors = [], [], []

    def hold_after_first_batch(_: int) -> None:
        rebuilding.set()
        release.wait(30)

    rebuild = started_thread(
        lambda: rebuilt.append(profiles_rebuild(batch_size=10, progress=hold_after_first_batch)), errors
    )
    assert rebuilding.wait(30)
    incoming = [record(cookie="new", email="new@x.com"), record(cookie="c99", email="p3@x.com")]
    ingests = [started_thread(lambda data=data: outcomes.extend(ingest(data)), errors) for data in incoming]
    (queued,) = records_ingest(
        records=[IncomingRecord(data=record(cookie="late", email="p4@x.com"), source="api")], resolve=queue_only
    ).outcomes
    time.sleep(0.5)
    assert all(thread.is_alive() for thread in ingests)  # waiting for the rebuild
    release.set()
    for thread in [rebuild, *ingests]:
        thread.join(60)

    assert errors == []
    assert rebuilt[0].raw_records == 40
    assert sorted(o.status for o in outcomes) == ["created", "updated"]
    assert queued.status == "queued" and queued_drain().records == 1
    assert Profile.objects.count() == 11
    assert Profile.objects.get(identifiers__value="p3@x.com").cookie_count == 5
    assert Profile.objects.get(identifiers__value="p4@x.com").cookie_count == 5
