"""Whole collection paths over HTTP, day by day, under a frozen clock.

Each test drives one receivable through a path of docs/design.md section 1 with the
payloads of docs/api.md, and on each significant day checks the receivable the
command returned (state, balance, version, allowed commands, days past due)
and the event it added to `/history` (type, state after, actor, role, and its
link to the previous event's hash). Customers are in Shanghai (UTC+8) and Los
Angeles (UTC-7 in summer), so "the start of the due date in the customer's
time zone" falls on different UTC days.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from freezegun import freeze_time

from collections_es.application.access import ROLES
from collections_es.domain import lifecycle
from collections_es.domain.trail import GENESIS_HASH

from .conftest import CUSTOMER, Api, invoice

LA_CUSTOMER = {
    "customer_id": "C-LA-1",
    "name": "Pacific Trading LLC",
    "timezone": "America/Los_Angeles",
    "tier": "B",
    "preferred_channel": "phone",
    "contacts": {"email": "ap@pacific.example.com", "phone": "+1 415 555 0100", "address": "1 Market St, San Francisco"},
}

#: The token names of `Api` → the actor and role every event must record.
ACTOR_OF = {role: (f"{role}-1", role) for role in ROLES} | {"supervisor-2": ("supervisor-2", "supervisor")}
# A settled receivable takes complaints about its collection, nothing else (ADR 0057).
SETTLED_ALLOWS = ["record_complaint", "resolve_complaint"]


def register(api: Api, customer: dict[str, Any]) -> None:
    response = api.as_("supervisor").post("/customers", json=customer)
    assert response.status_code == 201, response.text


class Story:
    """One receivable driven over HTTP; every command is checked against the event it adds."""

    def __init__(self, api: Api, invoice_number: str) -> None:
        self.api = api
        self.ref = invoice_number
        self.events: list[dict[str, Any]] = []

    def issue(self, **overrides: Any) -> dict[str, Any]:
        response = self.api.as_("service").post("/receivables", json=invoice(self.ref, **overrides))
        assert response.status_code == 201, response.text
        return self._checked(response.json(), "Issued", "service")

    def do(self, who: str, command: str, body: dict[str, Any] | None = None, *, event: str) -> dict[str, Any]:
        response = self.api.as_(who).post(f"/receivables/{self.ref}/{command}", json=body)
        assert response.status_code == 200, response.text
        return self._checked(response.json(), event, who)

    def refused(self, who: str, command: str, body: dict[str, Any] | None, status: int, rule_id: str) -> dict[str, Any]:
        before = self.get()
        response = self.api.as_(who).post(f"/receivables/{self.ref}/{command}", json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["rule_id"] == rule_id
        assert self.get() == before
        assert self.history() == self.events
        return problem

    def get(self) -> dict[str, Any]:
        response = self.api.as_("auditor").get(f"/receivables/{self.ref}")
        assert response.status_code == 200, response.text
        return response.json()

    def history(self) -> list[dict[str, Any]]:
        response = self.api.as_("auditor").get(f"/receivables/{self.ref}/history")
        assert response.status_code == 200, response.text
        return response.json()

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]

    def _checked(self, receivable: dict[str, Any], event_type: str, who: str) -> dict[str, Any]:
        history = self.history()
        assert history[:-1] == self.events, "earlier events must never change"
        new = history[-1]
        assert new["type"] == event_type
        assert new["version"] == receivable["version"] == len(history)
        assert new["state_after"] == receivable["state"]
        assert (new["actor"], new["role"]) == ACTOR_OF[who]
        assert new["prev_hash"] == (self.events[-1]["hash"] if self.events else GENESIS_HASH)
        assert new["hash"] not in {e["hash"] for e in self.events}
        assert new["policy_version"] == receivable["policy_version"] == "2026.1"
        assert datetime.fromisoformat(new["occurred_at"]) == self.api.services.clock.now()
        assert receivable["allowed_commands"] == lifecycle.allowed_commands(receivable["state"])
        # record-contact answers with what the contact broke too (`findings`); the rest is the receivable
        if event_type == "ContactRecorded":
            assert isinstance(receivable.pop("findings"), list)
        assert self.get() == receivable, "a GET right after the command returns what the command returned"
        self.events = history
        return receivable


def payment(amount: str, method: str, paid_on: str, reference: str) -> dict[str, str]:
    return {"amount": amount, "method": method, "paid_on": paid_on, "reference": reference}


def test_an_invoice_paid_in_two_parts_before_its_due_date_settles_without_collection(frozen_api):
    register(frozen_api, CUSTOMER)
    story = Story(frozen_api, "INV-SH-EARLY")
    with freeze_time("2026-03-02T01:00:00Z") as frozen:  # Monday 09:00 in Shanghai
        r = story.issue()
        assert (r["state"], r["amount"], r["balance"], r["paid"], r["currency"]) == ("issued", "1200.50", "1200.50", "0.00", "CNY")
        assert (r["issued_on"], r["due_on"], r["timezone"], r["collector"]) == ("2026-03-02", "2026-04-01", "Asia/Shanghai", "collector-1")
        assert (r["version"], r["days_past_due"], r["promise"], r["dispute"]) == (1, 0, None, None)
        assert story.last["data"]["amount"] == "1200.50" and story.last["actor"] == "service-1"
        assert {"send_reminder", "fall_due", "record_payment"} <= set(r["allowed_commands"])
        assert "escalate" not in r["allowed_commands"]

        # Reminders open 7 days before due: from 00:00 on 2026-03-25 in Shanghai, which is 16:00Z on the 24th.
        frozen.move_to("2026-03-24T15:59:59Z")
        problem = story.refused("service", "send-reminder", {"channel": "sms"}, 422, "reminder.too_early")
        assert "2026-03-25" in problem["detail"]
        frozen.move_to("2026-03-24T16:00:00Z")
        r = story.do("service", "send-reminder", {"channel": "sms"}, event="ReminderSent")
        assert (r["state"], r["version"], r["balance"]) == ("reminded", 2, "1200.50")
        assert story.last["data"] == {"channel": "sms"}

        frozen.move_to("2026-03-26T02:30:00Z")  # Thursday 10:30 in Shanghai
        r = story.do(
            "collector",
            "record-contact",
            {
                "channel": "phone",
                "outcome": "acknowledged",
                "note": "张经理确认收到发票，月底前付款",
                "customer_attitude": "cooperative",
                "next_step": "check the bank statement on 2026-03-31",
            },
            event="ContactRecorded",
        )
        assert (r["state"], r["version"]) == ("reminded", 3)
        assert story.last["reason"] == "张经理确认收到发票，月底前付款"
        assert story.last["data"]["outcome"] == "acknowledged"

        frozen.move_to("2026-03-30T03:00:00Z")
        r = story.do("service", "record-payment", payment("200.50", "bank_transfer", "2026-03-30", "BANK-0001"), event="PaymentRecorded")
        assert (r["state"], r["balance"], r["paid"], r["version"]) == ("reminded", "1000.00", "200.50", 4)

        frozen.move_to("2026-03-31T15:30:00Z")  # 23:30 on the last evening before due, in Shanghai
        r = story.do("service", "record-payment", payment("1000.00", "alipay", "2026-03-31", "ALIPAY-0002"), event="PaymentRecorded")
        assert (r["state"], r["balance"], r["paid"], r["version"]) == ("settled", "0.00", "1200.50", 5)
        assert r["allowed_commands"] == ["record_complaint", "resolve_complaint"] and r["days_past_due"] == 0
        assert story.last["data"] == {
            "amount": "1000.00", "method": "alipay", "paid_on": "2026-03-31", "reference": "ALIPAY-0002", "allocation": None
        }

        frozen.move_to("2026-06-01T02:00:00Z")  # long after the due date, a settled invoice is not past due
        later = story.get()
        assert (later["state"], later["days_past_due"], later["version"]) == ("settled", 0, 5)
        assert story.types() == ["Issued", "ReminderSent", "ContactRecorded", "PaymentRecorded", "PaymentRecorded"]
        assert [e["role"] for e in story.events] == ["service", "service", "collector", "service", "service"]


def test_a_los_angeles_customer_promises_to_pay_and_keeps_the_promise(frozen_api):
    register(frozen_api, LA_CUSTOMER)
    story = Story(frozen_api, "INV-LA-PROMISE")
    with freeze_time("2026-03-02T17:00:00Z") as frozen:  # Monday 09:00 in Los Angeles (PST)
        r = story.issue(customer_id="C-LA-1", currency="USD", amount="1200.50")
        assert (r["state"], r["currency"], r["timezone"], r["balance"]) == ("issued", "USD", "America/Los_Angeles", "1200.50")

        # The due date starts at 00:00 PDT on 2026-04-01 = 07:00Z; at 06:59:59Z it is still March 31st there.
        frozen.move_to("2026-04-01T06:59:59Z")
        assert story.get()["days_past_due"] == 0
        problem = story.refused("service", "fall-due", None, 422, "fall_due.not_yet")
        assert "2026-04-01" in problem["detail"]
        frozen.move_to("2026-04-01T07:00:00Z")
        r = story.do("service", "fall-due", event="FellDue")
        assert (r["state"], r["version"], r["days_past_due"], r["balance"]) == ("due", 2, 0, "1200.50")
        assert {"start_follow_up", "promise_to_pay", "escalate"} <= set(r["allowed_commands"])
        assert "fall_due" not in r["allowed_commands"]

        frozen.move_to("2026-04-02T16:30:00Z")  # Thursday 09:30 PDT
        r = story.do("collector", "start-follow-up", {"channel": "email", "note": "dunning letter no. 1 sent"}, event="FollowUpStarted")
        assert (r["state"], r["version"], r["days_past_due"]) == ("following_up", 3, 1)
        assert story.last["data"] == {"channel": "email", "note": "dunning letter no. 1 sent"}

        frozen.move_to("2026-04-03T17:00:00Z")
        r = story.do(
            "collector",
            "record-contact",
            {
                "channel": "phone",
                "outcome": "promised",
                "note": "AP manager promised full payment by April 10",
                "customer_attitude": "apologetic; a customer of theirs paid late",
                "next_step": "check on 2026-04-10",
                "promised_on": "2026-04-10",
            },
            event="ContactRecorded",
        )
        assert (r["state"], r["version"], r["days_past_due"]) == ("following_up", 4, 2)
        assert story.last["data"]["promised_on"] == "2026-04-10"

        r = story.do(
            "sales",
            "promise-to-pay",
            {"amount": "1200.50", "promised_on": "2026-04-10", "note": "confirmed by e-mail"},
            event="PromiseMade",
        )
        assert (r["state"], r["version"]) == ("promised", 5)
        assert r["promise"] == {"amount": "1200.50", "promised_on": "2026-04-10", "paid_towards": "0.00"}
        assert "break_promise" in r["allowed_commands"] and "escalate" not in r["allowed_commands"]
        assert story.last["role"] == "sales"

        frozen.move_to("2026-04-08T18:00:00Z")
        r = story.do("service", "record-payment", payment("600.00", "wechat_pay", "2026-04-08", "WX-7781"), event="PaymentRecorded")
        assert (r["state"], r["balance"], r["version"]) == ("promised", "600.50", 6)
        assert r["promise"]["paid_towards"] == "600.00"

        # 23:30 PDT on the promised date (06:30Z on the 11th): still on time in Los Angeles.
        frozen.move_to("2026-04-11T06:30:00Z")
        r = story.do("service", "record-payment", payment("600.50", "card", "2026-04-10", "CARD-9912"), event="PaymentRecorded")
        assert (r["state"], r["balance"], r["paid"], r["version"]) == ("settled", "0.00", "1200.50", 7)
        assert (r["promise"], r["allowed_commands"], r["days_past_due"]) == (None, SETTLED_ALLOWS, 0)
        assert story.types() == [
            "Issued", "FellDue", "FollowUpStarted", "ContactRecorded", "PromiseMade", "PaymentRecorded", "PaymentRecorded",
        ]


def test_a_broken_promise_escalates_then_goes_to_legal_is_written_off_and_later_partly_recovered(frozen_api):
    register(frozen_api, CUSTOMER)
    story = Story(frozen_api, "INV-SH-BAD-DEBT")
    with freeze_time("2026-03-02T01:00:00Z") as frozen:
        story.issue()

        # The due date starts at 00:00 on 2026-04-01 in Shanghai, which is still March 31st in UTC.
        frozen.move_to("2026-03-31T15:59:59Z")
        story.refused("service", "fall-due", None, 422, "fall_due.not_yet")
        frozen.move_to("2026-03-31T16:00:00Z")
        r = story.do("service", "fall-due", event="FellDue")
        assert (r["state"], r["version"], r["days_past_due"]) == ("due", 2, 0)

        frozen.move_to("2026-04-02T02:00:00Z")
        r = story.do("service", "start-follow-up", None, event="FollowUpStarted")  # no body: every field is optional
        assert (r["state"], r["version"], r["days_past_due"]) == ("following_up", 3, 1)
        assert story.last["data"] == {"channel": None, "note": None}

        frozen.move_to("2026-04-03T02:00:00Z")
        r = story.do("collector", "promise-to-pay", {"amount": "1200.50", "promised_on": "2026-04-10"}, event="PromiseMade")
        assert (r["state"], r["version"]) == ("promised", 4)
        assert r["promise"] == {"amount": "1200.50", "promised_on": "2026-04-10", "paid_towards": "0.00"}

        frozen.move_to("2026-04-10T03:00:00Z")
        r = story.do("collector", "record-payment", payment("200.50", "cash", "2026-04-10", "CASH-0410"), event="PaymentRecorded")
        assert (r["state"], r["balance"], r["version"]) == ("promised", "1000.00", 5)
        assert r["promise"]["paid_towards"] == "200.50"

        # Promised date 04-10 plus three days of grace has passed with 1000.00 unpaid.
        frozen.move_to("2026-04-14T01:00:00Z")
        r = story.do(
            "service",
            "break-promise",
            {"reason": "promised 2026-04-10; 1000.00 still unpaid after 3 days of grace"},
            event="PromiseBroken",
        )
        assert (r["state"], r["version"], r["balance"], r["promise"], r["days_past_due"]) == ("overdue_escalated", 6, "1000.00", None, 13)
        assert {"refer_to_legal", "request_write_off", "promise_to_pay"} <= set(r["allowed_commands"])
        assert "break_promise" not in r["allowed_commands"]

        r = story.do("supervisor", "assign-collector", {"collector": "collector-7"}, event="CollectorAssigned")
        assert (r["collector"], r["state"], r["version"]) == ("collector-7", "overdue_escalated", 7)

        frozen.move_to("2026-04-15T06:00:00Z")  # Wednesday 14:00 in Shanghai
        r = story.do(
            "collector",
            "record-contact",
            {"channel": "visit", "outcome": "refused", "note": "site visit: the customer refuses to pay", "customer_attitude": "hostile"},
            event="ContactRecorded",
        )
        assert (r["state"], r["version"], r["days_past_due"], r["legal_referral_suggested"]) == ("overdue_escalated", 8, 14, False)

        frozen.move_to("2026-07-01T02:00:00Z")  # 91 days past due: the policy suggests legal from 90
        waiting = story.get()
        assert (waiting["days_past_due"], waiting["legal_referral_suggested"], waiting["version"]) == (91, True, 8)
        r = story.do(
            "legal",
            "refer-to-legal",
            {"reason": "91 days past due after a broken promise and a refused visit"},
            event="ReferredToLegal",
        )
        assert (r["state"], r["version"], r["days_past_due"], r["legal_referral_suggested"]) == ("legal", 9, 91, False)
        assert {"request_write_off", "record_payment"} <= set(r["allowed_commands"])

        r = story.do(
            "legal",
            "record-contact",
            {"channel": "letter", "outcome": "other", "note": "lawyer's letter sent by registered mail"},
            event="ContactRecorded",
        )
        assert (r["state"], r["version"]) == ("legal", 10)

        frozen.move_to("2026-09-01T02:00:00Z")
        r = story.do(
            "supervisor",
            "request-write-off",
            {"reason": "the debtor is insolvent; litigation would cost more than it recovers"},
            event="WriteOffRequested",
        )
        assert (r["state"], r["version"]) == ("legal", 11)
        assert r["write_off_request"] == {
            "requested_by": "supervisor-1",
            "reason": "the debtor is insolvent; litigation would cost more than it recovers",
        }

        frozen.move_to("2026-09-02T02:00:00Z")
        r = story.do("supervisor-2", "approve-write-off", {"note": "approved: insolvency confirmed"}, event="WriteOffApproved")
        assert (r["state"], r["version"], r["written_off_amount"], r["write_off_request"]) == ("written_off", 11 + 1, "1000.00", None)
        assert (r["balance"], r["paid"], r["recovered"]) == ("1000.00", "200.50", "0.00")
        assert r["allowed_commands"] == ["record_complaint", "resolve_complaint", "record_recovery"]
        assert story.last["data"]["amount"] == "1000.00"
        assert story.last["actor"] == "supervisor-2" and story.events[-2]["actor"] == "supervisor-1"

        frozen.move_to("2026-10-15T02:00:00Z")
        r = story.do(
            "legal",
            "record-recovery",
            payment("300.00", "bank_transfer", "2026-10-15", "COURT-2026-118"),
            event="RecoveryRecorded",
        )
        assert (r["state"], r["version"], r["recovered"], r["written_off_amount"]) == ("written_off", 13, "300.00", "1000.00")
        story.refused(
            "legal",
            "record-recovery",
            payment("700.01", "bank_transfer", "2026-10-15", "COURT-2026-119"),
            422,
            "recovery.exceeds_written_off",
        )

        assert story.types() == [
            "Issued", "FellDue", "FollowUpStarted", "PromiseMade", "PaymentRecorded", "PromiseBroken", "CollectorAssigned",
            "ContactRecorded", "ReferredToLegal", "ContactRecorded", "WriteOffRequested", "WriteOffApproved", "RecoveryRecorded",
        ]
        assert [e["state_after"] for e in story.events] == [
            "issued", "due", "following_up", "promised", "promised", "overdue_escalated", "overdue_escalated",
            "overdue_escalated", "legal", "legal", "legal", "written_off", "written_off",
        ]
        assert [e["role"] for e in story.events] == [
            "service", "service", "service", "collector", "collector", "service", "supervisor",
            "collector", "legal", "legal", "supervisor", "supervisor", "legal",
        ]


def test_an_escalated_dispute_resolved_with_a_lower_amount_settles_what_was_paid(frozen_api):
    register(frozen_api, LA_CUSTOMER)
    story = Story(frozen_api, "INV-LA-DISPUTE")
    with freeze_time("2026-03-02T17:00:00Z") as frozen:
        story.issue(customer_id="C-LA-1", currency="USD", amount="1200.50")
        frozen.move_to("2026-04-01T07:00:00Z")
        story.do("service", "fall-due", event="FellDue")

        frozen.move_to("2026-05-01T17:00:00Z")  # 10:00 PDT, 30 days past due in Los Angeles
        r = story.do("collector", "escalate", {"reason": "30 days past due, no answer to two letters"}, event="Escalated")
        assert (r["state"], r["version"], r["days_past_due"]) == ("overdue_escalated", 3, 30)

        r = story.do("customer_service", "raise-dispute", {"reason": "two of ten units arrived damaged"}, event="DisputeRaised")
        assert (r["state"], r["version"], r["balance"]) == ("overdue_escalated", 4, "1200.50")
        assert r["dispute"] == {
            "reason": "two of ten units arrived damaged",
            "raised_by": "customer_service-1",
            "raised_at": "2026-05-01T17:00:00Z",
        }

        frozen.move_to("2026-05-04T18:00:00Z")
        r = story.do("service", "record-payment", payment("1000.00", "bank_transfer", "2026-05-04", "ACH-55120"), event="PaymentRecorded")
        assert (r["state"], r["version"], r["balance"], r["paid"]) == ("overdue_escalated", 5, "200.50", "1000.00")
        assert r["dispute"] is not None, "a payment does not close the dispute"

        frozen.move_to("2026-05-06T18:00:00Z")
        r = story.do(
            "customer_service",
            "resolve-dispute",
            {"resolution": "credit note CN-17 for the two damaged units", "adjusted_amount": "1000.00"},
            event="DisputeResolved",
        )
        assert (r["state"], r["version"], r["amount"], r["balance"], r["paid"]) == ("settled", 6, "1200.50", "0.00", "1000.00")
        assert (r["dispute"], r["allowed_commands"], r["days_past_due"]) == (None, SETTLED_ALLOWS, 0)
        assert story.last["data"] == {
            "resolution": "credit note CN-17 for the two damaged units", "adjusted_amount": "1000.00", "balance_after": None
        }
        assert story.last["reason"] == "credit note CN-17 for the two damaged units"
        assert story.types() == ["Issued", "FellDue", "Escalated", "DisputeRaised", "PaymentRecorded", "DisputeResolved"]


def test_an_installment_plan_is_agreed_and_paid_off_installment_by_installment(frozen_api):
    register(frozen_api, CUSTOMER)
    story = Story(frozen_api, "INV-SH-PLAN")
    schedule = [
        {"due_on": "2026-04-15", "amount": "400.50"},
        {"due_on": "2026-05-15", "amount": "400.00"},
        {"due_on": "2026-06-15", "amount": "400.00"},
    ]
    with freeze_time("2026-03-02T01:00:00Z") as frozen:
        story.issue()
        frozen.move_to("2026-03-31T16:00:00Z")
        story.do("service", "fall-due", event="FellDue")

        frozen.move_to("2026-04-03T02:00:00Z")
        story.refused(
            "collector",
            "agree-installment-plan",
            {"installments": schedule[:2], "reason": "cash-flow trouble"},
            422,
            "installments.sum",
        )
        r = story.do(
            "collector",
            "agree-installment-plan",
            {"installments": schedule, "reason": "cash-flow trouble after a lost contract"},
            event="InstallmentPlanAgreed",
        )
        assert (r["state"], r["version"], r["promise"]) == ("promised", 3, None)
        assert r["installment_plan"] == {"installments": schedule, "paid_towards": "0.00"}

        for number, (item, balance) in enumerate(zip(schedule, ["800.00", "400.00", "0.00"], strict=True), start=1):
            frozen.move_to(f"{item['due_on']}T02:00:00Z")
            r = story.do(
                "service",
                "record-payment",
                payment(item["amount"], "bank_transfer", item["due_on"], f"PLAN-{number}"),
                event="PaymentRecorded",
            )
            assert (r["balance"], r["version"]) == (balance, 3 + number)
        assert (r["state"], r["installment_plan"], r["allowed_commands"]) == ("settled", None, SETTLED_ALLOWS)
        assert story.types() == ["Issued", "FellDue", "InstallmentPlanAgreed", "PaymentRecorded", "PaymentRecorded", "PaymentRecorded"]


def test_a_supervisor_override_is_recorded_on_the_event_it_let_through(api):
    register(api, CUSTOMER)
    story = Story(api, "INV-SH-OVERRIDE")
    api.services.clock.at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    story.issue()
    api.services.clock.at = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    story.do("service", "fall-due", event="FellDue")
    # The default policy allows no visit while a receivable is merely due.
    override = {"rule_id": "contact.channel_not_allowed", "reason": "the customer asked us to come by"}
    r = story.do(
        "supervisor",
        "start-follow-up",
        {"channel": "visit", "note": "visit the finance office as the customer asked", "override": override},
        event="FollowUpStarted",
    )
    assert (r["state"], r["version"]) == ("following_up", 3)
    assert story.last["override"] == override
    assert "override" not in story.last["data"]
    assert [e["override"] for e in story.events[:-1]] == [None, None]
