"""One bulk writer at a time (CSV import, rebuild), released even when the process is killed.

PostgreSQL: a session-level advisory lock, dropped with the connection. SQLite: an ``flock`` on a
file beside the database, dropped with the process. A second writer is refused, or with ``wait``
queues until the first is done.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable
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
def exclusive_writer(purpose: str, *, wait: bool = False, on_wait: Callable[[], None] | None = None):
    """Hold the writer lock for the block. Busy: raise WriterBusy, or with ``wait`` call ``on_wait``
    (to tell the user) and block until the other writer is done."""
    busy = WriterBusy(
        f"Another import or rebuild is running; {purpose} refused. Wait for it to finish and run this again."
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            if not cursor.fetchone()[0]:
                if not wait:
                    raise busy
                if on_wait:
                    on_wait()
                cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
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
            if not wait:
                raise busy from None
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
