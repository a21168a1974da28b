"""Who may call the API: bearer keys with a scope, staff sessions, and per-client rate limits.

Keys look like ``ak_<prefix>_<secret>``; only the sha256 of the whole key is stored, and the
prefix finds the row. Ingest keys can only ingest; personal data needs a read key or a staff
session. Nothing but the health check answers anonymously.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from .models import ApiKey

KEY_START = "ak_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, name: str, scope: str) -> tuple[ApiKey, str]:
    """A new key and its one-time plain text."""
    prefix = secrets.token_hex(5)
    key = f"{KEY_START}{prefix}_{secrets.token_urlsafe(32)}"
    return ApiKey.objects.create(name=name, scope=scope, prefix=prefix, key_hash=_digest(key)), key


def api_key_lookup(key: str) -> ApiKey | None:
    if not key.startswith(KEY_START) or key.count("_") < 2:
        return None
    prefix = key[len(KEY_START) :].split("_", 1)[0]
    found = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if found is None or not hmac.compare_digest(found.key_hash, _digest(key)):
        return None
    return found


@dataclass(frozen=True)
class KeyUser:
    """The request's user when it came with a key: authenticated, never staff."""

    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return f"key:{self.key.pk}"

    def __str__(self) -> str:
        return f"API key {self.key.name}"


class BearerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.")
        key = api_key_lookup(header[1])
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        touch_key(key)
        return KeyUser(key), key

    def authenticate_header(self, request):
        return self.keyword


def _key_scope(request) -> str | None:
    return request.auth.scope if isinstance(request.auth, ApiKey) else None


def _is_staff(request) -> bool:
    return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class CanIngest(permissions.BasePermission):
    message = "Ingesting records needs an ingest key (or a staff login)."

    def has_permission(self, request, view):
        return _key_scope(request) == ApiKey.Scope.INGEST or _is_staff(request)


class CanReadPersonalData(permissions.BasePermission):
    message = "Reading personal data needs a read key (or a staff login)."

    def has_permission(self, request, view):
        return _key_scope(request) == ApiKey.Scope.READ or _is_staff(request)


class ClientRateThrottle(throttling.SimpleRateThrottle):
    """Requests per key (or per staff user, or per address), with the rate read at request time.

    A fixed-window counter: one cache increment per request. DRF's own throttle keeps (and pickles
    into the cache) the time of every request in the window, so at 60,000/min each request copied a
    list of up to 60,000 floats; under load that was most of a request's time.
    """

    def get_rate(self):
        return settings.API_RATE_LIMITS.get(self.scope)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        window_key = f"{key}:{window}"
        self.cache.add(window_key, 0, self.duration + 1)
        try:
            count = self.cache.incr(window_key)
        except ValueError:  # expired between add and incr
            self.cache.set(window_key, 1, self.duration + 1)
            count = 1
        self.wait_seconds = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class IngestRateThrottle(ClientRateThrottle):
    scope = "ingest"


class ReadRateThrottle(ClientRateThrottle):
    scope = "read"


def touch_key(key: ApiKey) -> None:
    """Record use at most once a minute per key, so busy keys do not write on every request."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
