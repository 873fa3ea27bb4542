"""Collection KPIs: the facts they are computed from, and the formulas.

The projection records dated facts (issued, collected, settled, promise made /
kept / broken, written off, recovered), each credited to the collector
responsible when it happened. Receivables outstanding at the start and end of
a period come from the aging projection's balance history. The formulas and
their sources are in docs/kpis.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa

from collections_es.domain import lifecycle
from collections_es.domain.receivable import Receivable

from . import aging
from . import rows as rowlib
from .base import Item, Projection, metadata

items = sa.Table(
    "rm_kpi_items",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("collector", sa.String(128), nullable=False),  # "" when unassigned
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("issued_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("paid", sa.BigInteger, nullable=False),
    sa.Column("last_paid_on", sa.Date, nullable=True),
    # The promise or plan in force: total promised (minor units) and what was paid before it.
    sa.Column("promised", sa.BigInteger, nullable=True),
    sa.Column("promised_paid_before", sa.BigInteger, nullable=False),
    sa.Column("charges", sa.BigInteger, nullable=False, server_default="0"),  # interest and fees outstanding
)

facts = sa.Table(
    "rm_kpi_facts",
    metadata,
    sa.Column("receivable_id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("collector", sa.String(128), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("on", sa.Date, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),  # minor units; 0 where none
    sa.Column("days", sa.Integer, nullable=True),  # settled: days from issue to settlement
    sa.Column("days_late", sa.Integer, nullable=True),  # settled: days after the due date (0 if on time)
    sa.Index("ix_rm_kpi_facts_kind_on", "kind", "on"),
)

KINDS = ("issued", "collected", "settled", "promise_made", "promise_kept", "promise_broken", "written_off", "recovered")
#: Charges, kept apart from the principal (docs/charges.md): accrued, paid, waived, written off.
CHARGE_KINDS = ("charges_accrued", "charges_paid", "charges_waived", "charges_off")


class Kpis(Projection):
    """Facts are dated by one rule: a fact that names its day (`issued_on`, `paid_on`) on that day;
    any other on the company's calendar day (`timezone`, COLLECTIONS_TIMEZONE) of its instant, the
    calendar whose "today" ends the report's default period. Changing the company time zone
    takes a rebuild of this read model (`collections-es rebuild kpis`)."""

    name = "kpis"
    tables = (items, facts)

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone

    @property
    def handles(self) -> Sequence[type]:
        return (
            Receivable.Issued,
            Receivable.PaymentRecorded,
            Receivable.PromiseMade,
            Receivable.InstallmentPlanAgreed,
            Receivable.PromiseBroken,
            Receivable.PromiseKept,
            Receivable.WriteOffApproved,
            Receivable.DisputeResolved,
            Receivable.CollectorAssigned,
            Receivable.RecoveryRecorded,
            Receivable.ChargesAccrued,
            Receivable.ChargesWaived,
        )

    def apply_batch(self, conn: sa.Connection, batch: list[Item], prepared: Any) -> None:
        known = rowlib.load(conn, items, {str(e.originator_id) for e, _ in batch if not isinstance(e, Receivable.Issued)})
        existing = set(known)
        out: list[dict[str, Any]] = []

        def fact(item: dict[str, Any], event: Any, kind: str, on: date, amount: int = 0, **extra: Any) -> None:
            out.append(
                {
                    "receivable_id": item["id"],
                    "version": event.originator_version,
                    "kind": kind,
                    "collector": item["collector"],
                    "currency": item["currency"],
                    "on": on,
                    "amount": amount,
                    "days": extra.get("days"),
                    "days_late": extra.get("days_late"),
                }
            )

        for event, _ in batch:
            rid = str(event.originator_id)
            if isinstance(event, Receivable.Issued):
                item = known[rid] = {
                    "id": rid,
                    "collector": event.collector or "",
                    "currency": event.currency,
                    "timezone": event.timezone,
                    "issued_on": event.issued_on,
                    "due_on": event.due_on,
                    "paid": 0,
                    "last_paid_on": None,
                    "promised": None,
                    "promised_paid_before": 0,
                    "charges": 0,
                }
                fact(item, event, "issued", event.issued_on, rowlib.to_minor(event.amount, event.currency))
                continue
            item = known[rid]
            today = rowlib.local_date(event.timestamp, self.timezone)  # the company's day
            currency = item["currency"]
            if isinstance(event, Receivable.PaymentRecorded):
                amount = rowlib.to_minor(event.amount, currency)
                item["paid"] += amount
                item["last_paid_on"] = max(event.paid_on, item["last_paid_on"] or event.paid_on)
                principal = amount
                if event.allocation is not None:
                    principal = rowlib.to_minor(event.allocation["principal"], currency)
                    item["charges"] -= amount - principal
                    fact(item, event, "charges_paid", event.paid_on, amount - principal)
                fact(item, event, "collected", event.paid_on, principal)
                promised = item["promised"]
                if promised is not None and item["paid"] - item["promised_paid_before"] >= promised:
                    fact(item, event, "promise_kept", today)
                    item["promised"] = None
                if lifecycle.is_settled(event.state_after):
                    settled_on = item["last_paid_on"]
                    fact(
                        item,
                        event,
                        "settled",
                        settled_on,
                        days=(settled_on - item["issued_on"]).days,
                        days_late=max(0, (settled_on - item["due_on"]).days),
                    )
                    item["promised"] = None
            elif isinstance(event, Receivable.PromiseMade | Receivable.InstallmentPlanAgreed):
                if isinstance(event, Receivable.PromiseMade):
                    promised = rowlib.to_minor(event.amount, currency)
                else:
                    promised = sum(rowlib.to_minor(i["amount"], currency) for i in event.installments)
                item["promised"] = promised
                item["promised_paid_before"] = item["paid"]
                fact(item, event, "promise_made", today, promised)
            elif isinstance(event, Receivable.PromiseBroken):
                item["promised"] = None
                fact(item, event, "promise_broken", today)
            elif isinstance(event, Receivable.PromiseKept):
                # The payment that covered it counted it already (and closed it); histories of
                # before PromiseKept count it there too, so the event is counted only if still open.
                if item["promised"] is not None:
                    fact(item, event, "promise_kept", today)
                    item["promised"] = None
            elif isinstance(event, Receivable.WriteOffApproved):
                item["promised"] = None
                written_off = rowlib.to_minor(event.amount, currency)
                if item["charges"]:
                    fact(item, event, "charges_off", today, item["charges"])
                fact(item, event, "written_off", today, written_off - item["charges"])
                item["charges"] = 0
            elif isinstance(event, Receivable.ChargesAccrued):
                accrued = rowlib.to_minor(event.interest + event.fee, currency)
                item["charges"] += accrued
                fact(item, event, "charges_accrued", event.through, accrued)
            elif isinstance(event, Receivable.ChargesWaived):
                waived = rowlib.to_minor(event.amount, currency)
                item["charges"] -= waived
                fact(item, event, "charges_waived", today, waived)
            elif isinstance(event, Receivable.RecoveryRecorded):
                fact(item, event, "recovered", event.paid_on, rowlib.to_minor(event.amount, currency))
            elif isinstance(event, Receivable.CollectorAssigned):
                item["collector"] = event.collector or ""
        rowlib.save(conn, items, known, existing)
        if out:
            conn.execute(facts.insert(), out)


# ---- the formulas --------------------------------------------------------------------
#
# Pure functions of amounts (any unit, as long as one call uses one) and days: the worked
# examples cited in docs/kpis.md are checked against them in tests/unit/test_kpi_formulas.py.

DAYS = Decimal("0.1")  # days are reported to one decimal


def _ratio(numerator: Decimal, denominator: Decimal, places: str) -> Decimal | None:
    if denominator == 0:
        return None
    return (numerator / denominator).quantize(Decimal(places), rounding=ROUND_HALF_EVEN)


def days_sales_outstanding(receivables: Decimal | int, credit_sales: Decimal | int, days: int) -> Decimal | None:
    """DSO = receivables at the end ÷ credit sales in the period × days in the period;
    None without credit sales."""
    return _ratio(Decimal(receivables) * days, Decimal(credit_sales), "0.1")


def best_possible_dso(current: Decimal | int, credit_sales: Decimal | int, days: int) -> Decimal | None:
    """BPDSO = current (not yet due) receivables at the end ÷ credit sales in the period × days
    in the period: the DSO if every customer paid on its due day; None without credit sales."""
    return _ratio(Decimal(current) * days, Decimal(credit_sales), "0.1")


def average_days_delinquent(dso: Decimal | None, bpdso: Decimal | None) -> Decimal | None:
    """ADD = DSO − BPDSO, of the figures as reported (to one decimal), so that the three shown
    always add up; None when either is undefined."""
    if dso is None or bpdso is None:
        return None
    return (dso - bpdso).quantize(DAYS, rounding=ROUND_HALF_EVEN)


def countback_dso(receivables: Decimal | int, months: Iterable[tuple[int, Decimal | int]]) -> Decimal | None:
    """Countback DSO: take the receivables at the end and subtract each month's credit sales,
    the latest month first; a month whose sales the remainder covers counts all its days, the
    month where the remainder is less than its sales counts days × remainder ÷ sales, and the
    count stops there. `months` are (days, credit sales), the latest first, back to the first
    month with credit sales on record. No receivables: 0.0. Receivables larger than all the
    credit sales given: None (they cannot be counted back to sales)."""
    remainder = Decimal(receivables)
    counted = Decimal(0)
    if remainder <= 0:
        return Decimal("0.0")
    for days, sales in months:
        sales = Decimal(sales)
        if remainder >= sales:
            counted += days
            remainder -= sales
            if remainder == 0:
                return counted.quantize(DAYS, rounding=ROUND_HALF_EVEN)
        else:
            counted += days * remainder / sales
            return counted.quantize(DAYS, rounding=ROUND_HALF_EVEN)
    return None


def countback_months(end: date, earliest: date) -> Iterator[tuple[date, date]]:
    """The months a countback at the end of `end` steps through, the latest first: calendar
    months, the latest cut at `end` (the 1st of its month to `end`, so `end.day` days), then
    each whole calendar month before it, back to the month of `earliest` (the first credit
    sale on record). At a month's last day this is the textbook count by calendar months."""
    first = end.replace(day=1)
    last = end
    while last >= earliest.replace(day=1):
        yield first, last
        last = first - timedelta(days=1)
        first = last.replace(day=1)


class _MonthlySales:
    """Credit sales (`issued` facts by `issued_on`) per collector and currency in the months a
    countback from `end` steps through, fetched one month at a time as a countback reaches it
    (an index range each): a countback usually stops within a few months, so the cost follows
    the months it needs, not the whole history."""

    def __init__(self, conn: sa.Connection, end: date) -> None:
        self.conn = conn
        f = facts.c
        earliest = conn.execute(sa.select(sa.func.min(f.on)).where(f.kind == "issued", f.on <= end)).scalar()
        self.months = list(countback_months(end, earliest)) if earliest is not None else []
        self._fetched: dict[int, dict[tuple[str, str], int]] = {}

    def _month(self, index: int) -> dict[tuple[str, str], int]:
        if index not in self._fetched:
            first, last = self.months[index]
            f = facts.c
            query = (
                sa.select(f.collector, f.currency, rowlib.exact_sum(f.amount))
                .where(f.kind == "issued", f.on >= first, f.on <= last)
                .group_by(f.collector, f.currency)
            )
            self._fetched[index] = {(who, cur): int(amount or 0) for who, cur, amount in self.conn.execute(query)}
        return self._fetched[index]

    def steps(self, keys: Sequence[tuple[str, str]]) -> Iterator[tuple[int, int]]:
        """(days, credit sales of `keys`) per month, the latest first, back to the first sale on record."""
        for index, (first, last) in enumerate(self.months):
            month = self._month(index)
            yield (last - first).days + 1, sum(month.get(k, 0) for k in keys)


def compute(conn: sa.Connection, start: date, end: date, *, collector: str | None = None) -> dict[str, Any]:
    """KPIs over the days `start`..`end` (both included), overall and per collector, per currency.

    DSO  = receivables at end ÷ credit sales in the period × days in the period
    BPDSO = current receivables at end ÷ credit sales in the period × days in the period
    ADD  = DSO − BPDSO
    countback DSO = the days of credit sales, counted back month by month from `end`,
           that the receivables at end amount to (countback_dso, countback_months)
    CEI  = (receivables at start + credit sales − receivables at end)
           ÷ (receivables at start + credit sales − current receivables at end) × 100
    promise-kept rate = promises kept ÷ (kept + broken), by the day each was decided
    average days to collect = mean of (settled on − issued on) over receivables settled in the period
    """
    days = (end - start).days + 1
    f = facts.c
    query = (
        sa.select(
            f.collector, f.currency, f.kind, sa.func.count(), rowlib.exact_sum(f.amount), sa.func.sum(f.days), sa.func.sum(f.days_late)
        )
        .where(f.on >= start, f.on <= end)
        .group_by(f.collector, f.currency, f.kind)
    )
    sums: dict[tuple[str, str], dict[str, tuple[int, int, int, int]]] = defaultdict(dict)
    for who, cur, kind, count, amount, total_days, total_late in conn.execute(query):
        sums[(who, cur)][kind] = (int(count), int(amount or 0), int(total_days or 0), int(total_late or 0))

    monthly = _MonthlySales(conn, end)  # what the countback steps through

    before = aging.balances_as_of(conn, "collector", start - timedelta(days=1))
    after = aging.balances_as_of(conn, "collector", end)
    ar: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"start": 0, "end": 0, "end_current": 0})
    for (who, cur, _due), (balance, _n) in before.items():
        ar[(who, cur)]["start"] += balance
    for (who, cur, due), (balance, _n) in after.items():
        ar[(who, cur)]["end"] += balance
        if due >= end:
            ar[(who, cur)]["end_current"] += balance

    keys = set(sums) | set(ar)
    if collector is not None:
        keys = {k for k in keys if k[0] == collector}

    def block(keys_in: list[tuple[str, str]], currency: str) -> dict[str, Any]:
        key_sums = [sums.get(k, {}) for k in keys_in]
        key_ar = [ar[k] for k in keys_in]

        def total(kind: str, part: int) -> int:
            return sum(s.get(kind, (0, 0, 0, 0))[part] for s in key_sums)

        sales = total("issued", 1)
        ar_start = sum(a["start"] for a in key_ar)
        ar_end = sum(a["end"] for a in key_ar)
        ar_current = sum(a["end_current"] for a in key_ar)
        kept, broken, settled = total("promise_kept", 0), total("promise_broken", 0), total("settled", 0)
        dso = days_sales_outstanding(ar_end, sales, days)
        bpdso = best_possible_dso(ar_current, sales, days)
        money = lambda v: rowlib.from_minor(v, currency)  # noqa: E731
        return {
            "currency": currency,
            "receivables_at_start": money(ar_start),
            "receivables_at_end": money(ar_end),
            "current_at_end": money(ar_current),
            "credit_sales": money(sales),
            "collected": money(total("collected", 1)),
            "recovered": money(total("recovered", 1)),
            "written_off": money(total("written_off", 1)),
            "charges_accrued": money(total("charges_accrued", 1)),
            "charges_collected": money(total("charges_paid", 1)),
            "charges_waived": money(total("charges_waived", 1)),
            "charges_written_off": money(total("charges_off", 1)),
            "dso": dso,
            "best_possible_dso": bpdso,
            "average_days_delinquent": average_days_delinquent(dso, bpdso),
            "countback_dso": countback_dso(ar_end, monthly.steps(keys_in)),
            "cei": _ratio(Decimal(ar_start + sales - ar_end) * 100, Decimal(ar_start + sales - ar_current), "0.1"),
            "promises_made": total("promise_made", 0),
            "promises_kept": kept,
            "promises_broken": broken,
            "promise_kept_rate": _ratio(Decimal(kept), Decimal(kept + broken), "0.0001"),
            "settled": settled,
            "average_days_to_collect": _ratio(Decimal(total("settled", 2)), Decimal(settled), "0.1"),
            "average_days_late": _ratio(Decimal(total("settled", 3)), Decimal(settled), "0.1"),
        }

    per_collector = [{"collector": who or None, **block([(who, cur)], cur)} for who, cur in sorted(keys)]
    overall = []
    for cur in sorted({cur for _, cur in keys}):
        overall.append(block(sorted(k for k in keys if k[1] == cur), cur))
    return {"from": start, "to": end, "days": days, "overall": overall, "collectors": per_collector}
