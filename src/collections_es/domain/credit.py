"""The credit rule: how a customer's payment history becomes a rating and a hold.

Pure functions over figures the credit-record read model keeps; `today` is an
argument. The rule (also in docs/adr/0021-credit-record.md):

- "unrated": nothing settled, promised or written off yet;
- "D": an amount written off and not fully recovered, or 3+ broken promises;
- "C": more promises broken than kept, or over half the settled receivables
  late, or on average more than 30 days late;
- "B": any late settlement or any broken promise;
- "A": otherwise (everything settled on time, every promise kept).

A customer is on credit hold when their open balance in the credit limit's
currency exceeds the limit, or when something of theirs was written off within
the last `hold_days` days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

RATING_RULE = (
    "unrated: no history; D: unrecovered write-off or 3+ broken promises; "
    "C: broken > kept, over half settled late, or average days late > 30; "
    "B: any late settlement or broken promise; A: otherwise"
)


@dataclass(frozen=True)
class CreditHistory:
    settled_on_time: int
    settled_late: int
    days_late_total: int
    promises_made: int
    promises_kept: int
    promises_broken: int
    unrecovered_write_off: bool
    any_write_off: bool

    @property
    def settled(self) -> int:
        return self.settled_on_time + self.settled_late

    @property
    def average_days_late(self) -> Decimal:
        """Mean days late over all settled receivables (on time counts as 0), to 0.1 day."""
        if not self.settled:
            return Decimal("0.0")
        return (Decimal(self.days_late_total) / Decimal(self.settled)).quantize(Decimal("0.1"))


def rate(h: CreditHistory) -> str:
    if not (h.settled or h.promises_made or h.any_write_off):
        return "unrated"
    if h.unrecovered_write_off or h.promises_broken >= 3:
        return "D"
    if (
        h.promises_broken > h.promises_kept
        or (h.settled and h.settled_late * 2 > h.settled)
        or h.average_days_late > 30
    ):
        return "C"
    if h.settled_late or h.promises_broken:
        return "B"
    return "A"


def hold_reasons(
    *,
    exposure: Decimal | None,
    credit_limit: Decimal | None,
    last_write_off_on: date | None,
    today: date,
    hold_days: int,
) -> list[str]:
    """Why the selling side should hold further credit (empty: no hold)."""
    reasons = []
    if credit_limit is not None and exposure is not None and exposure > credit_limit:
        reasons.append("over_credit_limit")
    if last_write_off_on is not None and today - last_write_off_on <= timedelta(days=hold_days):
        reasons.append("recent_write_off")
    return reasons
