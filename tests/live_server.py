"""A real gunicorn (or another child process) on the test database, for live-server tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from tests.builders import PROJECT_DIR

STARTUP_TIMEOUT = 30  # seconds until the server answers


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_database_url() -> str:
    """The database this test runs on, as a DATABASE_URL a child process's settings read."""
    db = connection.settings_dict
    user = urllib.parse.quote(db["USER"] or "", safe="")
    password = urllib.parse.quote(db["PASSWORD"] or "", safe="")
    return f"postgres://{user}:{password}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_until_answering(process: subprocess.Popen, base_url: str, log_path: Path, healthy: bool) -> None:
    """Until /api/health answers (200 when ``healthy``, any HTTP answer otherwise)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode} before answering:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base_url}/api/health", timeout=2):
                return
        except urllib.error.HTTPError as exc:
            if not healthy:
                return
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    pytest.fail(f"/api/health did not answer within {STARTUP_TIMEOUT} s (last: {last}):\n{log_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the gunicorn master (it stops its workers), then SIGKILL to its process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@contextmanager
def gunicorn(*, log_path: Path, database_url: str, workers: int = 1, healthy: bool = True, **env: str):
    """Run ``analytics_site.wsgi`` under gunicorn with the production settings; yield its base URL."""
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_site.settings",  # the production settings, as deployed
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "live-server-tests-only",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain http on loopback; production redirects to https
        **env,
    }
    command = [
        sys.executable, "-m", "gunicorn", "analytics_site.wsgi:application", "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}", "--timeout", "60", "--graceful-timeout", "5", "--error-logfile", str(log_path),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_answering(process, base_url, log_path, healthy)
        yield base_url
    finally:
        _stop(process)
