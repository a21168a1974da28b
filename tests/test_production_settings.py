"""Production settings: HTTPS on by default, configurable behind a proxy, and no start without a secret key.

Settings are read once, at start-up, from the environment, so each case starts ``manage.py`` (or Python)
in a child process with exactly the environment it names.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

from tests.builders import PROJECT_DIR

SHOWN_SETTINGS = [
    "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_REFERRER_POLICY", "X_FRAME_OPTIONS",
    "SECURE_CONTENT_TYPE_NOSNIFF",
]  # fmt: skip
# Prints the settings above, then how the site answers a plain-http and an https request (no database needed).
SHOW_SCRIPT = f"""
import json
import django
from django.conf import settings
django.setup()
from django.test import Client
shown = {{name: getattr(settings, name) for name in {SHOWN_SETTINGS!r}}}
shown["CONN_HEALTH_CHECKS"] = settings.DATABASES["default"]["CONN_HEALTH_CHECKS"]
plain = Client().get("/admin/login/")
secure = Client().get("/admin/login/", secure=True)
shown["http"] = [plain.status_code, plain.get("Location", "")]
shown["https_hsts"] = secure.get("Strict-Transport-Security", "")
print(json.dumps(shown))
"""


def production_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment without any Django setting, as a fresh production start sees it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DJANGO_") and name not in ("DATABASE_URL",)
    }
    env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_ALLOWED_HOSTS="testserver")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120)


def settings_with(tmp_path, **overrides: str | None) -> dict:
    env = production_env(DJANGO_SETTINGS_MODULE="analytics_site.settings", **overrides)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.sqlite3'}"
    done = run([sys.executable, "-c", SHOW_SCRIPT], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_check_deploy_passes_with_only_debug_off_and_a_secret_key():
    done = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_production_refuses_to_start_without_a_secret_key():
    done = run([sys.executable, "manage.py", "check"], production_env(DJANGO_SECRET_KEY=None))
    assert done.returncode != 0
    assert "ImproperlyConfigured: Set DJANGO_SECRET_KEY" in done.stderr


def test_production_defaults_are_https_only(tmp_path):
    shown = settings_with(tmp_path)
    assert shown["DEBUG"] is False
    assert shown["SECURE_SSL_REDIRECT"] is True
    assert shown["SECURE_PROXY_SSL_HEADER"] is None  # trusting a header no proxy sets would let clients fake https
    assert shown["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True and shown["SECURE_HSTS_PRELOAD"] is True
    assert shown["SESSION_COOKIE_SECURE"] is True and shown["CSRF_COOKIE_SECURE"] is True
    assert shown["SECURE_REFERRER_POLICY"] == "same-origin"
    assert shown["X_FRAME_OPTIONS"] == "DENY"
    assert shown["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert shown["http"] == [301, "https://testserver/admin/login/"]
    assert shown["https_hsts"] == "max-age=31536000; includeSubDomains; preload"


def test_behind_a_tls_proxy_the_redirect_proxy_header_and_hsts_come_from_the_environment(tmp_path):
    shown = settings_with(
        tmp_path,
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        DJANGO_SECURE_HSTS_PRELOAD="0",
    )
    assert shown["SECURE_SSL_REDIRECT"] is False
    assert shown["http"][0] == 200
    assert shown["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert shown["https_hsts"] == "max-age=3600"
    assert shown["SESSION_COOKIE_SECURE"] is True  # cookies stay https-only


def test_debug_serves_plain_http_for_make_demo(tmp_path):
    shown = settings_with(tmp_path, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=None)
    assert shown["SECURE_SSL_REDIRECT"] is False
    assert shown["http"][0] == 200
    assert shown["SECURE_HSTS_SECONDS"] == 0 and shown["https_hsts"] == ""
    assert shown["SESSION_COOKIE_SECURE"] is False and shown["CSRF_COOKIE_SECURE"] is False


def test_connections_are_health_checked_so_they_recover_after_a_database_restart(tmp_path):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings_with(tmp_path)["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize(
    "variable",
    [
        "DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_PROXY_SSL_HEADER", "DJANGO_SECURE_HSTS_SECONDS",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", "DJANGO_SECURE_HSTS_PRELOAD",
    ],
)  # fmt: skip
def test_every_https_variable_is_documented_in_the_settings_and_the_readme(variable):
    assert variable in (PROJECT_DIR / "analytics_site" / "settings.py").read_text().split('"""')[1]
    assert f"`{variable}`" in (PROJECT_DIR / "README.md").read_text()


def test_server_errors_are_written_to_stderr_with_debug_off():
    """Django's default would mail them to ADMINS only: a 500 in production must leave a trace in the log."""
    assert not settings.DEBUG
    (handler,) = [h for h in logging.getLogger("django").handlers if isinstance(h, logging.StreamHandler)]
    written = io.StringIO()
    previous = handler.setStream(written)
    try:
        logging.getLogger("django.request").error("Internal Server Error: /api/x", exc_info=ValueError("boom"))
    finally:
        handler.setStream(previous)
    assert "Internal Server Error: /api/x" in written.getvalue()
    assert "ValueError: boom" in written.getvalue()
