"""One bulk writer at a time (CSV import, rebuild), released even when the process is killed.

PostgreSQL: a session-level advisory lock, dropped with the connection. SQLite: an ``flock`` on a
file beside the database, dropped with the process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager

from django.db import connection

ADVISORY_LOCK_KEY = 0x5EED_1D  # any constant shared by every process of this application


class WriterBusy(RuntimeError):
    """Another import or rebuild holds the lock."""


def _lock_file_path() -> str:
    name = str(connection.settings_dict["NAME"])
    if os.path.isabs(name) and os.path.isdir(os.path.dirname(name)):
        return f"{name}.writer.lock"
    if name == ":memory:" or "mode=memory" in name:
        name += f":{os.getpid()}"  # an in-memory database lives in this process only
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"analytics-{digest}.writer.lock")


@contextmanager
def exclusive_writer(purpose: str):
    busy = WriterBusy(
        f"Another import or rebuild is running; {purpose} refused. Wait for it to finish and run this again."
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            if not cursor.fetchone()[0]:
                raise busy
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        return
    with open(_lock_file_path(), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
