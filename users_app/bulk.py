"""Bulk writes for the resolver: COPY on PostgreSQL, ``executemany`` elsewhere.

Django's ``bulk_create`` builds a model instance per row and compiles a statement around them,
which cost more than half of an import's time. The resolver knows its rows as plain tuples, so it
writes them here: rows stream into ``COPY ... FROM STDIN`` on PostgreSQL (the database's own bulk
load path) and into one prepared ``INSERT`` on SQLite. Ids come from the table's own sequence
beforehand (``allocate_ids``), so related rows can be written in any order inside the
transaction (foreign keys are checked at commit).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import orjson
from django.db import connection
from django.db.models import Model

# psycopg buffers COPY data itself; rows are handed over in blocks of this many.
COPY_BLOCK_ROWS = 2000
# Rows per UPDATE statement: PostgreSQL takes each column as one array, SQLite runs executemany.
UPDATE_CHUNK = 20000
# Well below SQLite's 999 bound parameters per statement.
SQLITE_IN_CHUNK = 900


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _columns(model: type[Model], names: Sequence[str]) -> list:
    return [model._meta.pk if name == "pk" else model._meta.get_field(name) for name in names]


def allocate_ids(model: type[Model], count: int) -> list[int]:
    """``count`` new primary keys for ``model``, reserved in the database's own id sequence.

    Call inside the transaction that inserts the rows. PostgreSQL sequences never hand a value out
    twice; SQLite has one writer at a time (its transactions here begin IMMEDIATE), so the next ids
    after the largest one ever used are this transaction's.
    """
    if count == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
            f"coalesce((SELECT max(id) FROM {_table(model)}), 0))",
            [table],
        )
        last = cursor.fetchone()[0]
    return list(range(last + 1, last + 1 + count))


def _prepare(model: type[Model], names: Sequence[str], rows: Iterable[tuple]) -> Iterable[tuple]:
    """Python values -> what the driver takes: JSON as text everywhere, the rest as Django prepares it."""
    fields = _columns(model, names)
    json_positions = [i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"]
    if connection.vendor == "postgresql":
        # psycopg adapts str, int, datetime and None itself; only JSON needs turning into text.
        if not json_positions:
            return rows
        return (_with_json(row, json_positions) for row in rows)
    preps = [
        (lambda value: None if value is None else json.dumps(value))
        if i in json_positions
        else (lambda value, f=f: f.get_db_prep_save(value, connection))
        for i, f in enumerate(fields)
    ]
    return (tuple(prep(value) for prep, value in zip(preps, row, strict=True)) for row in rows)


def _with_json(row: tuple, positions: list[int]) -> tuple:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = _json_text(values[i])
    return tuple(values)


def _json_text(value) -> str:
    # orjson is ~10x faster than json, which was 5% of an import; it refuses what JSON allows but
    # it does not (integers beyond 64 bits), and json writes those. PostgreSQL stores jsonb, so
    # both spellings give the same value.
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def insert_rows(model: type[Model], names: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert ``rows`` (tuples in the order of the field ``names``) into ``model``'s table."""
    rows = iter(rows)
    head = list(itertools.islice(rows, 2))
    if not head:
        return 0  # no statement for nothing: single API records often have no interests or merges
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _columns(model, names))
    prepared = _prepare(model, names, itertools.chain(head, rows))
    count = 0
    with connection.cursor() as cursor:
        # COPY takes two round trips, an INSERT one: a single API record's rows go in by INSERT.
        if connection.vendor == "postgresql" and len(head) > 1:
            # psycopg's copy() is not behind Django's cursor wrapper: without this, a unique
            # violation from a concurrent writer would escape as psycopg's error instead of
            # IntegrityError, and the caller would not know to retry.
            with connection.wrap_database_errors, cursor.copy(f"COPY {_table(model)} ({columns}) FROM STDIN") as copy:
                for row in prepared:
                    copy.write_row(row)
                    count += 1
            return count
        placeholders = ", ".join(["%s"] * len(names))
        statement = f"INSERT INTO {_table(model)} ({columns}) VALUES ({placeholders})"
        if len(head) == 1:
            # psycopg runs executemany in pipeline mode: more round trips and code than execute for one row.
            cursor.execute(statement, next(iter(prepared)))
            return 1
        batch: list[tuple] = []
        for row in prepared:
            batch.append(row)
            if len(batch) >= UPDATE_CHUNK:
                cursor.executemany(statement, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(statement, batch)
            count += len(batch)
    return count


def update_rows(model: type[Model], names: Sequence[str], rows: Sequence[tuple]) -> None:
    """Set the fields ``names`` of existing rows; each row is ``(pk, *values)``. Rows that already
    hold those values are left alone (no new row version, no index work)."""
    if not rows:
        return
    fields = _columns(model, names)
    table = _table(model)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPDATE_CHUNK):
            chunk = list(_prepare(model, ["pk", *names], rows[start : start + UPDATE_CHUNK]))
            if connection.vendor == "postgresql":
                # One statement per chunk: each column travels as one typed array.
                pk = model._meta.pk
                typed = [(pk, "id"), *((f, f"v{i}") for i, f in enumerate(fields))]
                arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f, _ in typed)
                aliases = ", ".join(alias for _, alias in typed)
                assignments = ", ".join(f"{quote(f.column)} = v.v{i}" for i, f in enumerate(fields))
                changed = " OR ".join(
                    f"{table}.{quote(f.column)} IS DISTINCT FROM v.v{i}" for i, f in enumerate(fields)
                )
                cursor.execute(
                    f"UPDATE {table} SET {assignments} FROM unnest({arrays}) AS v({aliases}) "
                    f"WHERE {table}.{quote(pk.column)} = v.id AND ({changed})",
                    [list(column) for column in zip(*chunk, strict=True)],
                )
            else:
                assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
                changed = " OR ".join(f"{quote(f.column)} IS NOT %s" for f in fields)
                cursor.executemany(
                    f"UPDATE {table} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s AND ({changed})",
                    [(*row[1:], row[0], *row[1:]) for row in chunk],
                )


def rows_matching(
    model: type[Model],
    names: Sequence[str],
    column: str,
    values: Sequence,
    *,
    kind: str | None = None,
    lock: bool = False,
) -> list[tuple]:
    """``names`` of the rows whose ``column`` is one of ``values`` (and whose ``kind`` is ``kind``
    when given). ``lock`` takes their row locks on PostgreSQL, in primary key order so that
    concurrent writers queue up instead of deadlocking.

    PostgreSQL gets the values as one array parameter (``= ANY``) whatever their number; SQLite,
    with its bound-parameter limit, gets them in chunks.
    """
    quote = connection.ops.quote_name
    selected = ", ".join(quote(f.column) for f in _columns(model, names))
    pk = quote(model._meta.pk.column)
    kind_clause = f" AND {quote('kind')} = %s" if kind is not None else ""
    kind_params = [kind] if kind is not None else []
    target = quote(_columns(model, [column])[0].column)
    values = list(dict.fromkeys(values))
    if not values:
        return []
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT {selected} FROM {_table(model)} WHERE {target} = ANY(%s){kind_clause} "
                f"ORDER BY {pk}{' FOR UPDATE' if lock else ''}",
                [values, *kind_params],
            )
            return cursor.fetchall()
        for start in range(0, len(values), SQLITE_IN_CHUNK):
            chunk = list(values[start : start + SQLITE_IN_CHUNK])
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {selected} FROM {_table(model)} WHERE {target} IN ({placeholders}){kind_clause} ORDER BY {pk}",
                [*chunk, *kind_params],
            )
            rows.extend(cursor.fetchall())
    return rows


def analyze(*models: type[Model]) -> None:
    """Refresh the planner's statistics of tables a bulk load changed (PostgreSQL).

    Autovacuum would get there eventually (and is off on some servers); until it does, the
    planner takes a freshly loaded table for empty and picks plans accordingly.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(_table(model) for model in models)}")


def delete_rows(model: type[Model], column: str, values: Sequence) -> int:
    """Delete the rows whose ``column`` is one of ``values``. Plain DELETEs, no cascade: Django's
    collector would read every row first; callers delete the related rows themselves."""
    values = list(dict.fromkeys(values))
    table = _table(model)
    target = connection.ops.quote_name(_columns(model, [column])[0].column)
    deleted = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if values:
                cursor.execute(f"DELETE FROM {table} WHERE {target} = ANY(%s)", [values])
                deleted = cursor.rowcount
            return deleted
        for start in range(0, len(values), SQLITE_IN_CHUNK):
            chunk = values[start : start + SQLITE_IN_CHUNK]
            cursor.execute(f"DELETE FROM {table} WHERE {target} IN ({', '.join(['%s'] * len(chunk))})", chunk)
            deleted += cursor.rowcount
    return deleted


@contextmanager
def foreign_keys_set_aside(*models: type[Model]) -> Iterator[None]:
    """Drop the foreign keys from and to ``models``' tables, and add them back (checked against
    every row, in one scan each) on the way out. Inside the caller's transaction (PostgreSQL).

    Checking each row's foreign keys as it is written costs a quarter of a bulk load's time; one
    check of the finished tables costs about a second per million rows. The price: ALTER TABLE
    locks the tables (and those they refer to) until the transaction ends, so readers wait. If
    the body fails, or a row breaks a key, the transaction rolls back with the keys in place.
    Elsewhere (SQLite) it does nothing.
    """
    if connection.vendor != "postgresql":
        yield
        return
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        # ALTER TABLE refuses tables with checks still queued in this transaction: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND (conrelid = ANY(%s::regclass[]) OR confrelid = ANY(%s::regclass[])) "
            "ORDER BY 1, 2",
            [tables, tables],
        )
        keys = cursor.fetchall()
        quote = connection.ops.quote_name
        for table, name, _ in keys:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    yield
    with connection.cursor() as cursor:
        for table, name, definition in keys:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


@contextmanager
def indexes_set_aside(
    *models: type[Model], keep: Mapping[type[Model], str] | None = None, unique: bool = False
) -> Iterator[None]:
    """Drop the plain (non-unique) indexes of ``models``' tables and build them again on the way
    out, inside the caller's transaction (PostgreSQL). ``keep``: per model, a field whose indexes
    (those it leads) stay because the body looks rows up by it. Unique indexes stay unless
    ``unique``, for a body that neither looks rows up by them nor relies on them to refuse a
    repeat: building them again at the end checks every row all the same. Primary keys always stay.

    Building an index once over the finished table is a sort; keeping it up to date row by row
    costs a random page visit per row and index. If the body fails, or a row breaks a unique
    index, the transaction rolls back with the indexes in place. Elsewhere (SQLite) it does nothing.
    """
    if connection.vendor != "postgresql":
        yield
        return
    kept = {(model._meta.db_table, model._meta.get_field(name).column) for model, name in (keep or {}).items()}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, a.attname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), "
            "c.conname, pg_get_constraintdef(c.oid) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u' "
            "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary AND (NOT i.indisunique OR %s) "
            "ORDER BY 3",
            [[model._meta.db_table for model in models], unique],
        )
        # (DROP statement, statement that builds it again); a unique constraint goes through ALTER TABLE.
        statements = [
            (f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(constraint)}",
             f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(constraint)} {constraint_definition}")
            if constraint
            else (f"DROP INDEX {name}", definition)  # regclass text: quoted where it needs to be
            for table, column, name, definition, constraint, constraint_definition in cursor.fetchall()
            if (table, column) not in kept
        ]  # fmt: skip
        for drop, _ in statements:
            cursor.execute(drop)
    yield
    with connection.cursor() as cursor:
        for _, build in statements:
            cursor.execute(build)


def replace_values(model: type[Model], column: str, replacements: Mapping) -> None:
    """Set ``column`` to ``replacements[old]`` in the rows where it holds ``old``."""
    if not replacements:
        return
    field = _columns(model, [column])[0]
    table = _table(model)
    target = connection.ops.quote_name(field.column)
    pairs = list(replacements.items())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            kind = field.db_type(connection)
            cursor.execute(
                f"UPDATE {table} SET {target} = m.new FROM unnest(%s::{kind}[], %s::{kind}[]) AS m(old, new) "
                f"WHERE {table}.{target} = m.old",
                [[old for old, _ in pairs], [new for _, new in pairs]],
            )
            return
        cursor.executemany(f"UPDATE {table} SET {target} = %s WHERE {target} = %s", [(new, old) for old, new in pairs])
