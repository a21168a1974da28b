import pytest
from django.core.cache import cache
from django.db import connection


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: filter menus and rate limits cached by an earlier test
    would otherwise show that test's data."""
    cache.clear()


@pytest.fixture
def postgres(db):
    """Skip on SQLite: the test needs PostgreSQL (CI's second pass runs it)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI's second pass does)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
