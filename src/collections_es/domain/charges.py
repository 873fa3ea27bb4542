"""Late fees and simple interest on the overdue principal: the arithmetic (ADR 0053).

Pure functions of dates, amounts and the policy's `charges`; the Receivable decides
when to accrue and records the results as events.

- Interest runs on the principal outstanding at the start of each day, from the day
  after due; a payment made on a day lowers the principal from the next day.
- Day count: actual/365 (every day of the year at rate/365, also in leap years).
- Rounding: the interest accrued through a day is the exact sum of
  principal × rate × days over every period so far (its "basis"), divided by 365 and
  rounded half up to the currency's minor units once; each accrual records the
  difference from what was accrued before. However the days are cut into periods
  (month ends, payments, accruals asked for), the total through a day is the same.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from .money import minor_units

DAYS_IN_YEAR = 365
PARTS: tuple[str, ...] = ("fees", "interest", "principal")
#: Wide enough for any principal × rate × days sum to stay exact.
_PRECISION = Context(prec=60)


def basis(principal: Decimal, rate: Decimal, days: int) -> Decimal:
    """principal × rate × days, exactly: what the period adds to the interest's basis."""
    with localcontext(_PRECISION):
        return principal * rate * days


def add_basis(total: Decimal, added: Decimal) -> Decimal:
    """The running basis plus a period's, exactly (at the same precision the domain decides with)."""
    with localcontext(_PRECISION):
        return total + added


def interest_through(total_basis: Decimal, currency: str) -> Decimal:
    """The interest accrued on `total_basis`, rounded half up to the currency's minor units."""
    with localcontext(_PRECISION):
        exact = total_basis / DAYS_IN_YEAR
        return exact.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP) + 0


def to_minor_units(amount: Decimal, currency: str) -> Decimal:
    """A policy figure (e.g. a late fee) in the currency's minor units, rounded half up."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP) + 0


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def next_accrual_day(accrued_through: date, fee_day: date | None) -> date:
    """The next day an accrual runs through: the end of the month after `accrued_through`,
    or the late fee's day when that comes first."""
    day = month_end(accrued_through + timedelta(days=1))
    if fee_day is not None and accrued_through < fee_day < day:
        return fee_day
    return day


def allocate(amount: Decimal, outstanding: dict[str, Decimal], order: list[str]) -> dict[str, Decimal]:
    """What `amount` settles of each part, in `order` (PRC Civil Code art. 561 by default:
    fees, then interest, then principal); the rest of the amount goes to the last part."""
    zero = amount * 0
    parts = {part: zero for part in PARTS}
    left = amount
    for part in order:
        take = min(left, outstanding.get(part, zero))
        parts[part] += take
        left -= take
    parts[order[-1]] += left
    return parts


def waive(amount: Decimal, outstanding: dict[str, Decimal], order: list[str]) -> dict[str, Decimal]:
    """What a waiver of `amount` takes off fees and interest, in the payment order."""
    zero = amount * 0
    parts = {"fees": zero, "interest": zero}
    left = amount
    for part in order:
        if part in parts:
            take = min(left, outstanding[part])
            parts[part] = take
            left -= take
    return parts
