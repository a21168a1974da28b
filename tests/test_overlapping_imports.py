"""Two imports started at the same instant end where the same two files imported one after the other end.

What the product does (``users_app/locks.py``): one bulk writer at a time. Started with ``--wait``, the
``import_csv`` that reaches the writer lock second says it is waiting and runs when the first is done;
without it, it is refused ("Another import or rebuild is running", tested in tests/test_import_csv.py).
So the overlap must leave exactly the state of the two files imported one after the other, in the order
they got the lock, into an empty database: the same profiles (as sets of identifiers with their traits,
interests and raw records), the same raw log with each record's outcome, the same merge ledger, import
runs and rejects (``tests.builders.database_snapshot``: ids mapped to content, so surrogate ids may
differ). The profiles are also those of the other order: who wins the race does not change the people.

The two files are the halves of one generated file (even rows, odd rows, plus every 25th row in both), so
people with several rows (several devices, chains that merge profiles) span both files.
"""

import csv
import os
import subprocess
import sys
import time

from django.apps import apps
from django.db import connection

from tests.builders import PROJECT_DIR, database_snapshot
from tests.live_server import child_database_url
from users_app.models import ImportRun
from users_app.sample_data import generate_sample_csv

ROWS = 30_000  # enough for either import to hold the writer lock well past the other's start (~1 s)
SHARED_EVERY = 25
WAITING = "waiting for it to finish"


def import_command(path, *options: str) -> list[str]:
    return [sys.executable, "manage.py", "import_csv", str(path), "--batch-size", "2000", *options]


def child_environment() -> dict:
    """The child processes use the test database this test runs on."""
    return {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "DJANGO_SETTINGS_MODULE": "analytics_site.test_settings",
    }


def two_files_sharing_people(tmp_path):
    whole = tmp_path / "generated.csv"
    generate_sample_csv(out=whole, rows=ROWS, seed=606, malformed=True)
    with whole.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    halves = {"first": [], "second": []}
    for n, row in enumerate(rows):
        halves["first" if n % 2 == 0 else "second"].append(row)
        if n % SHARED_EVERY == 0:  # the very same row in the other file too
            halves["second" if n % 2 == 0 else "first"].append(row)
    paths = {}
    for name, half in halves.items():
        paths[name] = tmp_path / f"{name}.csv"
        with paths[name].open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(half)
    return paths["first"], paths["second"]


def empty_the_database() -> None:
    tables = ", ".join(
        connection.ops.quote_name(m._meta.db_table) for m in apps.get_app_config("users_app").get_models()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def run_import(path, env) -> None:
    done = subprocess.run(import_command(path), cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"import of {path.name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}"


def test_two_imports_started_together_end_as_one_after_the_other(postgres, transactional_db, tmp_path):
    first, second = two_files_sharing_people(tmp_path)
    env = child_environment()

    started = time.monotonic()
    processes = {
        path: subprocess.Popen(
            import_command(path, "--wait"),
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (first, second)
    }
    outputs = {path: (*process.communicate(timeout=600), process.returncode) for path, process in processes.items()}
    overlap_seconds = time.monotonic() - started

    failed = {path.name: err[-1000:] for path, (_, err, code) in outputs.items() if code != 0}
    assert not failed, f"an import failed: {failed}"
    waited = [path for path, (_, err, _) in outputs.items() if WAITING in err]
    assert len(waited) == 1, f"expected one import to wait for the other; these said they waited: {waited}"
    (loser,) = waited
    (winner,) = {first, second} - {loser}
    runs = list(ImportRun.objects.order_by("pk").values_list("file_name", "status"))
    assert runs == [(winner.name, ImportRun.Status.COMPLETED), (loser.name, ImportRun.Status.COMPLETED)]
    overlapped = database_snapshot()

    empty_the_database()
    run_import(winner, env)
    run_import(loser, env)
    one_after_the_other = database_snapshot()

    # The files really share people: profiles holding records of both files.
    people_in_both = sum(
        1
        for profile in overlapped["profiles"].values()
        if len({key.split(":")[1] for key in profile["raw_records"] if key.startswith("csv:")}) == 2
    )
    assert people_in_both > 100
    assert len(overlapped["import_runs"]) == 2
    assert {run[1] for run in overlapped["import_runs"]} == {ImportRun.Status.COMPLETED}

    assert overlapped["profiles"] == one_after_the_other["profiles"]
    assert overlapped["raw_records"] == one_after_the_other["raw_records"]
    assert overlapped["ledger"] == one_after_the_other["ledger"]
    assert overlapped == one_after_the_other

    # Whichever import wins the race, the people are the same: the profiles do not depend on the order
    # (which raw record founded a profile, each record's outcome and the merge ledger do).
    empty_the_database()
    run_import(loser, env)
    run_import(winner, env)
    other_order = database_snapshot()
    assert other_order["profiles"] == overlapped["profiles"]
    assert len(other_order["raw_records"]) == len(overlapped["raw_records"])

    merges = sum(run[7] for run in overlapped["import_runs"])
    print(
        f"\n{winner.name} ran, {loser.name} waited for it ({overlap_seconds:.1f} s for both): "
        f"{len(overlapped['raw_records']):,} raw records, {len(overlapped['profiles']):,} profiles "
        f"({people_in_both:,} with records from both files), {len(overlapped['ledger']):,} merges in the ledger "
        f"({merges} counted by the runs), {len(overlapped['rejects'])} rejects: the same as one after the other; "
        f"in the other order {len(other_order['ledger'])} merges, the same profiles"
    )
