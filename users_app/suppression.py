"""The suppression list: identifiers of people erased on request, kept only as salted hashes.

``resolve_records`` (the one resolver behind CSV import, API ingestion and rebuild) asks
``suppressed_identifiers`` about each batch: one lookup for all of the batch's identifiers, and a
record holding any suppressed one is dropped and counted instead of bringing the person back.

A hash is HMAC-SHA256 of ``kind:value`` (the normalized value, as ``normalize.parse_record`` gives
it) under ``settings.PII_HASH_KEY``: without the key, the list cannot be checked against a list of
guessed emails. Rotating the key forgets every suppression.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings

from . import bulk
from .models import Suppression


@lru_cache(maxsize=4)
def _keyed(key: str) -> hmac.HMAC:
    # The HMAC state after the key: copying it costs a third of starting from the key each time,
    # which is most of the check's cost for a batch of thousands of records.
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def identifier_hashes(identifiers: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The suppression list's hash of each (kind, normalized value) pair -> the pair."""
    keyed = _keyed(settings.PII_HASH_KEY)
    hashes = {}
    for kind, value in identifiers:
        state = keyed.copy()
        state.update(f"{kind}:{value}".encode())
        hashes[state.hexdigest()] = (kind, value)
    return hashes


def identifier_hash(kind: str, value: str) -> str:
    """The suppression list's hash of one normalized identifier."""
    (value_hash,) = identifier_hashes([(kind, value)])
    return value_hash


def suppressed_identifiers(identifiers: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of the (kind, normalized value) pairs that are suppressed: one probe while the list is empty,
    then one lookup for all the pairs."""
    identifiers = list(identifiers)
    # Most databases have never erased anyone: one indexed probe then spares hashing every
    # identifier of the batch and sending the hashes over.
    if not identifiers or not Suppression.objects.exists():
        return set()
    by_hash = identifier_hashes(identifiers)
    rows = bulk.rows_matching(Suppression, ["value_hash", "kind"], "value_hash", list(by_hash))
    return {by_hash[value_hash] for value_hash, kind in rows if by_hash[value_hash][0] == kind}


def suppressions_add(*, identifiers: Iterable[tuple[str, str]]) -> int:
    """Suppress the (kind, normalized value) pairs; how many were not suppressed already."""
    wanted = set(identifiers)
    new = wanted - suppressed_identifiers(wanted)
    # A concurrent erasure may record one of them first: the row would be the same, so keep theirs.
    Suppression.objects.bulk_create(
        [Suppression(kind=kind, value_hash=value_hash) for value_hash, (kind, value) in identifier_hashes(new).items()],
        ignore_conflicts=True,
    )
    return len(new)
