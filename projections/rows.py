"""Bulk helpers for projections that keep one row of state per aggregate.

A batch loads the rows its events touch in one query, evolves them in memory
and writes them back with one executemany per statement shape, which is what
lets a rebuild run at tens of thousands of events a second.

Money in read models is an integer count of the currency's minor units
(ADR 0011): exact in SQLite, whose numbers are otherwise binary floats, and in
SQL sums on both databases.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from collections_es.domain.money import minor_units

CHUNK = 500


def to_minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(minor_units(currency)).to_integral_value())


def from_minor(value: int, currency: str) -> Decimal:
    return Decimal(int(value)).scaleb(-minor_units(currency))


def naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def local_date(at: datetime, timezone: str) -> date:
    return at.astimezone(_zone(timezone)).date()


_zones: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _zones.get(name)
    if zone is None:
        zone = _zones[name] = ZoneInfo(name)
    return zone


def _chunks(values: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def select_in(conn: sa.Connection, table: sa.Table, key: str, values: Iterable[Any]) -> list[dict[str, Any]]:
    """Every row whose `key` column is one of `values` (queried in chunks)."""
    wanted = sorted(set(values))
    column = table.c[key]
    return [
        dict(row._mapping) for chunk in _chunks(wanted) for row in conn.execute(sa.select(table).where(column.in_(chunk)))
    ]


def load(conn: sa.Connection, table: sa.Table, ids: Iterable[str], key: str = "id") -> dict[str, dict[str, Any]]:
    """The rows with these keys, as dicts by key."""
    return {row[key]: row for row in select_in(conn, table, key, ids)}


def save(conn: sa.Connection, table: sa.Table, rows: dict[str, dict[str, Any]], existing: set[str], key: str = "id") -> None:
    """Insert the new rows, update the existing ones (whole rows, one executemany each)."""
    inserts = [row for k, row in rows.items() if k not in existing]
    updates = [row for k, row in rows.items() if k in existing]
    if inserts:
        conn.execute(table.insert(), inserts)
    if updates:
        columns = [c.name for c in table.columns if c.name != key]
        statement = (
            table.update()
            .where(table.c[key] == sa.bindparam("_key"))
            .values({name: sa.bindparam(name) for name in columns})
        )
        conn.execute(statement, [{"_key": row[key], **{c: row[c] for c in columns}} for row in updates])


def add(conn: sa.Connection, table: sa.Table, keys: list[str], sums: list[str], rows: list[dict[str, Any]]) -> None:
    """Add each row's `sums` columns into the row with the same `keys` (created at zero)."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: table.c[name] + statement.excluded[name] for name in sums}
    )
    conn.execute(statement, rows)


def upsert(conn: sa.Connection, table: sa.Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert or replace rows by their `keys`."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(table)
    others = [c.name for c in table.columns if c.name not in keys]
    statement = statement.on_conflict_do_update(index_elements=keys, set_={n: statement.excluded[n] for n in others})
    conn.execute(statement, rows)
