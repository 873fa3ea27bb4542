"""After collection: revisits owed after a settlement, complaints, and the reasons for non-payment.

Pure functions of their arguments (ADR 0057, ADR 0058): the customer aggregate records
revisits, the receivable records complaints and classified reasons, and the
compliance rule and the read models ask here when a revisit is owed and what a
recorded reason means in the policy's vocabulary.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .policy import CollectionPolicy

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
COMPLAINT_OUTCOMES: tuple[str, ...] = ("upheld", "not_upheld")
SATISFACTION_SCORES: tuple[int, ...] = (1, 2, 3, 4, 5)
#: The code a recorded reason gets when the vocabulary has no word for it (its text is kept).
UNCLASSIFIED = "unclassified"


def _normal(text: str) -> str:
    """Lower case, letters and digits only: "Cash-flow " and "cash_flow" compare equal."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", "", folded)


def classify_reason(text: str | None, policy: CollectionPolicy) -> str | None:
    """The vocabulary's code for a reason recorded as `text`: a code itself, or one of a code's
    aliases (without case, spaces or punctuation); `unclassified` when none matches; None
    when no reason was given. A contact is never refused for its reason (ADR 0058)."""
    if text is None or not text.strip():
        return None
    wanted = _normal(text)
    for reason in policy.non_payment_reasons:
        if wanted == _normal(reason.code) or any(wanted == _normal(alias) for alias in reason.aliases):
            return reason.code
    return UNCLASSIFIED


def vocabulary(policy: CollectionPolicy) -> list[str]:
    """The reason codes a report lists, in the policy's order, `unclassified` last."""
    return [r.code for r in policy.non_payment_reasons] + [UNCLASSIFIED]


@dataclass(frozen=True)
class RevisitOwed:
    """A revisit owed after a settlement: from `owed_on`, made by the end of `last_day` (local days)."""

    owed_on: date
    last_day: date


def revisit_owed(settled_at: datetime, timezone: str, tier: str | None, policy: CollectionPolicy) -> RevisitOwed | None:
    """The revisit a settlement at `settled_at` owes a customer of `tier`, by the policy in force
    then; None when the policy owes none to that tier."""
    rules = policy.revisits
    if tier is None or tier not in rules.tiers:
        return None
    settled_on = settled_at.astimezone(ZoneInfo(timezone)).date()
    owed_on = settled_on + timedelta(days=rules.after_days)
    return RevisitOwed(owed_on, owed_on + timedelta(days=rules.within_days))
