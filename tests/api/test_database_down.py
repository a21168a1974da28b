"""With the database unreachable, a real gunicorn answers 503 (never 500) and says so."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.builders import PROJECT_DIR

UNREACHABLE_DATABASE = "postgres://postgres@127.0.0.1:9/nothing-listens-here"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def server_without_database():
    port = free_port()
    env = {**os.environ, "DATABASE_URL": UNREACHABLE_DATABASE, "DJANGO_SECRET_KEY": "tests-only"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "analytics_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--timeout", "30"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(10)


def test_health_and_ingest_answer_503_while_the_database_is_down(server_without_database):
    status, body = request(f"{server_without_database}/api/health")
    assert (status, body["status"], body["database"]) == (503, "DOWN", "unreachable")

    payload = json.dumps({"data": {"cookie": "c", "created_at": "03/10/2025 15:30"}}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer ak_0000000000_whatever"}
    status, body = request(f"{server_without_database}/api/ingest", payload, headers)
    assert status == 503
    assert "unavailable" in body["detail"]
