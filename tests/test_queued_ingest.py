"""Asynchronous ingestion (``users_app.queued``): records stored now and resolved behind end where
synchronous ingestion puts them."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import keyed, record, snapshot_after, started_thread
from tests.live_server import child_database_url
from tests.test_properties import record_sets
from users_app.erasure import person_erase
from users_app.ingestion import IncomingRecord, profiles_rebuild, records_ingest, run_with_retries
from users_app.models import BlockedIdentifier, Identifier, Profile, RawRecord
from users_app.queued import QUEUED, queue_only, queued_backlog, queued_drain, queued_resolve
from users_app.resolution import resolve_records
from users_app.selectors import database_summary

pytestmark = pytest.mark.django_db


def enqueue(records: list[dict]) -> list:
    return records_ingest(records=keyed(records), resolve=queue_only).outcomes


def load(records: list[dict], *, batch: int, queued_batch: int | None) -> dict:
    """The whole store after ``records`` in batches, resolved at once or (``queued_batch``) queued
    and then resolved that many at a time."""
    if not queued_batch:
        return snapshot_after(records, batch=batch, resolve=resolve_records)
    return snapshot_after(records, batch=batch, resolve=queue_only, then=lambda: queued_drain(batch_size=queued_batch))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=record_sets(),
    batch=st.integers(1, 8),
    queued_batch=st.integers(1, 25),
    match_phone=st.booleans(),
)
def test_queued_records_resolve_to_what_synchronous_ingestion_stores(records, batch, queued_batch, match_phone):
    with override_settings(IDENTITY_MATCH_PHONE=match_phone):
        assert load(records, batch=batch, queued_batch=queued_batch) == load(records, batch=batch, queued_batch=None)


def test_a_queued_record_is_stored_unresolved_and_resolving_it_links_it():
    (outcome,) = enqueue([record(cookie="A", email="a@x.com")])

    assert (outcome.status, outcome.profile_id) == (QUEUED, None)
    stored = RawRecord.objects.get()
    assert (stored.id, stored.outcome, stored.profile_id) == (outcome.raw_record_id, QUEUED, None)
    assert not Profile.objects.exists()
    assert queued_backlog() == (1, stored.id)
    assert database_summary()["queued_raw_records"] == 1

    result = queued_resolve()

    assert (result.records, result.profiles_created) == (1, 1)
    stored.refresh_from_db()
    assert (stored.outcome, stored.profile_id) == ("created", Profile.objects.get().id)
    assert queued_backlog() == (0, None)
    assert database_summary()["queued_raw_records"] == 0
    assert queued_resolve().records == 0


def test_rejects_and_repeated_keys_are_answered_when_queued():
    bad = record(cookie="null", email="")  # a placeholder only: nothing to link
    outcomes = records_ingest(
        records=[
            *keyed([record(cookie="A"), bad]),
            IncomingRecord(data=record(cookie="A"), source="api", source_key="k0000"),
        ],
        resolve=queue_only,
    ).outcomes

    assert [o.status for o in outcomes] == [QUEUED, "rejected", QUEUED]
    assert outcomes[2].duplicate and outcomes[2].raw_record_id == outcomes[0].raw_record_id
    assert RawRecord.objects.count() == 1


def test_a_person_erased_before_their_queued_record_is_resolved_is_not_brought_back():
    records_ingest(records=[IncomingRecord(data=record(cookie="A", email="a@x.com"), source="api")])
    person_erase(profile=Profile.objects.get(), dry_run=False, actor="test")
    enqueue([record(cookie="B", email="a@x.com"), record(cookie="C", email="c@x.com")])

    result = queued_drain()

    assert (result.records, result.suppressed, result.profiles_created) == (2, 1, 1)
    assert list(RawRecord.objects.values_list("data__cookie", "outcome")) == [("C", "created")]
    assert not Identifier.objects.filter(value="a@x.com").exists()


def test_erasing_a_person_deletes_their_queued_records_at_once():
    records_ingest(records=[IncomingRecord(data=record(cookie="A", email="a@x.com"), source="api")])
    enqueue([record(cookie="B", email="A@X.com"), record(cookie="C", email="c@x.com")])

    result = person_erase(profile=Profile.objects.get(), dry_run=False, actor="test")

    assert result.removed.raw_records == 2  # the linked record and the queued one naming them
    assert list(RawRecord.objects.values_list("data__cookie", "outcome")) == [("C", QUEUED)]


def test_a_record_blocked_before_it_is_resolved_stays_in_the_log_as_rejected():
    enqueue([record(cookie="A", email="info@shop.com")])
    BlockedIdentifier.objects.create(kind="cookie", value="A")
    BlockedIdentifier.objects.create(kind="email", value="info@shop.com")

    result = queued_drain()

    assert (result.records, result.rejected, result.profiles_created) == (1, 1, 0)
    assert list(RawRecord.objects.values_list("outcome", "profile_id")) == [("rejected", None)]
    assert queued_resolve().records == 0  # not taken up again


def test_a_rebuild_leaves_queued_records_to_the_worker():
    records_ingest(records=[IncomingRecord(data=record(cookie="A", email="a@x.com"), source="api")])
    enqueue([record(cookie="B", email="a@x.com")])

    result = profiles_rebuild()

    assert (result.raw_records, queued_backlog()[0]) == (1, 1)
    assert Profile.objects.get().cookie_count == 1
    queued_drain()
    assert sorted(RawRecord.objects.values_list("outcome", flat=True)) == ["created", "updated"]
    assert Profile.objects.get().cookie_count == 2


def test_the_command_resolves_the_backlog_and_reports_it():
    enqueue([record(cookie="A", email="a@x.com"), record(cookie="B", email="a@x.com"), record(cookie="C")])
    out = StringIO()

    call_command("resolve_queued", "--batch-size", "2", "--json", stdout=out)

    lines = out.getvalue().strip().splitlines()
    assert lines[0] == (
        "Resolved 3 queued records: 2 profiles created, 0 merges, 0 rejected by the current rules, "
        "0 deleted (an erased person's identifiers)."
    )
    assert json.loads(lines[-1]) == {"records": 3, "profiles_created": 2, "merges": 0, "rejected": 0, "suppressed": 0}
    assert Profile.objects.count() == 2


@pytest.mark.parametrize("option", [("--batch-size", "0"), ("--follow", "--interval", "0")])
def test_the_command_refuses_nonsense_options(option):
    with pytest.raises(CommandError):
        call_command("resolve_queued", *option)


def people_by_records() -> set[frozenset[str]]:
    """Which records ended together: the partition of the raw log into people, by record cookie."""
    people: dict[int, set[str]] = {}
    for cookie, profile_id in RawRecord.objects.values_list("data__cookie", "profile_id"):
        people.setdefault(profile_id, set()).add(cookie)
    return {frozenset(cookies) for cookies in people.values()}


def test_two_workers_and_synchronous_ingests_at_once_link_what_a_rebuild_links(postgres, transactional_db):
    """PostgreSQL: two workers resolving the queue while synchronous ingests arrive, all of them
    touching the same people, end with the partition a rebuild of the log gives."""
    rng = random.Random(5)
    queued = [record(cookie=f"q{i}", email=f"p{rng.randrange(40)}@x.com") for i in range(400)]
    direct = [record(cookie=f"s{i}", email=f"p{rng.randrange(40)}@x.com") for i in range(120)]
    enqueue(queued)
    errors = []

    def ingest_directly():
        for data in direct:
            run_with_retries(lambda data=data: records_ingest(records=[IncomingRecord(data=data, source="api")]))

    threads = [started_thread(lambda: queued_drain(batch_size=25), errors) for _ in range(2)]
    threads.append(started_thread(ingest_directly, errors))
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert queued_backlog() == (0, None)
    assert not RawRecord.objects.filter(profile=None).exists()
    linked = people_by_records()
    assert len(linked) == Profile.objects.count() == Identifier.objects.filter(kind="email").count() == 40
    profiles_rebuild()
    assert people_by_records() == linked


def test_the_worker_resolves_what_arrives_and_stops_on_sigterm(postgres, transactional_db):
    """PostgreSQL: ``resolve_queued --follow`` as its own process, as deployed beside the server."""
    env = {**os.environ, "DATABASE_URL": child_database_url(), "DJANGO_SECRET_KEY": "test", "DJANGO_DEBUG": "0"}
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "resolve_queued", "--follow", "--interval", "0.2"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        enqueue([record(cookie="A", email="a@x.com"), record(cookie="B", email="a@x.com")])
        deadline = time.monotonic() + 60
        while queued_backlog()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queued_backlog() == (0, None)
        assert Profile.objects.get().cookie_count == 2
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)

    assert worker.returncode == 0, err
    assert "Resolved 2 queued records: 1 profiles created" in out
