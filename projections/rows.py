"""Bulk helpers for projections that keep one row of state per aggregate.

A batch loads the rows its events touch in one query, evolves them in memory
and writes them back with one executemany per statement shape, which is what
lets a rebuild run at tens of thousands of events a second.

Money in read models is an integer count of the currency's minor units
(ADR 0011): exact in SQLite, whose numbers are otherwise binary floats, and in
SQL sums on both databases. One amount fits a 64-bit integer (at most 10^12 in
a currency with four minor digits is 10^16), but a sum of many does not: columns
that add up many receivables are `Sum` and SQL sums are `exact_sum` (ADR 0060).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

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

    def plus(name: str) -> sa.ColumnElement[Any]:
        column, more = table.c[name], statement.excluded[name]
        if dialect is sqlite and isinstance(column.type, Sum):
            return sa.func.exact_add(column, more, type_=column.type)  # SQLite's + overflows into a float
        return column + more

    statement = statement.on_conflict_do_update(index_elements=keys, set_={name: plus(name) for name in sums})
    conn.execute(statement, rows)


# ---- sums that cannot overflow --------------------------------------------------


class Sum(sa.types.TypeDecorator[int]):
    """A sum of minor units over many receivables, exact however large: NUMERIC(38, 0) on
    PostgreSQL (bigint overflows at 9.2 × 10^18), decimal text on SQLite (whose integers are
    64-bit and whose NUMERIC is a binary float beyond them). Python sees an `int`.

    On SQLite, add with `rows.add` (which uses `exact_add`) and total with `exact_sum`, never
    with `+` or `sum()`."""

    impl = sa.Numeric(38, 0)
    cache_ok = True
    storage_checked = True  # a table made with another storage is outdated (projections.base)

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.Numeric(38, 0))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return str(int(value)) if dialect.name == "sqlite" else int(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> int | None:
        return None if value is None else int(value)


class exact_sum(GenericFunction[int]):  # noqa: N801 - an SQL function's name
    """SUM that neither overflows nor rounds: PostgreSQL's own `sum` (numeric for bigint and
    numeric arguments); on SQLite a Python aggregate over arbitrary-precision integers (its
    `sum` raises "integer overflow" beyond 2^63, its `total` rounds). Read it with `int()`."""

    type = Sum()
    inherit_cache = True


@compiles(exact_sum)
def _sum_elsewhere(element: exact_sum, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(exact_sum, "sqlite")
def _sum_on_sqlite(element: exact_sum, compiler: Any, **kw: Any) -> str:
    return f"exact_sum({compiler.process(element.clauses, **kw)})"


class _ExactSum:
    def __init__(self) -> None:
        self.total = 0
        self.seen = False

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += int(value)
            self.seen = True

    def finalize(self) -> str | None:
        return str(self.total) if self.seen else None


def _exact_add(a: Any, b: Any) -> str | None:
    if a is None or b is None:
        return None
    return str(int(a) + int(b))


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_functions(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection SQLAlchemy opens gets `exact_sum` and `exact_add`."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_aggregate("exact_sum", 1, _ExactSum)
        dbapi_connection.create_function("exact_add", 2, _exact_add, deterministic=True)


def upsert(conn: sa.Connection, table: sa.Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert or replace rows by their `keys`."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(table)
    others = [c.name for c in table.columns if c.name not in keys]
    statement = statement.on_conflict_do_update(index_elements=keys, set_={n: statement.excluded[n] for n in others})
    conn.execute(statement, rows)
