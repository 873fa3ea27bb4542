"""The limitation period of a receivable (PRC Civil Code arts. 188, 189, 195), computed once.

The receivable (as its events are applied) and the detective rule
`limitation.no_action` (over the facts the compliance projection keeps) both
fold a history with the functions here; neither has a copy of the rules.

- **Start** (art. 188): three years from the day the creditor knows its right is
  harmed, which for an invoice is the day after its due date (`start_after_due`).
- **Installments** (art. 189): for a debt agreed to be paid in installments, the
  period runs from the last installment's due date; art. 188's day-after rule
  applies to that date as to the invoice's.
- **Interruption** (art. 195): a demand by the creditor, an acknowledgement by
  the debtor (agreeing to perform: a payment, a promise, a plan) or proceedings
  (suit, arbitration) restart the period from the day they happen.
- **End** (arts. 201, 202): the period's last day is the day with the same date
  `years` later (the last day of February when there is no such day). The claim
  is time-barred from the day after `lapses_on`.

Nothing shortens a period: an event whose period would start on or before the
current start changes nothing. See docs/limitation.md and ADR 0036.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DEMAND = "demand"
ACKNOWLEDGEMENT = "acknowledgement"
PROCEEDINGS = "proceedings"
KINDS: tuple[str, ...] = (DEMAND, ACKNOWLEDGEMENT, PROCEEDINGS)

#: Contact outcomes in which the customer was reached and asked to pay: a demand (art. 195(1)).
#: A refusal or a dispute still means the demand reached the debtor.
DEMAND_OUTCOMES: frozenset[str] = frozenset({"reached", "refused", "disputed"})
#: Contact outcomes in which the customer agreed to pay: an acknowledgement (art. 195(2)).
ACKNOWLEDGING_OUTCOMES: frozenset[str] = frozenset({"acknowledged", "promised"})
#: Templates of the messages and letters that ask the customer to pay: once delivered, a demand.
#: (Any other template delivered, a receipt or a courtesy note, interrupts nothing.)
DEMAND_TEMPLATES: frozenset[str] = frozenset(
    {
        "pre_due_reminder",
        "first_dunning",
        "broken_promise",
        "installment_reminder",
        "reminder",
        "dunning",
        "final_notice",
        "lawyer_letter",
        "lawyer",  # the lawyer's letter's earlier name (ADR 0037)
    }
)
PROCEEDINGS_KINDS: tuple[str, ...] = ("suit", "arbitration")

#: The event fields `interruption` reads, per event type: the receivable passes them
#: from its events, the compliance facts keep them (`compliance.FACT_FIELDS`).
FIELDS: Mapping[str, tuple[str, ...]] = {
    "ContactRecorded": ("outcome", "occurred_at"),
    "PromiseMade": (),
    "InstallmentPlanAgreed": ("installments",),
    "PaymentRecorded": ("paid_on",),
    "DeliveryRecorded": ("template", "delivered_at"),
    "ProceedingsRecorded": ("filed_on",),
}


@dataclass(frozen=True)
class Interruption:
    """What one event does to the period: its kind, the day it happened, and the day
    the period runs from after it (the same day, or later for an installment plan)."""

    kind: str
    on: date
    starts_on: date


def start_after_due(due_on: date) -> date:
    """Art. 188: the creditor knows its right is harmed the day after the due date passes unpaid."""
    return due_on + timedelta(days=1)


def add_years(day: date, years: int) -> date:
    """The same date `years` later; 28 February for 29 February in a common year (art. 202)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def contact_kind(outcome: str | None) -> str | None:
    """The interruption a contact with this outcome is, if any (the channel does not matter)."""
    if outcome in ACKNOWLEDGING_OUTCOMES:
        return ACKNOWLEDGEMENT
    if outcome in DEMAND_OUTCOMES:
        return DEMAND
    return None


def data_of(event_type: str, event: Any) -> dict[str, Any]:
    """The fields `interruption` reads, taken from an event object."""
    return {name: getattr(event, name) for name in FIELDS.get(event_type, ())}


def interruption(event_type: str, data: Mapping[str, Any], at: datetime, timezone: str) -> Interruption | None:
    """The interruption an event of `event_type` with `data` (see FIELDS), recorded at
    `at`, is for a receivable of a customer in `timezone`; None when it is none."""

    def local(instant: datetime) -> date:
        return instant.astimezone(ZoneInfo(timezone)).date()

    kind: str | None = None
    on: date | None = None
    if event_type == "ContactRecorded":  # on the day it took place, which may be before it was logged
        kind, on = contact_kind(data.get("outcome")), local(data.get("occurred_at") or at)
    elif event_type == "PromiseMade":
        kind, on = ACKNOWLEDGEMENT, local(at)
    elif event_type == "InstallmentPlanAgreed":
        on = local(at)
        dues = [item["due_on"] for item in data.get("installments") or ()]
        starts_on = max(on, start_after_due(max(dues))) if dues else on
        return Interruption(ACKNOWLEDGEMENT, on, starts_on)
    elif event_type == "PaymentRecorded":
        kind, on = ACKNOWLEDGEMENT, data["paid_on"]
    elif event_type == "DeliveryRecorded":
        if data.get("template") in DEMAND_TEMPLATES:
            kind, on = DEMAND, local(data["delivered_at"])
    elif event_type == "ProceedingsRecorded":
        kind, on = PROCEEDINGS, data["filed_on"]
    if kind is None or on is None:
        return None
    return Interruption(kind, on, on)


@dataclass(frozen=True)
class Period:
    """The limitation period running now: from `started_on`, restarted last by
    `last_interruption` ({kind, on, version}; None while it runs from the due date)."""

    started_on: date
    last_interruption: Mapping[str, Any] | None = None

    @classmethod
    def from_due_date(cls, due_on: date) -> Period:
        return cls(start_after_due(due_on))

    def lapses_on(self, years: int) -> date:
        """The period's last day (arts. 201, 202); time-barred from the next day."""
        return add_years(self.started_on, years)

    def after(self, found: Interruption | None, version: int) -> Period:
        """The period after an event at `version`: restarted if it starts later, else unchanged."""
        if found is None or found.starts_on <= self.started_on:
            return self
        return Period(found.starts_on, {"kind": found.kind, "on": found.on, "version": version})

    def as_dict(self) -> dict[str, Any]:
        return {"started_on": self.started_on, "last_interruption": dict(self.last_interruption or {}) or None}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Period:
        return cls(value["started_on"], value.get("last_interruption"))


def periods(
    due_on: date, timezone: str, events: Iterable[tuple[str, Mapping[str, Any], datetime, int]]
) -> Iterable[tuple[Period, int | None]]:
    """Each period a history runs through, with the version of the event that started
    it (None for the first, from the due date): `events` are (type, data, at, version)."""
    period = Period.from_due_date(due_on)
    yield period, None
    for event_type, data, at, version in events:
        following = period.after(interruption(event_type, data, at, timezone), version)
        if following is not period:
            period = following
            yield period, version
