"""Ingest and reads mixed, at a fixed rate, against gunicorn on PostgreSQL, driven by locust (headless).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/analytics_bench .venv/bin/python bench/load_mixed.py \\
        [--seconds 60] [--rate 50] [--users N] [--workers 5]

Needs requirements-bench.txt (locust). Starts gunicorn (production settings, sync workers, rate
limits lifted) on the database with bench/api_load.py's helpers, makes an ingest and a read key, and
runs locust headless for ``--seconds``: ``--users`` simulated clients (default: one per request/s)
each paced by ``constant_throughput`` so that together they send ``--rate`` requests/s, in this mix
(task weights out of 20):

- 10  POST /api/ingest: one new person, a cookie unique to the request (``load-<run>-...``)
- 1   POST /api/ingest/batch: 10 new people, each with its own unique cookie
- 5   GET /api/user?email=: an email already in the database (2,000 sampled at the start)
- 3   GET /api/user?cookie=: a cookie this client had acknowledged earlier (read your own write)
- 1   GET /api/cohort/user: three filters, 100 a page

An answer is an error unless it is the one expected (200/201 for ingest, 200 for reads, the read of
a cookie naming that cookie). Afterwards the raw records stored with this run's cookies are counted
and compared with the records the API acknowledged: nothing may be lost, nothing stored twice.
Prints Markdown tables (by route: requests, rate, answers by status, p50/p95/p99/max ms as the
clients measured them and as gunicorn's access log gives the time in the server; records) and exits
non-zero when a request failed, a record was lost or duplicated, or the rate fell short
of 95 % of the one asked for.

This file is also the locustfile: the locust process imports it (``__name__ != "__main__"``) and
gets only the user class below, configured through ``LOAD_*`` environment variables.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BATCH_SIZE = 10
CREATED_AT = "03/10/2025 15:30"
COUNTRIES = ("India", "USA", "Brazil", "Germany", "Japan")
INTERESTS = ("Tech", "Travel", "Sports", "Music", "Gaming", "Food")
ROUTES = (
    "POST /api/ingest",
    "POST /api/ingest/batch",
    "GET /api/user?email=",
    "GET /api/user?cookie=",
    "GET /api/cohort/user",
)


def person(cookie: str, rng: random.Random) -> dict:
    """A record in the seed's payload shape, for a new person whose cookie and email derive from ``cookie``."""
    return {
        "cookie": cookie,
        "email": f"{cookie}@example.com",
        "created_at": CREATED_AT,
        "location": {"country": rng.choice(COUNTRIES), "state": "", "city": ""},
        "demographics": {"age": rng.randint(18, 80), "gender": rng.choice(("Female", "Male")), "income": "50000"},
        "interests": rng.sample(INTERESTS, 2),
    }


if __name__ != "__main__":  # imported by locust: the simulated client (locust monkey-patches with gevent)
    import itertools

    import gevent
    from locust import FastHttpUser, constant_throughput, events, task

    RUN = os.environ.get("LOAD_RUN", "smoke")
    INGEST_KEY = os.environ.get("LOAD_INGEST_KEY", "")
    READ_KEY = os.environ.get("LOAD_READ_KEY", "")
    EMAILS = Path(os.environ["LOAD_EMAILS"]).read_text().split() if os.environ.get("LOAD_EMAILS") else []
    COHORT_QUERY = os.environ.get("LOAD_COHORT_QUERY", "country=India&age_min=25&age_max=45&limit=100")
    RESULTS = os.environ.get("LOAD_RESULTS", "")
    USER_RATE = float(os.environ.get("LOAD_USER_RATE", "1"))

    user_numbers = itertools.count(1)
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    failures: Counter = Counter()
    acknowledged: list[str] = []  # cookies the API answered 200/201 for
    rejected_in_batch: list[str] = []

    @events.request.add_listener
    def on_request(name, response_time, response=None, exception=None, **_):
        status = getattr(response, "status_code", None) or 0
        latencies[name].append(response_time)
        statuses[name][status] += 1
        if exception is not None:
            failures[(name, status, str(exception)[:160])] += 1

    @events.test_stop.add_listener
    def on_stop(**_):
        if not RESULTS:
            return
        Path(RESULTS).write_text(
            json.dumps(
                {
                    "latencies": latencies,
                    "statuses": {name: dict(counts) for name, counts in statuses.items()},
                    "failures": [[*key, count] for key, count in failures.most_common()],
                    "acknowledged": acknowledged,
                    "rejected_in_batch": rejected_in_batch,
                }
            )
        )

    class MixedClient(FastHttpUser):
        wait_time = constant_throughput(USER_RATE)

        def on_start(self):
            self.number = next(user_numbers)
            self.sent = 0
            self.mine: list[str] = []  # cookies acknowledged to this client
            self.rng = random.Random(f"{RUN}-{self.number}")
            self.ingest_headers = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"}
            self.read_headers = {"Authorization": f"Bearer {READ_KEY}"}
            # locust starts a second's worth of clients at once and constant_throughput keeps each one's
            # phase: without a random start within the first period they would all send at the same instant.
            gevent.sleep(self.rng.uniform(0, 1 / USER_RATE))

        def new_cookie(self) -> str:
            self.sent += 1
            return f"load-{RUN}-{self.number}-{self.sent}"

        @task(10)
        def ingest(self):
            cookie = self.new_cookie()
            body = json.dumps({"data": person(cookie, self.rng)})
            with self.client.post(
                "/api/ingest", data=body, headers=self.ingest_headers, name=ROUTES[0], catch_response=True
            ) as response:
                if response.status_code not in (200, 201):
                    response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")
                    return
                acknowledged.append(cookie)
                self.mine.append(cookie)

        @task(1)
        def ingest_batch(self):
            cookies = [self.new_cookie() for _ in range(BATCH_SIZE)]
            body = json.dumps({"batch": [{"data": person(cookie, self.rng)} for cookie in cookies]})
            with self.client.post(
                "/api/ingest/batch", data=body, headers=self.ingest_headers, name=ROUTES[1], catch_response=True
            ) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")
                    return
                rejected = []
                for cookie, result in zip(cookies, response.json(), strict=True):
                    if result["status"] == "rejected":
                        rejected.append(cookie)
                    else:
                        acknowledged.append(cookie)
                        self.mine.append(cookie)
                if rejected:
                    rejected_in_batch.extend(rejected)
                    response.failure(f"{len(rejected)} records of the batch rejected")

        def read(self, path: str, name: str, expect_cookie: str | None = None):
            with self.client.get(path, headers=self.read_headers, name=name, catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")
                elif expect_cookie and expect_cookie not in response.json()["data"].get("cookies", []):
                    response.failure(f"the profile read for {expect_cookie} does not hold it")

        @task(5)
        def user_by_email(self):
            if not EMAILS:
                return self.user_by_cookie()
            self.read(f"/api/user?email={self.rng.choice(EMAILS)}", ROUTES[2])

        @task(3)
        def user_by_cookie(self):
            if not self.mine:
                return self.ingest()
            cookie = self.rng.choice(self.mine)
            self.read(f"/api/user?cookie={cookie}", ROUTES[3], expect_cookie=cookie)

        @task(1)
        def cohort(self):
            self.read(f"/api/cohort/user?{COHORT_QUERY}", ROUTES[4])


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of the values (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def access_log_times(log: str) -> dict[str, list[float]]:
    """Milliseconds in the server by route, from access log lines ``METHOD PATH ?QUERY STATUS MICROSECONDS``."""
    times: dict[str, list[float]] = defaultdict(list)
    for line in log.splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[1] == "/api/health":
            continue
        method, path, query, _status, micros = parts
        name = f"{method} {path}"
        if path == "/api/user":
            name += "?cookie=" if query.startswith("?cookie=") else "?email="
        times[name].append(int(micros) / 1000)
        times["**all**"].append(int(micros) / 1000)
    return times


def main() -> int:
    import argparse
    import importlib.util
    import subprocess
    import tempfile
    import urllib.parse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second, all clients together")
    parser.add_argument("--users", type=int, help="simulated clients (default: one per request/s, at least 10)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    args = parser.parse_args()
    if importlib.util.find_spec("locust") is None:
        raise SystemExit("locust is not installed: .venv/bin/pip install -r requirements-bench.txt")
    users = args.users or max(10, round(args.rate))
    command = "DATABASE_URL=... .venv/bin/python bench/load_mixed.py " + " ".join(sys.argv[1:])

    sys.path.insert(0, str(PROJECT))
    from django.db import connection
    from django.db.models import Max

    from bench.api_load import free_port, start_gunicorn  # sets Django up on DATABASE_URL
    from users_app.access import api_key_create
    from users_app.ingestion import IncomingRecord, records_ingest, run_with_retries
    from users_app.models import Identifier, Interest, RawRecord

    if connection.vendor != "postgresql":
        raise SystemExit("Run it on PostgreSQL: DATABASE_URL=postgres://...")
    run = time.strftime("%Y%m%d%H%M%S")
    ingest_key = api_key_create(name=f"load mixed ingest {run}", scope="ingest")[1]
    read_key = api_key_create(name=f"load mixed read {run}", scope="read")[1]
    if Identifier.objects.filter(kind="email").count() < 100:  # an empty database: give the reads someone to find
        rng = random.Random(run)
        seed = [IncomingRecord(data=person(f"load-seed-{run}-{n}", rng), source="api") for n in range(1000)]
        run_with_retries(lambda: records_ingest(records=seed))
    emails = list(Identifier.objects.filter(kind="email").order_by("?").values_list("value", flat=True)[:2000])
    interest = Interest.objects.order_by("key").values_list("key", flat=True).first() or "tech"
    cohort_query = urllib.parse.urlencode(
        {"country": "India", "age_min": 25, "age_max": 45, "interests": interest, "limit": 100}
    )
    raw_before = RawRecord.objects.aggregate(last=Max("id"))["last"] or 0
    database = f"{connection.settings_dict['NAME']} ({RawRecord.objects.count():,} raw records before the run)"
    connection.close()

    with tempfile.TemporaryDirectory(prefix="load-mixed-") as scratch:
        scratch = Path(scratch)
        (scratch / "emails.txt").write_text("\n".join(urllib.parse.quote(e, safe="@") for e in emails))
        port = free_port()
        # gunicorn's access log gives each request's time in the server (%(D)s, microseconds), beside the
        # time the clients measured.
        os.environ["GUNICORN_CMD_ARGS"] = (
            f"--access-logfile {scratch / 'access.log'} --access-logformat '%(m)s %(U)s ?%(q)s %(s)s %(D)s'"
        )
        server = start_gunicorn(args.workers, port, scratch / "gunicorn.log")
        locust_env = {
            **os.environ,
            "LOAD_RUN": run,
            "LOAD_INGEST_KEY": ingest_key,
            "LOAD_READ_KEY": read_key,
            "LOAD_EMAILS": str(scratch / "emails.txt"),
            "LOAD_COHORT_QUERY": cohort_query,
            "LOAD_RESULTS": str(scratch / "results.json"),
            "LOAD_USER_RATE": str(args.rate / users),
        }
        locust = [
            sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve()), "--headless", "--only-summary",
            "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{args.seconds}s",
            "--stop-timeout", "15", "--host", f"http://127.0.0.1:{port}", "--loglevel", "WARNING",
        ]  # fmt: skip
        try:
            with (scratch / "locust.log").open("w") as log:
                subprocess.run(locust, cwd=PROJECT, env=locust_env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            server.terminate()
            server.wait(30)
        if not (scratch / "results.json").exists():
            print((scratch / "locust.log").read_text()[-3000:])
            raise SystemExit("locust wrote no results")
        results = json.loads((scratch / "results.json").read_text())
        server_times = access_log_times((scratch / "access.log").read_text(errors="replace"))
        gunicorn_errors = [
            line
            for line in (scratch / "gunicorn.log").read_text(errors="replace").splitlines()
            if "Traceback" in line or "[ERROR]" in line or "WORKER TIMEOUT" in line
        ]

    prefix = f"load-{run}-"
    stored = Counter(
        RawRecord.objects.filter(id__gt=raw_before, data__cookie__startswith=prefix).values_list(
            "data__cookie", flat=True
        )
    )
    acknowledged = Counter(results["acknowledged"])
    lost = sorted(set(acknowledged) - set(stored))
    twice = sorted(cookie for cookie, count in stored.items() if count > 1)
    unacknowledged_stored = sorted(set(stored) - set(acknowledged))

    elapsed = args.seconds  # locust starts no request after its run time (in-flight ones finish)
    all_latencies = [t for values in results["latencies"].values() for t in values]
    total_requests = len(all_latencies)
    achieved = total_requests / elapsed

    def row(name: str, latencies: list[float], statuses: dict[str, int], errors: int) -> str:
        answers = ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items())) or "-"
        return (
            f"| {name} | {len(latencies):,} | {len(latencies) / elapsed:.1f} | {answers} | {errors:,} "
            f"| {percentile(latencies, 0.50):.0f} | {percentile(latencies, 0.95):.0f} "
            f"| {percentile(latencies, 0.99):.0f} | {max(latencies, default=0):.0f} |"
        )

    errors_by_route = Counter()
    for name, _status, _message, count in results["failures"]:
        errors_by_route[name] += count
    total_statuses: Counter = Counter()
    for counts in results["statuses"].values():
        total_statuses.update(counts)
    total_errors = sum(errors_by_route.values())

    print(f"Command: `{command}`\n")
    print(
        f"gunicorn {args.workers} sync workers on PostgreSQL {database}; locust {users} clients at a fixed "
        f"{args.rate:g} requests/s for {args.seconds} s; {os.cpu_count()} CPUs shared by locust, gunicorn "
        "and PostgreSQL.\n"
    )
    print("| route | requests | per s | answers by status | errors | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ROUTES:
        if name in results["latencies"]:
            print(row(name, results["latencies"][name], results["statuses"][name], errors_by_route[name]))
    print(row("**all**", all_latencies, dict(total_statuses), total_errors))
    print(
        "\nTime in the server (gunicorn's access log: from reading the request to the response written), ms; "
        "the difference from the clients' figures is queueing for a worker, the network stack and the load "
        "generator's own latency:\n"
    )
    print("| route | requests | p50 ms | p95 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    for name in [*ROUTES, "**all**"]:
        times = server_times.get(name, [])
        if times:
            print(
                f"| {name} | {len(times):,} | {percentile(times, 0.50):.0f} | {percentile(times, 0.95):.0f} "
                f"| {percentile(times, 0.99):.0f} | {max(times):.0f} |"
            )
    if results["failures"]:
        print("\nErrors: " + "; ".join(f"{count}x {name} {message}" for name, _, message, count in results["failures"]))
    if gunicorn_errors:
        print(f"\ngunicorn logged {len(gunicorn_errors)} error lines, first: {gunicorn_errors[0][:200]}")

    print("\n| records | count |\n|---|---|")
    print(f"| acknowledged by the API (200/201; batch items not rejected) | {sum(acknowledged.values()):,} |")
    print(f"| raw records stored with this run's cookies | {sum(stored.values()):,} |")
    print(f"| acknowledged but not stored (lost) | {len(lost):,} |")
    print(f"| stored more than once | {len(twice):,} |")
    print(f"| stored but not acknowledged (a request that failed or was cut off) | {len(unacknowledged_stored):,} |")

    criteria = [
        ("zero errors", total_errors == 0 and total_statuses.get("0", 0) == 0, f"{total_errors} errors"),
        ("nothing lost: raw records = acknowledged records", not lost and not twice and not unacknowledged_stored,
         f"{sum(stored.values()):,} stored, {sum(acknowledged.values()):,} acknowledged"),
        (f"fixed rate held (>= 95 % of {args.rate:g}/s)", achieved >= 0.95 * args.rate, f"{achieved:.1f} requests/s"),
    ]  # fmt: skip
    print("\n| criterion | result | figure |\n|---|---|---|")
    for name, passed, figure in criteria:
        print(f"| {name} | {'pass' if passed else '**FAIL**'} | {figure} |")
    if lost:
        print(f"\nLost (first 10): {lost[:10]}")
    return 0 if all(passed for _, passed, _ in criteria) else 1


if __name__ == "__main__":
    raise SystemExit(main())
