"""Settings, read from the environment in this one place (django-environ).

DATABASE_URL        default: SQLite file db.sqlite3 in the project folder
DJANGO_SECRET_KEY   required unless DJANGO_DEBUG is on
DJANGO_DEBUG        default: off
DJANGO_ALLOWED_HOSTS  default: localhost,127.0.0.1
IDENTITY_MATCH_PHONE  default: off (phone numbers are traits, not identifiers)
IDENTIFIER_BLOCKLIST  comma-separated identifier values that never link records
PII_HASH_KEY        default: derived from DJANGO_SECRET_KEY. Key of the HMAC-SHA256 that the suppression
                    list of erased people's identifiers stores instead of the values. Changing it (or,
                    while it is unset, the secret key) forgets every suppression: records of erased
                    people would be stored again. Set it explicitly before rotating the secret key.
API_RATE_INGEST / API_RATE_READ  requests per key, e.g. 60000/min (per server process)
DATABASE_CONN_MAX_AGE  default: 60 (seconds a worker keeps its database connection; 0: one per request)
IMPORT_UPLOAD_DIR   default: uploads/ in the project folder (CSV files uploaded in the admin, while imported)
FIRST_LOAD_MAX_RECORDS  default: 1000000 (largest offline import or rebuild resolved in memory: ~800 MB)
DJANGO_LOG_LEVEL    default: WARNING (Django's messages, server errors with their traceback, go to stderr)

HTTPS, in production only (with DJANGO_DEBUG on they are all off, for `make demo` on plain http):
DJANGO_SECURE_SSL_REDIRECT  default: on (plain-http requests are redirected to https)
DJANGO_SECURE_PROXY_SSL_HEADER  default: none; behind a TLS proxy, the header that says the request
                    came in over https, e.g. HTTP_X_FORWARDED_PROTO,https (only if the proxy sets it)
DJANGO_SECURE_HSTS_SECONDS  default: 31536000 (one year of Strict-Transport-Security)
DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS / DJANGO_SECURE_HSTS_PRELOAD  default: on
Session and CSRF cookies are https-only in production.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development).")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# HTTPS in production (`manage.py check --deploy` passes with the defaults); all off in DEBUG, where
# `make demo` serves plain http. The live-server tests and bench/ run gunicorn with DEBUG off over
# plain http on loopback, so they set DJANGO_SECURE_SSL_REDIRECT=0.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Only trust this header behind a proxy that sets it (and strips it from clients' requests).
SECURE_PROXY_SSL_HEADER = env.tuple("DJANGO_SECURE_PROXY_SSL_HEADER", default=None)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "analytics_site.admin_site.AnalyticsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "users_app",
    "cohorts_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "analytics_site.urls"
WSGI_APPLICATION = "analytics_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep each worker's connection between requests (opening one costs more than most requests);
# the health check replaces a connection the database dropped, e.g. after a restart.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE: a writing transaction takes the write lock up front instead of failing with
    # "database is locked" when it upgrades from reading; timeout: wait for it instead.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 30})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Django's default sends server errors only to ADMINS by mail when DEBUG is off, so a 500 would leave
# no trace; stderr is gunicorn's error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": env.str("DJANGO_LOG_LEVEL", default="WARNING")}},
}

STATIC_URL = "static/"
# Project-wide static files: vendored libraries (static/vendor/README.md says where each comes from).
STATICFILES_DIRS = [BASE_DIR / "static"]
# whitenoise serves static files under gunicorn (admin, Swagger UI from the sidecar); finders
# let it serve them straight from the apps, so no collectstatic step is needed to run.
# DJANGO_STATIC_ROOT is only needed for collectstatic.
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = True

IDENTITY_MATCH_PHONE = env.bool("IDENTITY_MATCH_PHONE", default=False)
IDENTIFIER_BLOCKLIST = env.list("IDENTIFIER_BLOCKLIST", default=[])
# An offline import into an empty profile store, or a rebuild, of up to this many records is
# resolved in memory (users_app.first_load), about 800 bytes per record; 0 turns that off.
FIRST_LOAD_MAX_RECORDS = env.int("FIRST_LOAD_MAX_RECORDS", default=1_000_000)
# Its own prefix keeps these hashes apart from everything else Django derives from SECRET_KEY.
PII_HASH_KEY = env.str("PII_HASH_KEY", default="") or f"pii-hash-key:{SECRET_KEY}"

# Files uploaded on the admin's import page are streamed here (not to memory nor the system temp
# dir, often RAM-backed) and deleted once imported.
IMPORT_UPLOAD_DIR = Path(env.str("IMPORT_UPLOAD_DIR", default=str(BASE_DIR / "uploads")))

# Requests larger than this are refused with 413 before they are read (the batch route's limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users_app.access.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Safe default for any new view: personal data, so a read key or staff.
    "DEFAULT_PERMISSION_CLASSES": ["users_app.access.CanReadPersonalData"],
    "DEFAULT_THROTTLE_CLASSES": ["users_app.access.ReadRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "analytics_site.api.ApiAutoSchema",
    "EXCEPTION_HANDLER": "analytics_site.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
API_RATE_LIMITS = {
    "ingest": env.str("API_RATE_INGEST", default="60000/min"),
    "read": env.str("API_RATE_READ", default="12000/min"),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Audience analytics API",
    "DESCRIPTION": (
        "Records in, one profile per person out. The seed's routes (/api/ingest, /api/user, "
        "/api/cohort/user) keep their shapes; /api/v1/ holds the resources. Send "
        "`Authorization: Bearer <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "analytics_site.api.empty_query_values_mean_no_filter",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ImportRunStatusEnum": "users_app.models.ImportRun.Status",
        "IngestStatusEnum": "users_app.serializers.INGEST_STATUSES",
        # Two choice sets share the field name "kind": identifiers keep the name they had before decisions came.
        "KindEnum": "users_app.models.IdentifierKind",
        "LinkDecisionKindEnum": "users_app.models.LinkDecision.Kind",
        "HeldLinkReasonEnum": "users_app.models.HeldLink.Reason",
    },
}
