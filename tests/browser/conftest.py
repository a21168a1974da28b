"""A marketer's browser: headless Debian Chromium driven by Playwright, against a real gunicorn.

The site under test is set up the way ``make demo`` sets it up (migrate, generated data, import_csv,
a staff login), in a database of its own: a SQLite file on the SQLite pass, a fresh PostgreSQL
database on the PostgreSQL pass. Screenshots and downloads land in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.builders import PROJECT_DIR
from tests.live_server import gunicorn

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", PROJECT_DIR / "test-artifacts")) / "browser"
LOGIN = ("marketer", "browser-tests-only-password")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROWS = 3000


def manage(database_url: str, *args: str, **env: str) -> str:
    environment = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "1", **env}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _postgres_database(name: str):
    """Create a fresh PostgreSQL database beside the test one; yield its URL; drop it."""
    db = settings.DATABASES["default"]
    server = {
        "host": db["HOST"] or "localhost",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"],
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    user, password = (urllib.parse.quote(server[key] or "", safe="") for key in ("user", "password"))
    yield f"postgres://{user}:{password}@{server['host']}:{server['port']}/{name}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def site_database(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        yield from _postgres_database(f"browser_{os.getpid()}")
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('site') / 'site.sqlite3'}"


@pytest.fixture(scope="session")
def site(site_database, tmp_path_factory):
    """A demo-like site on gunicorn: generated people imported with import_csv, and a staff login."""
    data = tmp_path_factory.mktemp("data") / "people.csv"
    manage(site_database, "migrate", "--no-input")
    manage(site_database, "generate_sample_data", "--rows", str(ROWS), "--seed", "11", "--out", str(data))
    manage(site_database, "import_csv", str(data))
    manage(site_database, "shell", "-c", "from cohorts_app.models import Segment; Segment.objects.create("
           "name='Japan', filters={'country': 'Japan'})")  # fmt: skip
    manage(
        site_database, "createsuperuser", "--no-input", "--username", LOGIN[0], "--email", "m@example.com",
        DJANGO_SUPERUSER_PASSWORD=LOGIN[1],
    )  # fmt: skip
    log = tmp_path_factory.mktemp("logs") / "gunicorn.log"
    uploads = tmp_path_factory.mktemp("uploads")
    with gunicorn(log_path=log, database_url=site_database, workers=2, IMPORT_UPLOAD_DIR=str(uploads)) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site, artifacts, request):
    context = browser.new_context(base_url=site, accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/admin/login/")
    page.fill("#id_username", LOGIN[0])
    page.fill("#id_password", LOGIN[1])
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    yield page
    page.screenshot(path=artifacts / f"{request.node.name}-last.png", full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
