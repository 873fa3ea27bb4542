"""The customer's own commands in the pure domain (given / when / then), the portal's limits
from the policy, its catalog, and its links signed, expiring and revoked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest
import sqlalchemy as sa
from babel.messages.extract import extract_from_dir

from collections_es.domain.policy import CollectionPolicy, PortalPolicy
from collections_es.portal import i18n
from collections_es.portal.links import PortalLinks

from .helpers import (
    COLLECTOR,
    CUSTOMER,
    POLICY,
    Call,
    accept_installment_proposal,
    decline_installment_proposal,
    fall_due,
    given,
    issue,
    names,
    record_payment,
    promise_to_pay,
    propose_installment_plan,
    then_refused,
    when,
)

STRICT = POLICY.model_copy(
    update={"portal": PortalPolicy(promise_max_days=10, promise_min_percent=50, plan_max_installments=2, plan_max_days=60)}
)


def with_policy(c: Call, policy: CollectionPolicy = STRICT) -> Call:
    return c.in_context(replace(c.ctx, policy=policy))


def customer_promise(amount: str, promised_on: date, policy: CollectionPolicy = STRICT) -> Call:
    return with_policy(promise_to_pay(amount, promised_on=promised_on, by=CUSTOMER), policy)


# Commands are sent on 2024-02-20 in Shanghai (helpers.LATER); the balance is CNY 1,000.00.


def test_a_customers_promise_stays_within_the_policys_days_and_share():
    r = given(issue(), fall_due())
    then_refused(r, customer_promise("1000.00", date(2024, 3, 2)), "portal.promise_too_far", field="promised_on")
    then_refused(r, customer_promise("499.99", date(2024, 3, 1)), "portal.promise_too_small", field="amount")
    events = when(r, customer_promise("500.00", date(2024, 3, 1)))
    assert names(events) == ["PromiseMade"] and events[0].actor_id == "customer:C-1" and events[0].actor_role == "customer"


def test_a_collector_records_a_promise_beyond_the_portals_limits():
    r = given(issue(), fall_due())
    c = with_policy(promise_to_pay("100.00", promised_on=date(2024, 6, 1)))
    assert names(when(r, c)) == ["PromiseMade"]


def test_a_proposed_plan_stays_within_the_policys_count_and_reach():
    r = given(issue(), fall_due())
    three = [{"due_on": date(2024, 3, d), "amount": a} for d, a in ((1, "300.00"), (2, "300.00"), (3, "400.00"))]
    then_refused(r, with_policy(propose_installment_plan(three)), "portal.plan_too_many", field="installments")
    late = [{"due_on": date(2024, 3, 1), "amount": "500.00"}, {"due_on": date(2024, 4, 21), "amount": "500.00"}]
    then_refused(r, with_policy(propose_installment_plan(late)), "portal.plan_too_long", field="installments[1].due_on")
    short = [{"due_on": date(2024, 3, 1), "amount": "500.00"}, {"due_on": date(2024, 4, 1), "amount": "400.00"}]
    then_refused(r, with_policy(propose_installment_plan(short)), "installments.sum")


def test_a_proposal_waits_changes_no_state_and_is_one_at_a_time():
    r = given(issue(), fall_due())
    events = when(r, propose_installment_plan())
    assert names(events) == ["InstallmentPlanProposed"] and r.state == "due"
    assert r.installment_proposal["status"] == "pending" and r.installment_plan is None
    then_refused(r, propose_installment_plan(), "proposal.pending")


def test_accepting_a_proposal_records_it_then_agrees_the_plan():
    r = given(issue(), fall_due(), propose_installment_plan())
    events = when(r, accept_installment_proposal(note="fine"))
    assert names(events) == ["InstallmentProposalAccepted", "InstallmentPlanAgreed"]
    assert [e.state_after for e in events] == ["due", "promised"]
    assert r.installment_plan["installments"] == r.installment_proposal["installments"]
    assert r.installment_proposal["status"] == "accepted" and r.installment_proposal["decided_by"] == COLLECTOR.id


def test_a_proposal_that_no_longer_fits_the_balance_cannot_be_accepted_only_declined():
    r = given(issue(), fall_due(), propose_installment_plan(), record_payment("100.00"))
    then_refused(r, accept_installment_proposal(), "installments.sum")
    events = when(r, decline_installment_proposal(reason="you paid 100 since: propose again"))
    assert names(events) == ["InstallmentProposalDeclined"] and r.installment_proposal["status"] == "declined"
    assert r.installment_proposal["decision"] == "you paid 100 since: propose again"
    then_refused(r, decline_installment_proposal(), "proposal.not_pending")
    then_refused(r, accept_installment_proposal(), "proposal.not_pending")


# ---- the catalog --------------------------------------------------------------------------


def used_messages() -> list[str]:
    folder = str(resources.files("collections_es.portal"))
    found = [
        message[0] if isinstance(message, tuple) else message
        for _, _, message, _, _ in extract_from_dir(
            folder,
            method_map=[("templates/**.j2", "jinja2"), ("*.py", "python")],
            options_map={"templates/**.j2": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None, "N_": None, "gettext": (2,)},
        )
    ]
    return list(dict.fromkeys(found + i18n.messages()))


def test_every_message_of_the_portal_has_a_chinese_translation_and_none_is_stale():
    catalog = i18n.read_catalog("zh-CN")
    used = used_messages()
    assert len(used) > 80
    assert [m for m in used if not (catalog.get(m) and catalog.get(m).string)] == []
    assert [m.id for m in catalog if m.id and m.id not in used] == []


# ---- links --------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def links(tmp_path) -> PortalLinks:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/links.db")
    yield PortalLinks(engine)
    engine.dispose()


def test_a_link_names_its_customer_until_it_expires(links):
    link = links.issue("C-1", NOW, 7)
    assert links.read(link.token, NOW).customer_id == "C-1"
    assert links.read(link.token, NOW + timedelta(days=7) - timedelta(seconds=1)) is not None
    assert links.read(link.token, NOW + timedelta(days=7)) is None


def test_an_altered_or_foreign_link_is_nothing(links, tmp_path):
    token = links.issue("C-1", NOW, 7).token
    version, payload, signature = token.split(".")
    other = links.issue("C-2", NOW, 7).token.split(".")[1]
    for altered in (f"{version}.{other}.{signature}", f"{version}.{payload}.{signature[1:]}", f"p2.{payload}.{signature}", token + ".x", ""):
        assert links.read(altered, NOW) is None, altered
    elsewhere = PortalLinks(sa.create_engine(f"sqlite:///{tmp_path}/another.db"), "another key")
    assert elsewhere.read(token, NOW) is None  # another key: another service's links


def test_revoking_ends_every_earlier_link_of_that_customer_only(links):
    first, other = links.issue("C-1", NOW, 7), links.issue("C-2", NOW, 7)
    assert links.revoke("C-1", NOW, "collector-1") == 1
    assert links.read(first.token, NOW) is None and links.read(other.token, NOW) is not None
    second = links.issue("C-1", NOW, 7)
    assert links.read(second.token, NOW) is not None
    links.revoke("C-1", NOW, "collector-1")
    assert links.read(second.token, NOW) is None


def test_the_key_is_kept_in_the_database_for_every_process(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/shared.db")
    token = PortalLinks(engine).issue("C-1", NOW, 7).token
    assert PortalLinks(engine).read(token, NOW) is not None
    engine.dispose()


def test_the_money_share_rounds_up_to_the_minor_unit():
    r = given(issue(amount="100.01"), fall_due())
    policy = POLICY.model_copy(update={"portal": PortalPolicy(promise_min_percent=50)})
    then_refused(r, customer_promise("50.00", date(2024, 2, 25), policy), "portal.promise_too_small")  # half is 50.005
    assert names(when(r, customer_promise("50.01", date(2024, 2, 25), policy))) == ["PromiseMade"]
