"""An import killed with SIGKILL part-way and run again ends exactly where one clean import ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.apps import apps
from django.db import connection

from tests.builders import PROJECT_DIR, database_snapshot
from tests.live_server import child_database_url
from users_app.models import ImportRun, RawRecord
from users_app.sample_data import generate_sample_csv

ROWS = 200_000
BATCH = 5_000


def import_command(path) -> list[str]:
    return [sys.executable, "manage.py", "import_csv", str(path), "--batch-size", str(BATCH)]


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

    tables = ", ".join(
        connection.ops.quote_name(m._meta.db_table) for m in apps.get_app_config("users_app").get_models()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")
    subprocess.run(import_command(path), cwd=PROJECT_DIR, env=env, check=True, stdout=subprocess.DEVNULL)
    clean = database_snapshot()

    assert resumed["import_runs"][0][2] == ROWS
    assert len(resumed["raw_records"]) == ROWS - len(resumed["rejects"])
    assert resumed == clean
