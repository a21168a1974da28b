"""CSV import side by side: import_csv end to end vs PostgreSQL's own COPY vs django-import-export.

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python bench/import_peers.py --rows 100000 [--runs 3] [--imports default,offline] [--peers default,tuned]

Each contender loads the same generated file into a fresh PostgreSQL database (127.0.0.1:5432,
user postgres) in a child process; the table gives the median seconds of ``--runs`` runs, rows/s,
the peak memory of the child (its maximum resident set), and the ratio to the floor.

- floor: ``psql \\copy`` into a table of 12 text columns with no index (the physical limit).
- import_csv: ``manage.py import_csv`` end to end (raw records, resolution, profiles,
  identifiers, cohort), after ``migrate``; then the same with ``--offline`` (one transaction,
  foreign keys checked and indexes built once at the end; into the empty database, a first load
  resolved in memory up to ``FIRST_LOAD_MAX_RECORDS`` rows). ``--imports`` picks either or both.
- what import_csv stores, loaded by PostgreSQL itself (``--stored``): the database the last
  import_csv run left, dumped with ``pg_dump --format directory``, then restored into a fresh
  database: its tables made untimed (``--section pre-data``), then timed, its rows copied in and
  its indexes, keys and constraints built (``--section data --section post-data``, ``--jobs 2``).
  No Python, no parsing nor resolving: the least any importer of this schema pays for the result.
- django-import-export 4.4 into a plain model with the same columns (``bench/peers``): the default
  ``ModelResource``, and tuned (``use_bulk``, ``batch_size`` 5000, ``skip_diff``,
  ``force_init_instance``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT / "bench-data"
SERVER = "postgres://postgres@127.0.0.1:5432"
COLUMNS = (
    "cookie", "email", "phone_number", "country", "state", "city", "age", "gender", "income", "education",
    "interests", "created_at",
)  # fmt: skip


def psql(database: str, command: str) -> None:
    quiet = {**os.environ, "PGOPTIONS": "--client-min-messages=warning"}
    command_line = ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-c", command]
    subprocess.run(command_line, check=True, env=quiet)


def fresh_database(name: str) -> str:
    psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql("postgres", f'CREATE DATABASE "{name}"')
    return f"{SERVER}/{name}"


def timed_child(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak resident MB) of one child process, which must succeed."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=PROJECT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return seconds, usage.ru_maxrss / 1024


def manage(database_url: str, *args: str, settings: str = "analytics_site.settings") -> tuple[list[str], dict]:
    return [sys.executable, "manage.py", *args], {
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench",
        "DJANGO_SETTINGS_MODULE": settings,
    }


def run_floor(path: Path, database: str = "bench_floor") -> tuple[float, float]:
    url = fresh_database(database)
    psql(database, f"CREATE TABLE raw ({', '.join(f'{c} text' for c in COLUMNS)})")
    psql("postgres", "CHECKPOINT")  # the new database's pages are on disk before the clock starts
    command = ["psql", "-q", url, "-c", f"\\copy raw FROM '{path}' WITH (FORMAT csv, HEADER true)"]
    return timed_child(command, {})


def run_import_csv(path: Path, *options: str) -> tuple[float, float]:
    url = fresh_database("bench_import")
    subprocess.run(manage(url, "migrate", "-v0")[0], cwd=PROJECT, env={**os.environ, **manage(url)[1]}, check=True)
    command, env = manage(url, "import_csv", str(path), *options)
    return timed_child(command, env)


def run_stored(dump: Path, database: str = "bench_stored") -> tuple[float, float]:
    url = fresh_database(database)
    restore = ["pg_restore", "--no-owner", "--dbname", url]
    subprocess.run([*restore, "--section", "pre-data", str(dump)], check=True)
    psql("postgres", "CHECKPOINT")
    return timed_child([*restore, "--section", "data", "--section", "post-data", "--jobs", "2", str(dump)], {})


def dump_import(dump: Path, database: str = "bench_import") -> Path:
    """The database import_csv left, as a pg_dump directory (made once per bench run)."""
    subprocess.run(
        ["pg_dump", "--format", "directory", "--jobs", "2", "--file", str(dump), f"{SERVER}/{database}"], check=True
    )
    return dump


def run_peer(path: Path, variant: str) -> tuple[float, float]:
    url = fresh_database("bench_peer")
    command, env = manage(url, "migrate", "-v0", settings="bench.peer_settings")
    subprocess.run(command, cwd=PROJECT, env={**os.environ, **env}, check=True)
    return timed_child([sys.executable, __file__, "--peer-load", variant, "--file", str(path)], env)


def peer_load(variant: str, path: Path) -> None:
    """In a child: django-import-export loads the file into PlainRecord."""
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()
    import tablib
    from import_export import resources

    from bench.peers.models import PlainRecord

    class DefaultResource(resources.ModelResource):
        class Meta:
            model = PlainRecord

    class TunedResource(resources.ModelResource):
        class Meta:
            model = PlainRecord
            use_bulk = True
            batch_size = 5000
            skip_diff = True
            force_init_instance = True

    resource = {"default": DefaultResource, "tuned": TunedResource}[variant]()
    dataset = tablib.Dataset().load(path.read_text(encoding="utf-8"), format="csv")
    result = resource.import_data(dataset, raise_errors=True)
    assert PlainRecord.objects.count() == len(dataset), (PlainRecord.objects.count(), result.totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--imports", default="default,offline", help="import_csv variants to run")
    parser.add_argument(
        "--stored", action="store_true", help="also time PostgreSQL restoring what the last import_csv stored"
    )
    parser.add_argument("--peers", default="default,tuned", help="django-import-export variants to run ('' for none)")
    parser.add_argument("--peer-load", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_load:
        return peer_load(args.peer_load, args.file)

    DATA.mkdir(exist_ok=True)
    path = DATA / f"rows-{args.rows}.csv"
    if not path.exists():
        command, env = manage("sqlite://:memory:", "generate_sample_data", "--rows", str(args.rows), "--seed", "7")
        subprocess.run([*command, "--out", str(path)], cwd=PROJECT, env={**os.environ, **env}, check=True)
    imports = {
        "default": ("import_csv, end to end", run_import_csv),
        "offline": ("import_csv --offline, end to end", lambda p: run_import_csv(p, "--offline")),
    }
    contenders = [("psql \\copy, text table, no index (floor)", run_floor)]
    contenders += [imports[variant] for variant in filter(None, args.imports.split(","))]
    if args.stored:
        if not args.imports:
            raise SystemExit("--stored restores what an import_csv run stored: pick one with --imports")
        scratch = tempfile.TemporaryDirectory()  # removed when the bench ends
        stored_floor = "what import_csv stored, restored by pg_restore (rows, indexes, keys)"
        dump = Path(scratch.name) / "import.dump"
        contenders.append((stored_floor, lambda p: run_stored(dump if dump.exists() else dump_import(dump))))
    contenders += [
        (f"django-import-export 4.4.3, {variant}", lambda p, v=variant: run_peer(p, v))
        for variant in filter(None, args.peers.split(","))
    ]
    print(
        f"{args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB), median of {args.runs}; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print("| contender | seconds | rows/s | peak MB | times the floor |")
    print("|---|---|---|---|---|")
    floor = None
    for name, run in contenders:
        results = [run(path) for _ in range(args.runs)]
        seconds = statistics.median(s for s, _ in results)
        peak = max(mb for _, mb in results)
        floor = floor or seconds
        rate = args.rows / seconds
        print(f"| {name} | {seconds:.2f} | {rate:,.0f} | {peak:.0f} | {seconds / floor:.1f} |", flush=True)


if __name__ == "__main__":
    main()
