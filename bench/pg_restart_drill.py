"""Restart drill: PostgreSQL stopped for 10 s in the middle of an ingest load, on a private cluster.

    .venv/bin/python bench/pg_restart_drill.py [--before 15] [--down 10] [--after 30] [--rate 40] [--clients 8]

Makes its own PostgreSQL cluster (``initdb`` in a temporary folder, PostgreSQL 15's binaries from
``PG_BIN``, default /usr/lib/postgresql/15/bin, run as the ``postgres`` user when started as root)
on a free port, migrates a database there, makes an ingest key and starts gunicorn on it with
bench/api_load.py's helpers (production settings, sync workers, rate limits lifted). Then
``--clients`` threads post new people to /api/ingest at ``--rate`` requests/s in all, each request
with a cookie of its own, and keep every answer. After ``--before`` s the database is stopped
(``pg_ctl stop -m fast``), left down ``--down`` s and started again; the load goes on ``--after`` s.

Criteria (the script exits non-zero when one fails):

- while the database is down (requests sent after it stopped and answered before it was started
  again) every answer is 503, and no answer at any time is a 500;
- every acknowledged record (200/201) is stored: its raw record exists and carries its cookie;
- the service recovers by itself: the first successful ingest comes within 30 s of the
  database's return (``pg_ctl start`` done) and no request sent after it fails.

Prints Markdown tables of the figures. Everything it started is stopped and the cluster deleted at
the end, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
RECOVERY_LIMIT = 30.0  # seconds from the database's return to the first successful ingest
REQUEST_TIMEOUT = 15.0
CREATED_AT = "03/10/2025 15:30"


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Cluster:
    """A throwaway PostgreSQL cluster in ``folder``, listening on 127.0.0.1:``port`` only."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.data, self.log = folder / "data", folder / "postgres.log"

    def pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(as_postgres([str(PG_BIN / tool), *args]), capture_output=True, text=True, cwd=self.folder)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.pg(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"
        )
        self.start()
        self.pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "analytics")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=60"
        self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return self.pg("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/analytics"


@dataclass(frozen=True)
class Answer:
    cookie: str
    sent: float  # time.monotonic()
    answered: float
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    raw_record_id: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


def post_ingest(base_url: str, key: str, cookie: str) -> Answer:
    body = {"data": {"cookie": cookie, "email": f"{cookie}@example.com", "created_at": CREATED_AT,
                     "location": {"country": "India"}, "interests": ["Tech"]}}  # fmt: skip
    request = urllib.request.Request(
        f"{base_url}/api/ingest",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    sent = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            answer = json.loads(response.read())
            return Answer(cookie, sent, time.monotonic(), response.status, answer.get("raw_record_id"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:200]
        return Answer(cookie, sent, time.monotonic(), error.code, detail=detail)
    except (OSError, ValueError) as error:
        return Answer(cookie, sent, time.monotonic(), 0, detail=repr(error)[:200])


def client(number: int, clients: int, rate: float, base_url: str, key: str, run: str, stop: threading.Event,
           answers: list[Answer]) -> None:  # fmt: skip
    """Post new people at rate/clients requests/s until ``stop``; late requests are not made up in a burst."""
    interval = clients / rate
    due = time.monotonic() + interval * number / clients
    sent = 0
    while not stop.is_set():
        pause = due - time.monotonic()
        if pause > 0 and stop.wait(pause):
            return
        sent += 1
        answers.append(post_ingest(base_url, key, f"drill-{run}-{number}-{sent}"))
        due = max(due + interval, time.monotonic())


def statuses(answers: list[Answer]) -> str:
    counts = Counter(a.status for a in answers)
    return ", ".join(f"{'no answer' if s == 0 else s}: {n:,}" for s, n in sorted(counts.items())) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=float, default=15, help="seconds of load before the database stops")
    parser.add_argument("--down", type=float, default=10, help="seconds the database stays down")
    parser.add_argument("--after", type=float, default=30, help="seconds of load after it is started again")
    parser.add_argument("--rate", type=float, default=40, help="ingest requests per second, all clients together")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    args = parser.parse_args()
    command = ".venv/bin/python bench/pg_restart_drill.py " + " ".join(sys.argv[1:])

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))  # so that the clean-up below runs
    folder = Path(tempfile.mkdtemp(prefix="pg-drill-"))
    server = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    cluster = None
    try:
        # Never the database of the environment: Django is pointed at the private cluster once it exists.
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:9/not-yet"
        sys.path.insert(0, str(PROJECT))
        import environ
        from django.core.management import call_command
        from django.db import connection

        from bench.api_load import free_port, start_gunicorn  # sets Django up
        from users_app.access import api_key_create
        from users_app.models import RawRecord

        cluster = Cluster(folder, free_port())
        cluster.create()
        print(f"Private PostgreSQL cluster in {cluster.data}, port {cluster.port}", file=sys.stderr)
        os.environ["DATABASE_URL"] = cluster.url  # for gunicorn
        connection.close()  # and for this process, as Django's test runner points it at its test database
        connection.settings_dict.update(environ.Env.db_url_config(cluster.url))
        call_command("migrate", interactive=False, verbosity=0)
        key = api_key_create(name="restart drill", scope="ingest")[1]
        connection.close()  # the script's own connection would only die with the restart

        http_port = free_port()
        base_url = f"http://127.0.0.1:{http_port}"
        server = start_gunicorn(args.workers, http_port, folder / "gunicorn.log")
        run = time.strftime("%H%M%S")
        answers: list[Answer] = []
        threads = [
            threading.Thread(
                target=client, args=(n, args.clients, args.rate, base_url, key, run, stop, answers), daemon=True
            )
            for n in range(args.clients)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.before)
        stop_issued = time.monotonic()
        cluster.stop("fast")
        down = time.monotonic()
        time.sleep(args.down)
        start_issued = time.monotonic()
        cluster.start()
        up = time.monotonic()
        time.sleep(args.after)
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)
        ended = time.monotonic()

        # What the clients saw.
        answers.sort(key=lambda a: a.sent)
        before = [a for a in answers if a.answered < stop_issued]
        stopping = [a for a in answers if a.answered >= stop_issued and a.sent < down]
        outage = [a for a in answers if a.sent >= down and a.answered <= start_issued]
        starting = [a for a in answers if a.sent < up and a.answered > start_issued and a.sent >= down]
        after = [a for a in answers if a.sent >= up]
        successes_after_return = [a for a in answers if a.ok and a.answered >= start_issued]
        first_success = min((a.answered for a in successes_after_return), default=None)
        recovery = None if first_success is None else max(0.0, first_success - up)
        failed_after_recovery = [a for a in answers if first_success and a.sent >= first_success and not a.ok]
        server_errors = [a for a in answers if a.status >= 500 and a.status != 503]

        # What the database kept.
        prefix = f"drill-{run}-"
        stored = dict(
            RawRecord.objects.filter(data__cookie__startswith=prefix).values_list("id", "data__cookie").order_by()
        )
        stored_cookies = Counter(stored.values())
        acknowledged = [a for a in answers if a.ok]
        missing = [a for a in acknowledged if stored.get(a.raw_record_id) != a.cookie]
        unacknowledged_stored = [a for a in answers if not a.ok and a.cookie in stored_cookies]
        twice = [cookie for cookie, count in stored_cookies.items() if count > 1]
        connection.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait(10)
        gunicorn_log = (
            (folder / "gunicorn.log").read_text(errors="replace") if (folder / "gunicorn.log").exists() else ""
        )
        if cluster is not None and cluster.data.exists() and cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)

    tracebacks = gunicorn_log.count("Traceback")
    print(f"Command: `{command}`\n")
    print(
        f"gunicorn {args.workers} sync workers on a private PostgreSQL 15 cluster; {args.clients} clients posting "
        f"new people to /api/ingest at {args.rate:g} requests/s; the database stopped (`pg_ctl stop -m fast`) "
        f"after {args.before:g} s, down {start_issued - down:.1f} s, load {ended - up:.0f} s after its return.\n"
    )
    print("| phase | from (s) | to (s) | requests | answers by status |\n|---|---|---|---|---|")
    phases = [
        ("before the stop", started, stop_issued, before),
        ("while stopping (answered after the stop began, sent before it ended)", stop_issued, down, stopping),
        ("database down (sent after it stopped, answered before the start)", down, start_issued, outage),
        ("while starting (answered after the start began, sent before it ended)", start_issued, up, starting),
        ("after its return (sent after `pg_ctl start` returned)", up, ended, after),
        ("**all**", started, ended, answers),
    ]
    for name, start, end, group in phases:
        print(f"| {name} | {start - started:.1f} | {end - started:.1f} | {len(group):,} | {statuses(group)} |")

    print("\n| figure | value |\n|---|---|")
    print(f"| `pg_ctl stop -m fast` took / database down / `pg_ctl start` took | {down - stop_issued:.1f} s / "
          f"{start_issued - down:.1f} s / {up - start_issued:.1f} s |")  # fmt: skip
    print(f"| requests sent | {len(answers):,} |")
    print(f"| acknowledged (200/201) | {len(acknowledged):,} |")
    print(f"| raw records stored with the drill's cookies | {len(stored):,} |")
    print(f"| acknowledged records missing from the database | {len(missing):,} |")
    print(f"| answered with an error but stored anyway | {len(unacknowledged_stored):,} |")
    print(f"| records stored twice | {len(twice):,} |")
    recovery_text = "never" if recovery is None else f"{recovery:.2f} s"
    print(f"| time from the database's return to the first successful ingest | {recovery_text} |")
    print(f"| requests failed after the first success | {len(failed_after_recovery):,} |")
    print(f"| gunicorn log tracebacks | {tracebacks} |")
    odd = Counter((a.status, " ".join(a.detail.split())[:150]) for a in answers if a.status not in (200, 201, 503))
    if odd:
        print("\nAnswers other than 200/201/503: " + "; ".join(f"{n}x {s} {d}" for (s, d), n in odd.most_common(5)))
    if tracebacks:
        lines = gunicorn_log[gunicorn_log.index("Traceback") :].splitlines()
        end = next((n for n, line in enumerate(lines[1:], 1) if line and not line[0].isspace()), len(lines) - 1)
        print("\nFirst traceback in gunicorn's log, its end:\n```\n" + "\n".join(lines[: end + 1][-8:]) + "\n```")

    criteria = [
        ("503 while the database is down (and never 500)",
         bool(outage) and all(a.status == 503 for a in outage) and not server_errors,
         f"{statuses(outage)}; 5xx other than 503 at any time: {len(server_errors)}"),
        ("every acknowledged record stored", not missing and not twice,
         f"{len(missing)} missing of {len(acknowledged):,}"),
        (f"recovers by itself within {RECOVERY_LIMIT:g} s",
         recovery is not None and recovery <= RECOVERY_LIMIT and not failed_after_recovery,
         f"first success {recovery_text} after the return; {len(failed_after_recovery)} failures after it"),
    ]  # fmt: skip
    print("\n| criterion | result | figure |\n|---|---|---|")
    for name, passed, figure in criteria:
        print(f"| {name} | {'pass' if passed else '**FAIL**'} | {figure} |")
    return 0 if all(passed for _, passed, _ in criteria) else 1


if __name__ == "__main__":
    raise SystemExit(main())
