"""After collection in the domain (ADR 0057, ADR 0058): the reasons' vocabulary, the revisit a
settlement owes and its rule, revisits on the customer, complaints on the receivable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from collections_es.domain.aftercare import UNCLASSIFIED, classify_reason, revisit_owed
from collections_es.domain.compliance import REVISIT_FACT, Fact, fact_of, findings_as_of
from collections_es.domain.customer import Customer
from collections_es.domain.errors import RuleViolationError
from collections_es.domain.policy import RevisitPolicy

from .helpers import (
    AMOUNT,
    COLLECTOR,
    LATER,
    POLICY,
    TZ,
    context,
    fall_due,
    issue,
    record_complaint,
    record_contact,
    record_payment,
    resolve_complaint,
    story,
    when,
    given,
)

REVISITING = POLICY.model_copy(update={"version": "rv", "revisits": RevisitPolicy(tiers=["A"], after_days=30, within_days=7)})


@pytest.mark.parametrize(
    ("words", "code"),
    [
        ("cash_flow_difficulty", "cash_flow_difficulty"),
        ("  Cash-Flow ", "cash_flow_difficulty"),
        ("资金周转困难", "cash_flow_difficulty"),
        ("Disputes quality!", "goods_dispute"),
        ("the dog ate it", UNCLASSIFIED),
        ("", None),
        (None, None),
    ],
)
def test_a_reason_is_classified_by_code_or_alias_without_case_spaces_or_punctuation(words, code):
    assert classify_reason(words, POLICY) == code


def test_a_contacts_reason_is_recorded_as_given_with_its_code_and_never_refused():
    _, events = story(issue(), fall_due(), record_contact(reason_for_non_payment="资金紧张"),
                      record_contact(reason_for_non_payment="moon in the wrong house"))
    contacts = events[-2:]
    assert [(e.reason_for_non_payment, e.reason_code) for e in contacts] == [
        ("资金紧张", "cash_flow_difficulty"), ("moon in the wrong house", UNCLASSIFIED)
    ]


def test_a_revisit_is_owed_to_the_policys_tiers_from_after_days_to_within_days_later_in_the_customers_days():
    settled_at = datetime(2024, 2, 20, 17, 0, tzinfo=UTC)  # 2024-02-21 01:00 in Shanghai
    owed = revisit_owed(settled_at, TZ, "A", REVISITING)
    assert (owed.owed_on, owed.last_day) == (date(2024, 3, 22), date(2024, 3, 29))
    assert revisit_owed(settled_at, TZ, "B", REVISITING) is None
    assert revisit_owed(settled_at, TZ, "A", POLICY) is None  # the bundled policy owes none


def _settled_facts(tier: str = "A") -> list[Fact]:
    _, events = story(issue(), fall_due(), record_payment(AMOUNT))
    facts = [fact_of(e) for e in events]
    facts = [dataclasses.replace(f, policy_version="rv") for f in facts]
    return facts[:-1] + [dataclasses.replace(facts[-1], data={**facts[-1].data, "tier": tier})]


def _revisit(at: datetime) -> Fact:
    return Fact(REVISIT_FACT, -2, at, "rv", "collector:ann", "collector", "settled", data={"occurred_at": at})


def _revisit_findings(facts, now):
    return [f for f in findings_as_of(facts, {"rv": REVISITING}, "r", now) if f.rule_id == "revisit.not_made_in_time"]


def test_a_settlement_not_revisited_by_the_end_of_the_last_day_is_a_finding_and_a_revisit_in_time_meets_it():
    facts = _settled_facts()  # settled LATER: 2024-02-20 10:00 in Shanghai; owed 2024-03-21, by the end of 2024-03-28
    end = datetime(2024, 3, 28, 16, 0, tzinfo=UTC)
    assert _revisit_findings(facts, end - timedelta(seconds=1)) == []
    [found] = _revisit_findings(facts, end)
    assert (found.collector, found.occurred_at) == (COLLECTOR.id, end)
    in_time = _revisit(datetime(2024, 3, 25, 2, 0, tzinfo=UTC))
    assert _revisit_findings([*facts, in_time], end + timedelta(days=30)) == []
    too_late = _revisit(end)
    assert len(_revisit_findings([*facts, too_late], end + timedelta(days=1))) == 1
    assert _revisit_findings(_settled_facts("B"), end + timedelta(days=1)) == []


def _customer() -> Customer:
    customer = Customer.register(context(LATER), customer_id="C-1", name="示例", timezone=TZ, tier="A",
                                 preferred_channel="phone", contacts={})
    customer.collect_events()
    return customer


def test_a_revisit_is_recorded_on_the_customer_and_refused_only_when_it_cannot_be_true():
    customer = _customer()
    now = context(LATER)
    customer.record_revisit(now, channel="visit", feedback="满意", satisfaction=5, needs=" ")
    assert [(r["satisfaction"], r["needs"], r["by"]) for r in customer.revisits] == [(5, None, COLLECTOR.id)]
    for bad in ({"satisfaction": 0}, {"occurred_at": now.now + timedelta(minutes=1)}, {"channel": "pigeon"}, {"feedback": " "}):
        with pytest.raises(RuleViolationError):
            customer.record_revisit(now, **{"channel": "phone", "feedback": "ok", "satisfaction": 3, **bad})


def test_a_resolution_names_its_complaint_when_several_are_open():
    r = given(issue(), fall_due(), record_complaint(), record_complaint(about_version=2))
    assert [c["complaint"] for c in r.open_complaints] == [3, 4]
    with pytest.raises(RuleViolationError) as which:
        when(r, resolve_complaint())
    assert which.value.rule_id == "complaint.which"
    with pytest.raises(RuleViolationError):
        when(r, resolve_complaint(complaint=2))
    [resolved] = when(r, resolve_complaint(complaint=4, outcome="not_upheld"))
    assert (resolved.complaint, resolved.outcome) == (4, "not_upheld")
    assert [c["complaint"] for c in r.open_complaints] == [3]
    with pytest.raises(RuleViolationError) as unknown:
        when(r, record_complaint(about_version=99))
    assert unknown.value.rule_id == "complaint.about_unknown_event"
