"""The audit log: who created or revoked a key, exported people or erased one, and when.

Events are only ever added (the admin shows them read-only). ``actor`` names who acted in one of
three forms, so the log reads the same whoever wrote it: ``user:<username>`` for a staff login,
``key:<name> (<prefix>)`` for an API key, ``cli:<os user>`` for a management command.
"""

from __future__ import annotations

import getpass

from .models import ApiKey, AuditEvent

SUMMARY_LENGTH = AuditEvent._meta.get_field("summary").max_length


def audit_record(*, actor: str, action: str, summary: str, details: dict | None = None) -> AuditEvent:
    """Add one event; ``action`` is one of ``AuditEvent.Action`` (an unknown one is a ValueError)."""
    if action not in AuditEvent.Action.values:
        raise ValueError(f"Unknown audit action {action!r}; expected one of {', '.join(AuditEvent.Action.values)}.")
    return AuditEvent.objects.create(
        actor=actor[: AuditEvent._meta.get_field("actor").max_length],
        action=action,
        summary=summary[:SUMMARY_LENGTH],
        details=details or {},
    )


def key_actor(key: ApiKey) -> str:
    return f"key:{key.name} ({key.prefix})"


def request_actor(request) -> str:
    """Who made a request: its API key, else its logged-in user."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return key_actor(auth)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.get_username()}"
    return "anonymous"


def command_actor() -> str:
    """The operating-system user running a management command (the closest thing to a who there is)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid, e.g. in some containers
        return "cli:unknown"
