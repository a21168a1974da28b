"""An import killed with SIGKILL part-way and run again ends exactly where one clean import ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.apps import apps
from django.db import connection

from tests.builders import PROJECT_DIR, database_snapshot, foreign_keys
from tests.live_server import child_database_url
from users_app.models import ImportRun, RawRecord
from users_app.sample_data import generate_sample_csv

ROWS = 200_000
BATCH = 5_000


def import_command(path, *options: str) -> list[str]:
    return [sys.executable, "manage.py", "import_csv", str(path), "--batch-size", str(BATCH), *options]


def child_environment() -> dict:
    """The child process uses the test database this test runs on."""
    return {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "DJANGO_SETTINGS_MODULE": "analytics_site.test_settings",
    }


def wait_for_committed_lines(process, lines: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the import ended (exit {process.returncode}) before it could be killed")
        if ImportRun.objects.filter(lines_done__gte=lines).exists():
            return
        time.sleep(0.1)
    pytest.fail(f"no {lines} lines committed within {timeout} s")


def test_an_import_killed_part_way_then_run_again_equals_one_clean_import(postgres, transactional_db, tmp_path):
    path = tmp_path / "generated-200k.csv"
    generate_sample_csv(out=path, rows=ROWS, seed=2024, malformed=True)
    env = child_environment()

    process = subprocess.Popen(import_command(path), cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL)
    wait_for_committed_lines(process, ROWS // 3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = RawRecord.objects.count()
    assert 0 < killed_at < ROWS
    assert ImportRun.objects.get().status == ImportRun.Status.RUNNING  # it had no chance to say otherwise

    subprocess.run(import_command(path), cwd=PROJECT_DIR, env=env, check=True, stdout=subprocess.DEVNULL)
    resumed = database_snapshot()
    assert ImportRun.objects.get().status == ImportRun.Status.COMPLETED

    empty_database()
    subprocess.run(import_command(path), cwd=PROJECT_DIR, env=env, check=True, stdout=subprocess.DEVNULL)
    clean = database_snapshot()

    assert resumed["import_runs"][0][2] == ROWS
    assert len(resumed["raw_records"]) == ROWS - len(resumed["rejects"])
    assert resumed == clean


def empty_database() -> None:
    tables = ", ".join(
        connection.ops.quote_name(m._meta.db_table) for m in apps.get_app_config("users_app").get_models()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def wait_for_copy_elsewhere(process, timeout: float = 120) -> None:
    """Until another session of this database is writing rows (an offline import shows no progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the import ended (exit {process.returncode}) before it could be killed")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND query LIKE 'COPY %%'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    pytest.fail(f"no COPY seen within {timeout} s")


def test_an_offline_import_killed_part_way_leaves_nothing_and_run_again_equals_a_batched_import(
    postgres, transactional_db, tmp_path
):
    path = tmp_path / "generated-50k.csv"
    generate_sample_csv(out=path, rows=50_000, seed=2025, malformed=True)
    env = child_environment()
    keys = foreign_keys()

    process = subprocess.Popen(import_command(path, "--offline"), cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL)
    wait_for_copy_elsewhere(process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert RawRecord.objects.count() == 0
    assert not ImportRun.objects.exists()
    assert foreign_keys() == keys  # set aside inside the transaction the kill rolled back

    subprocess.run(import_command(path, "--offline"), cwd=PROJECT_DIR, env=env, check=True, stdout=subprocess.DEVNULL)
    offline = database_snapshot()
    assert foreign_keys() == keys
    empty_database()
    subprocess.run(import_command(path), cwd=PROJECT_DIR, env=env, check=True, stdout=subprocess.DEVNULL)

    assert len(offline["raw_records"]) == 50_000 - len(offline["rejects"]) > 49_000
    assert offline == database_snapshot()
