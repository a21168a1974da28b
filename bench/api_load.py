"""API throughput and latency under gunicorn, driven by wrk (Debian's package: apt-get install wrk).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/analytics_bench .venv/bin/python bench/api_load.py \\
        [--seconds 20] [--workers 5] [--only ingest,read]

Starts gunicorn (production settings, sync workers) on the database, makes an ingest and a read key,
then runs each scenario for ``--seconds`` at a fixed number of connections and reports wrk's
requests/s, records/s, p50/p99 latency and the answers that were not 2xx. The ingest scenarios add
new people to the database (cookies and emails ``bench-<run>-...``); the rate limits are lifted for
the run.

- ingest, single: POST /api/ingest, one new person per request, 8 connections.
- ingest, batch: POST /api/ingest/batch, 1,000 new people per request, 2 connections.
- the same two with ``Prefer: respond-async`` (answered once stored; README, Asynchronous
  ingestion), then ``manage.py resolve_queued`` on what they queued: its records/s.
- GET /api/user?email=...: 2,000 existing emails in turn, 8 connections, then 1 connection (the
  latency of one request when the 2 CPUs are not shared by 8 at once).
- GET /api/cohort/user with three filters: 8 connections.
- GET /api/health, 8 connections (``--only health``): the floor of this server stack, Django's
  and DRF's request cycle with the connection check and one statement, no key, no record.

``--workers`` defaults to one more than the CPUs: on 2 CPUs shared with wrk and PostgreSQL, 2 or 3
sync workers served more single records than 5 or 8, 3 more synchronous ones than 2 in one round
of two (BENCHMARKS.md, sixth round).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_site.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench")

import django  # noqa: E402

django.setup()

from users_app.access import api_key_create  # noqa: E402
from users_app.models import Identifier, Interest, RawRecord  # noqa: E402

LUA = PROJECT / "bench" / "wrk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(workers: int, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain http on loopback; production redirects to https
        "API_RATE_INGEST": "100000000/min",
        "API_RATE_READ": "100000000/min",
    }
    command = [
        sys.executable, "-m", "gunicorn", "analytics_site.wsgi:application", "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}", "--error-logfile", str(log),
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=PROJECT, env=env, start_new_session=True)
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"gunicorn did not answer; see {log}")


def milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(url: str, key: str, connections: int, seconds: int, script: Path, *args: str, prefer: str = "") -> dict:
    command = [
        "wrk", "--latency", "--timeout", "10s", "-t", str(min(connections, 2)), "-c", str(connections),
        "-d", f"{seconds}s", "-H", f"Authorization: Bearer {key}", *(["-H", f"Prefer: {prefer}"] if prefer else []),
        "-s", str(script), url, "--", *args,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if not latency:
        raise SystemExit(f"wrk measured no answers for {script.name} {args}:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "requests/s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": milliseconds(latency["50"]),
        "p99": milliseconds(latency["99"]),
        "non-2xx": int(errors.group(1)) if errors else 0,
        "socket errors": socket_errors.group(1) if socket_errors else "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1)
    parser.add_argument(
        "--only",
        default="ingest,read,health",
        help="scenario groups to run: ingest, read, health (reads alone: no fresh writes)",
    )
    args = parser.parse_args()

    run = str(int(time.time()))
    ingest_key = api_key_create(name=f"bench ingest {run}", scope="ingest")[1]
    read_key = api_key_create(name=f"bench read {run}", scope="read")[1]
    emails = Identifier.objects.filter(kind="email").order_by("?").values_list("value", flat=True)[:2000]
    interest = Interest.objects.order_by("key").values_list("key", flat=True).first()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        users = scratch / "users.txt"
        users.write_text("".join(f"/api/user?{urllib.parse.urlencode({'email': e})}\n" for e in emails))
        cohort = scratch / "cohort.txt"
        cohort.write_text(f"/api/cohort/user?country=India&age_min=25&age_max=45&interests={interest}&limit=100\n")
        health = scratch / "health.txt"
        health.write_text("/api/health\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        raw_before = RawRecord.objects.count()
        server = start_gunicorn(args.workers, port, scratch / "gunicorn.log")
        try:
            plan = [
                ("ingest", "ingest, single (8 connections)", 1,
                 lambda: wrk(url, ingest_key, 8, args.seconds, LUA / "ingest.lua", run, "1")),
                ("ingest", "ingest, batch of 1,000 (2 connections)", 1000,
                 lambda: wrk(url, ingest_key, 2, args.seconds, LUA / "ingest.lua", run, "1000")),
                ("ingest", "ingest, single, respond-async (8 connections)", 1,
                 lambda: wrk(url, ingest_key, 8, args.seconds, LUA / "ingest.lua", f"q{run}", "1",
                             prefer="respond-async")),
                ("ingest", "ingest, batch of 1,000, respond-async (2 connections)", 1000,
                 lambda: wrk(url, ingest_key, 2, args.seconds, LUA / "ingest.lua", f"q{run}", "1000",
                             prefer="respond-async")),
                ("read", "GET /api/user?email= (8 connections)", 1,
                 lambda: wrk(url, read_key, 8, args.seconds, LUA / "get_paths.lua", str(users))),
                ("read", "GET /api/user?email= (1 connection: latency without queueing)", 1,
                 lambda: wrk(url, read_key, 1, args.seconds, LUA / "get_paths.lua", str(users))),
                ("read", "GET /api/cohort/user, 3 filters (8 connections)", 1,
                 lambda: wrk(url, read_key, 8, args.seconds, LUA / "get_paths.lua", str(cohort))),
                ("health", "GET /api/health, the stack's floor (8 connections)", 1,
                 lambda: wrk(url, read_key, 8, args.seconds, LUA / "get_paths.lua", str(health))),
            ]  # fmt: skip
            scenarios = [(name, per, measure()) for group, name, per, measure in plan if group in args.only.split(",")]
        finally:
            server.terminate()
            server.wait(30)
    stored = RawRecord.objects.count() - raw_before
    drained = resolve_queued() if "ingest" in args.only.split(",") else None
    print(f"gunicorn {args.workers} sync workers, {args.seconds} s per scenario, {os.cpu_count()} CPUs shared with wrk")
    print("| scenario | requests/s | records/s | p50 ms | p99 ms | non-2xx | socket errors |")
    print("|---|---|---|---|---|---|---|")
    for name, per_request, result in scenarios:
        records = result["requests/s"] * per_request
        print(
            f"| {name} | {result['requests/s']:,.0f} | {records:,.0f} | {result['p50']:.1f} | {result['p99']:.1f} "
            f"| {result['non-2xx']} | {result['socket errors']} |"
        )
    sent = sum(result["requests"] * per_request for name, per_request, result in scenarios if "ingest" in name)
    print(f"\nRaw records stored during the run: {stored:,} (records in the ingest requests wrk counted: {sent:,}).")
    if drained:
        records, seconds = drained
        print(
            f"resolve_queued afterwards: {records:,} records in {seconds:.1f} s = {records / seconds:,.0f} records/s."
        )


def resolve_queued() -> tuple[int, float]:
    """What the respond-async scenarios queued, resolved by the command: (records, seconds)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "manage.py", "resolve_queued", "--json"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["records"], time.perf_counter() - started


if __name__ == "__main__":
    main()
