"""Concurrent ingests against a real gunicorn (4 worker processes) on PostgreSQL end in one profile per person.

The server runs as a subprocess on the pytest test database (``transactional_db``, so it sees what the test
commits and the test sees what it commits); requests go over loopback HTTP from a thread pool. Every check is
made twice: on the answers, and on the database state read back from the test process.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial

import pytest
from django.db import connection
from django.db.models import Count, F, Q

from tests.live_server import child_database_url, gunicorn
from users_app.access import api_key_create
from users_app.models import Identifier, Profile, RawRecord

WORKERS = 4
CLIENT_THREADS = 50
REQUEST_TIMEOUT = 30  # seconds, for one request
BATCH_TIMEOUT = 180  # seconds, for all the requests of one wave
CREATED_AT = "03/10/2025 15:30"


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange: the status (0 when no HTTP answer came) and the JSON body, or what went wrong."""

    status: int
    body: dict | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


def warm_up(base_url: str) -> None:
    """Concurrent health checks so every worker has imported the URLconf and views before a test's requests:
    otherwise the first request on each cold worker is slow and the test's requests barely overlap."""

    def health(_: int) -> int:
        with urllib.request.urlopen(f"{base_url}/api/health", timeout=REQUEST_TIMEOUT) as response:
            return response.status

    with ThreadPoolExecutor(max_workers=4 * WORKERS) as pool:
        assert set(pool.map(health, range(8 * WORKERS))) == {200}


@pytest.fixture(scope="module")
def gunicorn_url(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """A real gunicorn with 4 sync workers on the test database; yields its base URL, stops it afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI's second pass does)")
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with gunicorn(
        log_path=log_path,
        database_url=child_database_url(),
        workers=WORKERS,
        API_RATE_INGEST="1000000/min",
        API_RATE_READ="1000000/min",
    ) as base_url:
        warm_up(base_url)
        yield base_url


@pytest.fixture
def live(postgres, transactional_db, gunicorn_url) -> LiveApi:
    """The live server, with an ingest key committed where the server sees it."""
    _, key = api_key_create(name="live concurrency", scope="ingest")
    return LiveApi(gunicorn_url, key)


class LiveApi:
    def __init__(self, base_url: str, key: str):
        self.base_url = base_url
        self.key = key

    def ingest(self, data: dict, message_id: str | None = None, idempotency_key: str | None = None) -> Answer:
        payload = {"data": data} if message_id is None else {"data": data, "message_id": message_id}
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(
            f"{self.base_url}/api/ingest", data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                return Answer(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:500]
            return Answer(exc.code, None, error=body)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Answer(0, None, error=repr(exc))


def run_all(calls: list[Callable[[], Answer]], threads: int = CLIENT_THREADS) -> list[Answer]:
    """Run the calls on a thread pool, in the order given, and return their answers in that order."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(call) for call in calls]
        _, pending = wait(futures, timeout=BATCH_TIMEOUT)
        for future in pending:
            future.cancel()
        assert not pending, f"{len(pending)} of {len(futures)} requests still running after {BATCH_TIMEOUT} s"
        return [future.result() for future in futures]


def run_together(calls: list[Callable[[], Answer]]) -> list[Answer]:
    """Start the calls at the same instant (one thread each, released by a barrier)."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], Answer]) -> Callable[[], Answer]:
        def go() -> Answer:
            barrier.wait(timeout=REQUEST_TIMEOUT)
            return call()

        return go

    return run_all([released(call) for call in calls], threads=len(calls))


def describe_failures(answers: list[Answer]) -> str:
    bad = [a for a in answers if not a.ok]
    kinds = Counter((a.status, a.error[:200]) for a in bad)
    return f"{len(bad)} of {len(answers)} requests failed: " + "; ".join(
        f"{count}x HTTP {status} {error!r}" for (status, error), count in kinds.most_common(5)
    )


def assert_identity_invariants() -> None:
    """What must hold whatever the interleaving: unique identifiers, true cookie counts, every record placed."""
    assert Identifier.objects.count() == Identifier.objects.values("kind", "value").distinct().count()
    wrong_counts = list(
        Profile.objects.annotate(cookies=Count("identifiers", filter=Q(identifiers__kind="cookie")))
        .exclude(cookie_count=F("cookies"))
        .values_list("id", "cookie_count", "cookies")
    )
    assert wrong_counts == [], "profiles whose cookie_count is not their number of cookies (id, count, cookies)"
    assert not RawRecord.objects.filter(profile__isnull=True).exists(), "raw records not linked to a profile"
    assert not Profile.objects.filter(identifiers__isnull=True).exists(), "profiles without any identifier"


def person(n: int | str, tag: str) -> dict:
    return {"cookie": f"{tag}-cookie-{n}", "email": f"{tag}-{n}@example.com", "created_at": CREATED_AT}


def test_concurrent_ingests_for_one_email_give_one_profile_with_every_cookie(live):
    """200 ingests for one email with 200 cookies, interleaved with 200 strangers, over 50 concurrent clients:
    every request answers 200/201, and the database holds 201 profiles, one of them with all 200 cookies."""
    tag = uuid.uuid4().hex[:8]
    email = f"shared-{tag}@example.com"
    shared = [{"cookie": f"{tag}-shared-{n}", "email": email, "created_at": CREATED_AT} for n in range(200)]
    strangers = [person(n, tag) for n in range(200)]
    calls = []
    for mine, theirs in zip(shared, strangers, strict=True):  # interleaved: shared, stranger, shared, ...
        calls.append(lambda data=mine: live.ingest(data))
        calls.append(lambda data=theirs: live.ingest(data))

    started = time.monotonic()
    answers = run_all(calls)
    elapsed = time.monotonic() - started

    assert all(a.ok for a in answers), describe_failures(answers)
    shared_answers, stranger_answers = answers[0::2], answers[1::2]
    assert Counter(a.status for a in stranger_answers) == {201: 200}, "every stranger is a new person"
    assert Counter(a.body["status"] for a in shared_answers) == {"created": 1, "updated": 199}
    assert Counter(a.status for a in shared_answers) == {201: 1, 200: 199}

    owner = Identifier.objects.get(kind="email", value=email).profile
    assert {a.body["profile_id"] for a in shared_answers} == {owner.id}
    assert owner.cookie_count == 200
    assert set(owner.identifiers.filter(kind="cookie").values_list("value", flat=True)) == {d["cookie"] for d in shared}
    assert list(owner.identifiers.filter(kind="email").values_list("value", flat=True)) == [email]
    assert Profile.objects.count() == 201
    assert list(Profile.objects.multi_device()) == [owner]
    assert RawRecord.objects.count() == 400
    assert RawRecord.objects.filter(profile=owner).count() == 200
    assert Identifier.objects.count() == 200 + 1 + 200 * 2
    for answer in answers:  # each answer names the raw record it stored, linked where the answer says
        assert RawRecord.objects.get(id=answer.body["raw_record_id"]).profile_id == answer.body["profile_id"]
    assert_identity_invariants()
    print(f"\n400 concurrent ingests over {CLIENT_THREADS} clients, {WORKERS} workers: {elapsed:.1f} s")


def test_every_interleaving_of_a_bridging_triple_gives_one_profile(live):
    """(cookie A, email x), (cookie B, email x) and (cookie A, email y), sent at the same instant, 100 times with
    fresh values: every round answers 2xx three times and ends as one profile holding cookies {A, B} and
    emails {x, y}, with all three raw records on it."""
    tag = uuid.uuid4().hex[:8]
    rounds = 100
    outcomes: Counter = Counter()
    started = time.monotonic()
    for n in range(rounds):
        cookie_a, cookie_b = f"{tag}-A-{n}", f"{tag}-B-{n}"
        x, y = f"{tag}-x-{n}@example.com", f"{tag}-y-{n}@example.com"
        triple = [
            {"cookie": cookie_a, "email": x, "created_at": CREATED_AT},
            {"cookie": cookie_b, "email": x, "created_at": CREATED_AT},
            {"cookie": cookie_a, "email": y, "created_at": CREATED_AT},
        ]
        answers = run_together([lambda data=data: live.ingest(data) for data in triple])
        assert all(a.ok for a in answers), f"round {n}: {describe_failures(answers)}"
        outcomes[tuple(sorted(answer.body["status"] for answer in answers))] += 1

        owners = dict(
            Identifier.objects.filter(
                Q(kind="cookie", value__in=[cookie_a, cookie_b]) | Q(kind="email", value__in=[x, y])
            )
            .values_list("value", "profile_id")
            .order_by()
        )
        assert owners.keys() == {cookie_a, cookie_b, x, y}, f"round {n}: identifiers stored {sorted(owners)}"
        assert len(set(owners.values())) == 1, f"round {n}: split over profiles {owners}"
        (profile_id,) = set(owners.values())
        assert Profile.objects.get(id=profile_id).cookie_count == 2, f"round {n}"
        raw_ids = [answer.body["raw_record_id"] for answer in answers]
        assert set(RawRecord.objects.filter(id__in=raw_ids).values_list("profile_id", flat=True)) == {profile_id}

    elapsed = time.monotonic() - started
    assert Profile.objects.count() == rounds
    assert RawRecord.objects.count() == 3 * rounds
    assert Identifier.objects.count() == 4 * rounds
    assert Profile.objects.multi_device().count() == rounds
    assert_identity_invariants()
    print(f"\n{rounds} bridging triples in {elapsed:.1f} s; outcomes {dict(outcomes)}")


@pytest.mark.parametrize("how", ["message_id", "Idempotency-Key"])
def test_one_message_id_sent_five_times_concurrently_is_stored_once(live, how):
    """The same message id (in the body, or as the Idempotency-Key header) sent five times at the same instant:
    one raw record; all five answers are 2xx with its raw_record_id and profile_id, four of them duplicates.
    Repeated over 20 fresh ids so the race is really run."""
    tag = uuid.uuid4().hex[:8]
    for n in range(20):
        message_id = f"{tag}-message-{n}"
        data = person(n, tag)
        by = {"message_id": message_id} if how == "message_id" else {"idempotency_key": message_id}
        answers = run_together([partial(live.ingest, data, **by)] * 5)

        assert all(a.ok for a in answers), f"round {n}: {describe_failures(answers)}"
        raw = RawRecord.objects.get(source_key=f"api:{message_id}")
        assert {(a.body["raw_record_id"], a.body["profile_id"]) for a in answers} == {(raw.id, raw.profile_id)}
        assert sorted(a.body["duplicate"] for a in answers) == [False, True, True, True, True]
        assert {a.body["message_id"] for a in answers} == {message_id}
        assert Identifier.objects.filter(profile_id=raw.profile_id).count() == 2

    assert RawRecord.objects.count() == 20
    assert Profile.objects.count() == 20
    assert_identity_invariants()
