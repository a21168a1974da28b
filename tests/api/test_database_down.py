"""With the database unreachable, a real gunicorn answers 503 (never 500) and says so."""

import json
import urllib.error
import urllib.request

import pytest
from django.db import OperationalError

from tests.api.conftest import SEED_RECORD
from tests.live_server import gunicorn

UNREACHABLE_DATABASE = "postgres://postgres@127.0.0.1:9/nothing-listens-here"


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def server_without_database(tmp_path):
    with gunicorn(log_path=tmp_path / "gunicorn.log", database_url=UNREACHABLE_DATABASE, healthy=False) as base_url:
        yield base_url


def test_health_and_ingest_answer_503_while_the_database_is_down(server_without_database):
    status, body = request(f"{server_without_database}/api/health")
    assert (status, body["status"], body["database"]) == (503, "DOWN", "unreachable")

    payload = json.dumps({"data": {"cookie": "c", "created_at": "03/10/2025 15:30"}}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer ak_0000000000_whatever"}
    status, body = request(f"{server_without_database}/api/ingest", payload, headers)
    assert status == 503
    assert "unavailable" in body["detail"]


def test_a_connection_refused_while_the_database_comes_back_is_503_not_500(ingest_client, monkeypatch):
    """A restart's race (bench/pg_restart_drill.py found it): the request's connection is refused ("the
    database system is starting up") and the database answers again by the time the error is handled."""

    def refused(key):
        raise OperationalError("connection failed: FATAL:  the database system is starting up")

    monkeypatch.setattr("users_app.access.api_key_lookup", refused)
    response = ingest_client.post("/api/ingest", SEED_RECORD, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "unavailable" in response.json()["detail"]
