"""Aging: open balances by how long past due, as of any date, by customer,
collector or currency.

A balance as of a past date needs the balance history, so every change is kept
as a signed amount on the date it took effect (its "effective date"):

- issued: +amount on `issued_on`;
- payment: −amount on `paid_on` (a payment known later still counts on the
  day it was made);
- write-off, dispute adjustment: the change on the day it was recorded, in the
  customer's time zone;
- reassignment: the balance moves from one collector to the other that day.

`rm_aging_totals` holds the sums over all dates, per due date: the report as of
today, or any date after the last change, reads only it. As of an earlier date
the changes dated after it are subtracted (`rm_aging_changes`). Both tables are
aggregated by due date, never per receivable, so the report's cost follows the
number of distinct due dates (and groups), not the number of receivables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from collections_es.domain.receivable import Receivable

from . import rows as rowlib
from .base import Item, Projection, metadata

DIMENSIONS: tuple[str, ...] = ("currency", "customer", "collector")
BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("current", -(10**6), 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("181-365", 181, 365),
    ("365+", 366, None),
)
BUCKET_NAMES: tuple[str, ...] = tuple(b[0] for b in BUCKETS)

items = sa.Table(
    "rm_aging_items",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(128), nullable=False),
    sa.Column("collector", sa.String(128), nullable=False),  # "" when unassigned
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("issued_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("paid", sa.BigInteger, nullable=False),  # minor units
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("last_paid_on", sa.Date, nullable=True),
)

totals = sa.Table(
    "rm_aging_totals",
    metadata,
    sa.Column("dim", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("due_on", sa.Date, primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

changes = sa.Table(
    "rm_aging_changes",
    metadata,
    sa.Column("dim", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("due_on", sa.Date, primary_key=True),
    sa.Column("effective_on", sa.Date, primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Index("ix_rm_aging_changes_dim_effective", "dim", "effective_on"),
)


def _keys(item: dict[str, Any]) -> dict[str, str]:
    return {"currency": "", "customer": item["customer_id"], "collector": item["collector"]}


class Aging(Projection):
    name = "aging"
    tables = (items, totals, changes)

    @property
    def handles(self) -> Sequence[type]:
        return (
            Receivable.Issued,
            Receivable.PaymentRecorded,
            Receivable.WriteOffApproved,
            Receivable.DisputeResolved,
            Receivable.CollectorAssigned,
        )

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        known = rowlib.load(conn, items, {str(e.originator_id) for e, _ in batch if not isinstance(e, Receivable.Issued)})
        existing = set(known)
        deltas: dict[tuple[str, str, str, date, date], list[int]] = defaultdict(lambda: [0, 0])

        def change(item: dict[str, Any], on: date, balance: int, count: int, only: str | None = None) -> None:
            for dim, key in _keys(item).items():
                if only is None or dim == only:
                    cell = deltas[(dim, key, item["currency"], item["due_on"], on)]
                    cell[0] += balance
                    cell[1] += count

        for event, _ in batch:
            rid = str(event.originator_id)
            if isinstance(event, Receivable.Issued):
                amount = rowlib.to_minor(event.amount, event.currency)
                item = known[rid] = {
                    "id": rid,
                    "customer_id": event.customer_id,
                    "collector": event.collector or "",
                    "currency": event.currency,
                    "timezone": event.timezone,
                    "issued_on": event.issued_on,
                    "due_on": event.due_on,
                    "paid": 0,
                    "balance": amount,
                    "last_paid_on": None,
                }
                change(item, event.issued_on, amount, 1)
                continue
            item = known[rid]
            today = rowlib.local_date(event.timestamp, item["timezone"])
            before = item["balance"]
            if isinstance(event, Receivable.PaymentRecorded):
                amount = rowlib.to_minor(event.amount, item["currency"])
                on = max(event.paid_on, item["issued_on"])
                item["paid"] += amount
                item["balance"] -= amount
                item["last_paid_on"] = max(on, item["last_paid_on"] or on)
                change(item, on, -amount, 0)
                if before > 0 and item["balance"] == 0:
                    change(item, item["last_paid_on"], 0, -1)  # settled once the last of the money came in
            elif isinstance(event, Receivable.WriteOffApproved):
                item["balance"] = 0
                change(item, today, -before, -1 if before > 0 else 0)
            elif isinstance(event, Receivable.DisputeResolved):
                if event.adjusted_amount is None:
                    continue
                after = rowlib.to_minor(event.adjusted_amount, item["currency"]) - item["paid"]
                item["balance"] = after
                change(item, today, after - before, (after > 0) - (before > 0))
            elif isinstance(event, Receivable.CollectorAssigned):
                new = event.collector or ""
                if new == item["collector"]:
                    continue
                change(item, today, -before, -1 if before > 0 else 0, only="collector")
                item["collector"] = new
                change(item, today, before, 1 if before > 0 else 0, only="collector")

        rowlib.save(conn, items, known, existing)
        change_rows = [
            {"dim": d, "key": k, "currency": c, "due_on": due, "effective_on": on, "balance": b, "count": n}
            # Every cell an event touched is written, even when its changes cancel out in
            # this batch, so the rows do not depend on where batches end (rebuild == live).
            for (d, k, c, due, on), (b, n) in deltas.items()
        ]
        summed: dict[tuple[str, str, str, date], list[int]] = defaultdict(lambda: [0, 0])
        for row in change_rows:
            cell = summed[(row["dim"], row["key"], row["currency"], row["due_on"])]
            cell[0] += row["balance"]
            cell[1] += row["count"]
        rowlib.add(conn, changes, ["dim", "key", "currency", "due_on", "effective_on"], ["balance", "count"], change_rows)
        rowlib.add(
            conn,
            totals,
            ["dim", "key", "currency", "due_on"],
            ["balance", "count"],
            [{"dim": d, "key": k, "currency": c, "due_on": due, "balance": b, "count": n} for (d, k, c, due), (b, n) in summed.items()],
        )


# ---- queries -----------------------------------------------------------------


def _bucket_case(due_on: sa.ColumnElement[Any], as_of: date) -> sa.ColumnElement[str]:
    """The bucket of a due date as of `as_of`, in SQL: date bounds, so both databases agree."""
    # In order, the first that holds: days past due <= high  ⇔  due_on >= as_of − high.
    whens = [(due_on >= as_of - timedelta(days=high), name) for name, _low, high in BUCKETS[:-1] if high is not None]
    return sa.case(*whens, else_=BUCKETS[-1][0])


def balances_as_of(
    conn: sa.Connection, dim: str, as_of: date, *, currency: str | None = None, by: str = "due_on"
) -> dict[tuple[str, str, Any], tuple[int, int]]:
    """(key, currency, due date or bucket) → (balance in minor units, open receivables)
    as of the end of `as_of`: all changes less those dated after it, summed in SQL."""
    t, c = totals.c, changes.c
    t_by = t.due_on if by == "due_on" else _bucket_case(t.due_on, as_of)
    c_by = c.due_on if by == "due_on" else _bucket_case(c.due_on, as_of)
    now = (
        sa.select(t.key, t.currency, t_by.label("by"), sa.func.sum(t.balance), sa.func.sum(t.count))
        .where(t.dim == dim)
        .group_by(t.key, t.currency, t_by)
    )
    later = (
        sa.select(c.key, c.currency, c_by.label("by"), sa.func.sum(c.balance), sa.func.sum(c.count))
        .where(c.dim == dim, c.effective_on > as_of)
        .group_by(c.key, c.currency, c_by)
    )
    if currency:
        now = now.where(t.currency == currency)
        later = later.where(c.currency == currency)
    result: dict[tuple[str, str, Any], list[int]] = {}
    for key, cur, at, balance, count in conn.execute(now):
        result[(key, cur, at)] = [int(balance), int(count)]
    for key, cur, at, balance, count in conn.execute(later):
        cell = result.setdefault((key, cur, at), [0, 0])
        cell[0] -= int(balance)
        cell[1] -= int(count)
    return {k: (b, n) for k, (b, n) in result.items() if b or n}


def report(conn: sa.Connection, as_of: date, *, group_by: str = "currency", currency: str | None = None) -> dict[str, Any]:
    """The aging report: totals per currency (never adding currencies) and per group.
    The database buckets and sums; Python sees at most groups × buckets rows."""
    per_currency: dict[str, dict[str, list[int]]] = {}
    per_group: dict[tuple[str, str], dict[str, list[int]]] = {}
    for (key, cur, bucket), (balance, count) in balances_as_of(conn, group_by, as_of, currency=currency, by="bucket").items():
        for table, name in ((per_currency, cur), (per_group, (key, cur))):
            cells = table.setdefault(name, {b: [0, 0] for b in BUCKET_NAMES})  # type: ignore[attr-defined]
            cells[bucket][0] += balance
            cells[bucket][1] += count

    def summary(cur: str, cells: dict[str, list[int]]) -> dict[str, Any]:
        return {
            "currency": cur,
            "count": sum(n for _, n in cells.values()),
            "balance": rowlib.from_minor(sum(b for b, _ in cells.values()), cur),
            "buckets": [
                {"bucket": name, "count": cells[name][1], "balance": rowlib.from_minor(cells[name][0], cur)}
                for name in BUCKET_NAMES
            ],
        }

    if currency and currency not in per_currency:
        per_currency[currency] = {b: [0, 0] for b in BUCKET_NAMES}  # asked for: reported, at zero
    currency_totals = [summary(cur, per_currency[cur]) for cur in sorted(per_currency)]
    if group_by == "currency":
        groups = [{"key": t["currency"], **t} for t in currency_totals if t["count"] or t["balance"]]
    else:
        groups = [{"key": key or None, **summary(cur, per_group[(key, cur)])} for key, cur in sorted(per_group)]
    # One set of buckets only when one currency is in scope: currencies are never added.
    single = currency_totals[0] if len(currency_totals) == 1 else None
    return {
        "as_of": as_of,
        "group_by": group_by,
        "currency": single["currency"] if single else None,
        "buckets": single["buckets"] if single else None,
        "totals": currency_totals,
        "groups": groups,
    }
