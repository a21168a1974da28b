"""The bad input corpus: malformed CSV files built at test time, and a full snapshot of the data tables.

Nothing big is committed: each file is made by a small builder (a 10 MB line is written in the
test's tmp_path). ``UNUSABLE_FILES`` are refused as a whole, with the importer's message;
``seed_existing_data`` puts some people, an import run and a reject in the database first, so that
"the database is exactly as it was" is checked against real rows, not against an empty database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps

from tests.builders import ingest, record, write_csv
from users_app.importing import MAX_COLUMNS, csv_import

MEGABYTE = 1024 * 1024
HEADER = "cookie,email,created_at,country,interests\n"
GOOD_ROW = "good-cookie,good@example.com,1/1/2025 0:00,India,Tech\n"

# Not data: a key's last use changes with any request, and the audit trail records who did what,
# refused or not. Every other table of users_app and cohorts_app is compared row by row.
VOLATILE_MODELS = {"ApiKey", "AuditEvent"}


@dataclass(frozen=True)
class BadFile:
    id: str
    build: object  # () -> bytes
    message: str  # what the importer's error says, after "<file name>: "

    def write(self, folder: Path, name: str = "bad.csv") -> Path:
        path = folder / name
        path.write_bytes(self.build())
        return path


def _binary_junk() -> bytes:
    noise = random.Random(6).randbytes(4096)
    return b"\x1f\x8b\x08\x00" + noise  # a gzip header, then noise: a compressed export sent as is


def _ten_mb_single_line() -> bytes:
    return b"a" * (10 * MEGABYTE)  # no newline, no comma: one 10 MB header cell


def _ten_mb_of_commas() -> bytes:
    return b"," * (10 * MEGABYTE)  # one line of ~10 million empty columns


def _wide_header() -> bytes:
    header = ",".join(["cookie", "created_at", *(f"column_{n}" for n in range(4998))])
    return (header + "\n" + "A,1/1/2025 0:00" + "," * 4998 + "\n").encode()


UNUSABLE_FILES = [
    BadFile("empty", lambda: b"", "the file is empty."),
    BadFile("bom-only", lambda: b"\xef\xbb\xbf", "the first line is not a CSV header."),
    BadFile("blank-lines-only", lambda: b"\n\r\n\n", "the first line is not a CSV header."),
    BadFile("header-only", HEADER.encode, "the header is not followed by any row."),
    BadFile("header-then-blank-lines", lambda: (HEADER + "\n\n").encode(), "the header is not followed by any row."),
    BadFile(
        "latin-1",
        lambda: (HEADER + GOOD_ROW + "josé,jose@example.com,1/1/2025 0:00,Spain,\n").encode("latin-1"),
        "line 3 is not valid UTF-8",
    ),
    BadFile("utf-16-with-bom", lambda: (HEADER + GOOD_ROW).encode("utf-16"), "line 1 is not valid UTF-8"),
    BadFile("utf-16-without-bom", lambda: (HEADER + GOOD_ROW).encode("utf-16-le"), "line 1 contains a NUL character"),
    BadFile(
        "nul-in-a-row", lambda: (HEADER + GOOD_ROW + "a\x00b,,1/1/2025 0:00,,\n").encode(), "line 3 contains a NUL"
    ),
    BadFile("binary-junk", _binary_junk, "line 1 is not valid UTF-8"),
    BadFile(
        "png-image", lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "line 1 is not valid UTF-8"
    ),
    BadFile(
        "10-mb-single-line",
        _ten_mb_single_line,
        "the header has no cookie or email nor created_at column. Expected columns: cookie, email",
    ),
    BadFile(
        "10-mb-line-of-commas",
        _ten_mb_of_commas,
        f"the header has {10 * MEGABYTE + 1} columns; at most {MAX_COLUMNS} are accepted.",
    ),
    BadFile("5000-columns", _wide_header, f"the header has 5000 columns; at most {MAX_COLUMNS} are accepted."),
    BadFile(
        "no-identifier-columns",
        lambda: b"email_hash,phone,created_at\nabc,+15551234567,1/1/2025 0:00\n",
        "the header has no cookie or email column.",
    ),
    BadFile(
        "no-created-at-column",
        lambda: b"cookie,email\nA,a@example.com\n",
        "the header has no created_at column.",
    ),
    BadFile(
        "json-not-csv",
        lambda: b'{"cookie": "A", "created_at": "1/1/2025 0:00"}\n',
        "the header has no cookie or email nor created_at column.",
    ),
    BadFile(
        "duplicate-columns",
        lambda: b"cookie,e-mail,email,created_at\nA,,,1/1/2025 0:00\n",
        "the header names the column 'email' twice.",
    ),
]


def seed_existing_data(folder: Path) -> None:
    """People, a merge, interests, a completed import run with a reject: what a live database holds."""
    ingest(
        record(cookie="seed-a", email="seed@example.com", interests="Tech|Travel", country="India"),
        record(cookie="seed-b", email="seed@example.com", age="40"),
        record(cookie="seed-c", email="other@example.com"),
        record(cookie="seed-c", email="bridge@example.com", interests="Gaming"),
    )
    path = write_csv(
        folder / "seed.csv",
        [record(cookie="seed-d", email="bridge@example.com"), record(cookie="", email=""), record(cookie="seed-e")],
    )
    summary = csv_import(path=path)
    assert (summary.accepted, summary.rejected) == (2, 1)


def data_snapshot() -> dict[str, list[dict]]:
    """Every row of every data table (ids and timestamps included), in primary-key order."""
    snapshot = {}
    for app in ("users_app", "cohorts_app"):
        for model in apps.get_app_config(app).get_models():
            if model._meta.proxy or model.__name__ in VOLATILE_MODELS:
                continue
            snapshot[model._meta.label] = list(model.objects.order_by("pk").values())
    return snapshot
