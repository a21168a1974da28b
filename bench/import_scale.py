"""Import at scale: a new file into a database that already holds N people, and rebuild_profiles of N rows.

    .venv/bin/python bench/import_scale.py [--base-rows 1000000] [--rows 100000] [--runs 3] [--keep]

Everything runs on PostgreSQL (127.0.0.1:5432, user postgres), each measured command in a child
process; the table gives the median seconds of ``--runs`` runs, rows/s, the peak memory of the
child (its maximum resident set, the largest over the runs) and a ratio.

- base: the file of ``--base-rows`` rows that import_peers.py uses (seed 7), imported once per script
  run with ``manage.py import_csv --offline`` into a migrated database, then ``VACUUM ANALYZE``
  (autovacuum is off on the bench machine). Each run starts from a clone of it (``CREATE DATABASE ... TEMPLATE``),
  so every run sees the same state. ``--keep`` keeps it: the next script run of that size reuses it.
- new file: ``--rows`` rows generated with seed 8, in which 5% of the rows (chosen with
  ``random.Random(5)``) then take the email (4 in 5) or the cookie (1 in 5) of a random base row, so
  they belong to people the base already holds. Two seeds draw emails from the same space of ~11.2M
  addresses, so by chance some seed-8 people would share an email with the base as well (about 8%
  of the rows at 1M base rows); those emails (and any hand-typed cookie that repeats) are renumbered
  first, so the matches are exactly the chosen 5%. The header line tells how many of each.
- steady-state import: ``manage.py import_csv`` of the new file into a clone of the base, compared
  with the same file into an empty migrated database (target: at most 2x).
- rebuild_profiles: ``manage.py rebuild_profiles`` on a clone of the base (it asks no question:
  it refuses only while an import holds the writer lock; up to ``FIRST_LOAD_MAX_RECORDS`` raw
  records it resolves them in memory), compared with the floor of
  import_peers.py: ``psql \\copy`` of the base file into a table of 12 text columns with no index;
  and ``rebuild_profiles --offline`` (TRUNCATE, foreign keys checked once at the end) the same way.

After the table, the database's counts after each scenario (raw records, profiles, merges, and what
the last import run recorded) show the work was real. Databases are named ``bench_scale_*`` and
dropped at the end (``--keep``: all but the base). Generated files go to ``bench-data/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.import_peers import DATA, PROJECT, SERVER, fresh_database, manage, psql, run_floor, timed_child

BASE_SEED, NEW_SEED, MATCH_SEED = 7, 8, 5
MATCH_SHARE, COOKIE_MATCH_SHARE = 0.05, 0.2
BASE_DB, EMPTY_DB, RUN_DB, FLOOR_DB = "bench_scale_base", "bench_scale_empty", "bench_scale_run", "bench_scale_floor"
COUNTS = """SELECT (SELECT count(*) FROM users_app_rawrecord), (SELECT count(*) FROM users_app_profile),
    (SELECT count(*) FROM users_app_profilemerge),
    (SELECT concat_ws('/', file_name, status, rows, profiles_created, merges)
     FROM users_app_importrun ORDER BY id DESC LIMIT 1)"""


def query(database: str, sql: str) -> list[str]:
    command = ["psql", "-XAt", "-F", "|", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-c", sql]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()


def run_manage(database: str, *args: str) -> None:
    command, env = manage(f"{SERVER}/{database}", *args)
    subprocess.run(command, cwd=PROJECT, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)


def timed_manage(database: str, *args: str) -> tuple[float, float]:
    psql("postgres", "CHECKPOINT")  # start each measure without the previous step's dirty pages
    return timed_child(*manage(f"{SERVER}/{database}", *args))


def clone(template: str, name: str = RUN_DB) -> str:
    drop(name)
    psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop(name: str) -> None:
    psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(name: str) -> bool:
    return query("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == ["1"]


def counts(database: str) -> dict[str, str]:
    raw, profiles, merges, last_run = query(database, COUNTS)[0].split("|")
    return {"raw records": raw, "profiles": profiles, "merges": merges, "last import run": last_run}


# Files --------------------------------------------------------------------------------------------


def generated(rows: int, seed: int) -> Path:
    """The generator's file of ``rows`` rows; seed 7 is import_peers.py's file, shared with it."""
    path = DATA / (f"rows-{rows}.csv" if seed == BASE_SEED else f"rows-{rows}-seed{seed}.csv")
    if not path.exists():
        part = path.with_suffix(".part")
        command, env = manage("sqlite://:memory:", "generate_sample_data", "--rows", str(rows), "--seed", str(seed))
        subprocess.run([*command, "--out", str(part)], cwd=PROJECT, env={**os.environ, **env}, check=True)
        part.rename(path)
    return path


def renumbered(value: str, *taken: set[str]) -> str:
    """``value`` with its number (``first.last123@x``, ``handle42``) moved past the generator's range."""
    match = re.fullmatch(r"(.*?)(\d*)(@.*)?", value)
    head, number, tail = match[1], int(match[2] or 0), match[3] or ""
    while any(value in values for values in taken):
        number += 1_000_000  # the generator reaches such numbers only past 11 billion people
        value = f"{head}{number}{tail}"
    return value


def matching_file(base: Path, base_rows: int, rows: int) -> tuple[Path, dict[str, int]]:
    """The new file: seed-8 rows, 5% of which take an identifier of a random base row (see the top)."""
    path = DATA / f"scale-{rows}-seed{NEW_SEED}-matching-{base_rows}-seed{BASE_SEED}.csv"
    stats_path = path.with_suffix(".json")
    if path.exists() and stats_path.exists():
        return path, json.loads(stats_path.read_text())

    rng = random.Random(MATCH_SEED)
    chosen = sorted(rng.sample(range(rows), round(rows * MATCH_SHARE)))
    plan = [(row, rng.randrange(base_rows), rng.random() < COOKIE_MATCH_SHARE) for row in chosen]
    wanted = {base_row for _, base_row, _ in plan}
    base_values, picked = {"cookie": set(), "email": set()}, {}
    with base.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for number, row in enumerate(reader):
            base_values["cookie"].add(row["cookie"])
            base_values["email"].add(row["email"])
            if number in wanted:
                picked[number] = row
    with generated(rows, NEW_SEED).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        new_rows = list(reader)
    if len(new_rows) != rows or number + 1 != base_rows:
        raise SystemExit(f"unexpected row counts: {len(new_rows)} new, {number + 1} base")

    stats = {}
    for kind in ("email", "cookie"):
        # Chance collisions with the base: renumbered wherever they occur, so each stays one new person.
        at, base_set = header.index(kind), base_values.pop(kind)
        new_set = {row[at] for row in new_rows}
        moved, used = {}, set()
        for value in sorted((new_set & base_set) - {""}):
            moved[value] = renumbered(value, base_set, new_set, used)
            used.add(moved[value])
        stats[f"rows whose {kind} was renumbered"] = sum(row[at] in moved for row in new_rows)
        for row in new_rows:
            row[at] = moved.get(row[at], row[at])
    stats |= {"rows matched by email": 0, "rows matched by cookie": 0}
    for number, base_row, by_cookie in plan:
        kind = "cookie" if (by_cookie and picked[base_row]["cookie"]) or not picked[base_row]["email"] else "email"
        new_rows[number][header.index(kind)] = picked[base_row][kind]
        stats[f"rows matched by {kind}"] += 1

    part = path.with_suffix(".part")
    with part.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # as the generator writes
        writer.writerow(header)
        writer.writerows(new_rows)
    part.rename(path)
    stats_path.write_text(json.dumps(stats))
    return path, stats


# Databases and scenarios --------------------------------------------------------------------------


def base_database(path: Path, rows: int, keep: bool) -> str:
    """The template: base file imported, vacuumed and analysed. Reused when --keep left a complete one."""
    name = f"{BASE_DB}_{rows}"
    if database_exists(name):
        try:
            runs = query(name, "SELECT file_name, status, rows FROM users_app_importrun")
        except subprocess.CalledProcessError:
            runs = []  # not migrated: an interrupted build
        if runs == [f"{path.name}|completed|{rows}"]:
            return f"{name}: kept by an earlier run with --keep" + ("" if keep else " (dropped at the end)")
    fresh_database(name)
    run_manage(name, "migrate", "-v0")
    seconds, peak = timed_manage(name, "import_csv", str(path), "--offline")
    psql(name, "VACUUM ANALYZE")
    took = f"took {seconds:.1f} s, peak {peak:.0f} MB"
    return f"{name}: import_csv --offline of the base file into an empty database {took}"


def empty_database() -> str:
    fresh_database(EMPTY_DB)
    run_manage(EMPTY_DB, "migrate", "-v0")
    psql(EMPTY_DB, "VACUUM ANALYZE")
    return EMPTY_DB


def measure(runs: int, template: str, *command: str) -> tuple[float, float, dict[str, str]]:
    """Median seconds, peak MB and the counts after, of ``manage.py COMMAND`` on clones of ``template``."""
    results = []
    for _ in range(runs):
        database = clone(template)
        results.append(timed_manage(database, *command))
        after = counts(database)
        drop(database)
    return statistics.median(s for s, _ in results), max(mb for _, mb in results), after


def floor(runs: int, path: Path) -> tuple[float, float, dict[str, str]]:
    """import_peers.run_floor under this script's own database name."""
    results = []
    for _ in range(runs):
        results.append(run_floor(path, FLOOR_DB))
        after = {"raw records": query(FLOOR_DB, "SELECT count(*) FROM raw")[0], "profiles": "", "merges": ""}
        drop(FLOOR_DB)
    return statistics.median(s for s, _ in results), max(mb for _, mb in results), after | {"last import run": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-rows", type=int, default=1_000_000, help="rows of the base file (default 1M)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the new file (default 100k)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the base database for the next run")
    args = parser.parse_args()

    DATA.mkdir(exist_ok=True)
    base_path = generated(args.base_rows, BASE_SEED)
    # In a child process: reading the base file grows this process, and Linux counts a parent's resident
    # set at fork into each child's peak (ru_maxrss), which would inflate every peak measured below.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        new_path, stats = pool.apply(matching_file, (base_path, args.base_rows, args.rows))
    print(
        f"base {args.base_rows:,} rows ({base_path.stat().st_size / 1e6:.0f} MB, seed {BASE_SEED}), new file "
        f"{args.rows:,} rows (seed {NEW_SEED}; {', '.join(f'{n:,} {what}' for what, n in stats.items())}); "
        f"median of {args.runs}; Python {platform.python_version()}, {os.cpu_count()} CPUs",
        flush=True,
    )
    template = f"{BASE_DB}_{args.base_rows}"
    try:
        print(f"\n{base_database(base_path, args.base_rows, args.keep)}\n", flush=True)
        after = {"base (template)": counts(template)}
        print("| scenario | rows | seconds | rows/s | peak MB | compared |")
        print("|---|---|---|---|---|---|", flush=True)

        def report(name: str, rows: int, result: tuple[float, float, dict[str, str]], versus: str) -> float:
            seconds, peak, after[name] = result
            print(f"| {name} | {rows:,} | {seconds:.2f} | {rows / seconds:,.0f} | {peak:.0f} | {versus} |", flush=True)
            return seconds

        new_file = ("import_csv", str(new_path))
        empty = report(
            "import_csv new file, empty database", args.rows, measure(args.runs, empty_database(), *new_file), "1.0"
        )
        steady = measure(args.runs, template, *new_file)
        versus = f"{steady[0] / empty:.2f} x the empty import (target <= 2)"
        report(f"import_csv new file, database of {args.base_rows:,} rows", args.rows, steady, versus)
        name = "psql \\copy base file, text table, no index (floor)"
        floor_seconds = report(name, args.base_rows, floor(args.runs, base_path), "1.0")
        rebuild = measure(args.runs, template, "rebuild_profiles")
        versus = f"{rebuild[0] / floor_seconds:.1f} x the floor"
        report(f"rebuild_profiles, database of {args.base_rows:,} rows", args.base_rows, rebuild, versus)
        offline = measure(args.runs, template, "rebuild_profiles", "--offline")
        versus = f"{offline[0] / floor_seconds:.1f} x the floor"
        report(f"rebuild_profiles --offline, database of {args.base_rows:,} rows", args.base_rows, offline, versus)
    finally:
        for name in (EMPTY_DB, RUN_DB, FLOOR_DB, *(() if args.keep else (template,))):
            drop(name)

    print("\n| database after | raw records | profiles | merges | last import run: file/status/rows/created/merges |")
    print("|---|---|---|---|---|")
    for name, values in after.items():
        print(f"| {name} | {' | '.join(values.values())} |")


if __name__ == "__main__":
    main()
