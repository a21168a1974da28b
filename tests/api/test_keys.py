"""API keys: shown once, stored as a hash, scoped, revocable."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.api.conftest import SEED_RECORD, client_with
from users_app.models import ApiKey

pytestmark = pytest.mark.django_db


def create_key(scope: str) -> str:
    out = StringIO()
    call_command("create_api_key", "website tag", "--scope", scope, stdout=out)
    return out.getvalue().split()[-1]


def test_create_api_key_prints_the_key_once_as_the_last_word_and_stores_only_its_hash():
    key = create_key("ingest")
    stored = ApiKey.objects.get()
    assert stored.scope == "ingest" and stored.name == "website tag"
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {stored.prefix, stored.key_hash, stored.name}
    assert client_with(key).post("/api/ingest", SEED_RECORD, format="json").status_code == 201


def test_create_api_key_refuses_an_unknown_scope():
    with pytest.raises(CommandError):
        call_command("create_api_key", "x", "--scope", "admin")


def test_a_revoked_or_altered_key_is_refused_with_401():
    key = create_key("read")
    assert client_with(key).get("/api/cohort/user").status_code == 200
    assert client_with(key[:-1] + ("A" if key[-1] != "A" else "B")).get("/api/cohort/user").status_code == 401
    ApiKey.objects.update(revoked_at=timezone.now())
    assert client_with(key).get("/api/cohort/user").status_code == 401


def test_key_use_is_recorded():
    key = create_key("read")
    client_with(key).get("/api/cohort/user")
    assert ApiKey.objects.get().last_used_at is not None
