"""Who may call the API: bearer keys with a scope, staff sessions, and per-client rate limits.

Keys look like ``ak_<prefix>_<secret>``; only the sha256 of the whole key is stored, and the
prefix finds the row. Ingest keys can only ingest; personal data needs a read key or a staff
session; erasing a person needs an erase key (which can do nothing else) or a staff login with the
permission to delete profiles. Link decisions (approve or reject a held link, split a profile, reverse
a decision) need a govern key or a staff login with the permission the admin asks for them; a govern
key also reads the review queue and the decisions, and nothing else. Nothing but the health check
answers anonymously.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import Col
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from .audit import audit_record
from .models import ApiKey, AuditEvent

KEY_START = "ak_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, name: str, scope: str, mask_pii: bool = False, actor: str = "system") -> tuple[ApiKey, str]:
    """A new key and its one-time plain text; the audit log records who made it."""
    prefix = secrets.token_hex(5)
    plain = f"{KEY_START}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, scope=scope, mask_pii=mask_pii, prefix=prefix, key_hash=_digest(plain))
    key.full_clean()
    key.save()
    masked = ", personal data masked" if mask_pii else ""
    audit_record(
        actor=actor,
        action=AuditEvent.Action.KEY_CREATED,
        summary=f"Created {scope} key '{name}' ({prefix}){masked}",
        details={"key_id": key.pk, "prefix": prefix, "scope": scope, "mask_pii": mask_pii},
    )
    return key, plain


@transaction.atomic
def api_key_revoke(*, keys: QuerySet[ApiKey], actor: str) -> int:
    """Revoke the keys not revoked yet, each with an audit event; how many were."""
    revoking = list(keys.select_for_update().filter(revoked_at__isnull=True))
    ApiKey.objects.filter(pk__in=[key.pk for key in revoking]).update(revoked_at=timezone.now())
    for key in revoking:
        audit_record(
            actor=actor,
            action=AuditEvent.Action.KEY_REVOKED,
            summary=f"Revoked {key.scope} key '{key.name}' ({key.prefix})",
            details={"key_id": key.pk, "prefix": key.prefix},
        )
    return len(revoking)


@transaction.atomic
def api_key_set_masking(*, key: ApiKey, mask_pii: bool, actor: str) -> None:
    """Turn masking of personal data on or off for a key, with an audit event when it changes."""
    if key.mask_pii == mask_pii:
        return
    key.mask_pii = mask_pii
    key.full_clean()
    key.save(update_fields=["mask_pii"])
    audit_record(
        actor=actor,
        action=AuditEvent.Action.KEY_CHANGED,
        summary=f"{'Masked' if mask_pii else 'Unmasked'} personal data for key '{key.name}' ({key.prefix})",
        details={"key_id": key.pk, "prefix": key.prefix, "mask_pii": mask_pii},
    )


_KEY_FIELDS = [field.attname for field in ApiKey._meta.concrete_fields]


@functools.cache
def _key_statement(vendor: str) -> tuple[str, list[tuple[int, Callable, Col]]]:
    """The active-key lookup by prefix, and what its row needs to become field values (SQLite's
    datetimes come back as text), worked out once per kind of database as Django's compiler
    would for every query."""
    quote = connection.ops.quote_name
    fields = ApiKey._meta.concrete_fields
    statement = (
        f"SELECT {', '.join(quote(field.column) for field in fields)} FROM {quote(ApiKey._meta.db_table)} "
        "WHERE prefix = %s AND revoked_at IS NULL"
    )
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(ApiKey._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
            converters.append((position, convert, column))
    return statement, converters


def api_key_lookup(key: str) -> ApiKey | None:
    if not key.startswith(KEY_START) or key.count("_") < 2:
        return None
    prefix = key[len(KEY_START) :].split("_", 1)[0]
    # Every request with a key runs this: through a plain cursor it skips the ORM's query
    # building and a raw queryset's column mapping, each of which cost more than the round trip.
    statement, converters = _key_statement(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(statement, [prefix])
        row = cursor.fetchone()
    found = None
    if row is not None:
        values = list(row)
        for position, convert, column in converters:
            values[position] = convert(values[position], column, connection)
        found = ApiKey.from_db(connection.alias, _KEY_FIELDS, values)
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


class CanErase(permissions.BasePermission):
    message = "Erasing a person needs an erase key (or a staff login allowed to delete profiles)."

    def has_permission(self, request, view):
        if _key_scope(request) == ApiKey.Scope.ERASE:
            return True
        # Not every staff member: erasure cannot be undone, so it takes the model permission too.
        return _is_staff(request) and request.user.has_perm("users_app.delete_profile")


# What the admin's review queue and split page, and the API, ask of staff who decide links.
DECIDE_PERMISSION = "users_app.add_linkdecision"


class CanGovern(permissions.BasePermission):
    message = (
        "Deciding links (approve, reject, split, re-link) needs a govern key "
        "(or a staff login allowed to add link decisions)."
    )

    def has_permission(self, request, view):
        if _key_scope(request) == ApiKey.Scope.GOVERN:
            return True
        # The admin's rule: a decision re-resolves people, so staff need the permission to take one.
        return _is_staff(request) and request.user.has_perm(DECIDE_PERMISSION)


class CanReadLinks(permissions.BasePermission):
    """The review queue and the decisions: what a reviewer (govern key) reads before deciding."""

    message = "Reading held links and link decisions needs a read or govern key (or a staff login)."

    def has_permission(self, request, view):
        return _key_scope(request) in (ApiKey.Scope.READ, ApiKey.Scope.GOVERN) or _is_staff(request)


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
