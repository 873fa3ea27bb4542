"""The limitation period over HTTP (docs/limitation.md, ADR 0036): a dunning e-mail that
the real SMTP server (aiosmtpd on loopback) accepted is a demand recorded on the
receivable by the notifier, and restarts the period; proceedings filed in `legal`
restart it too; the warning timer follows the period.

The invoice: CNY 1,200.50 to a customer in Shanghai, due Wednesday 1 April 2026, so
the period runs from 2 April 2026 and, three years long, lapses on 2 April 2029.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from collections_es.application.notifier import Delivery
from collections_es.application.service import Request
from collections_es.bootstrap import delivery_recorder
from collections_es.domain.errors import RuleViolationError
from collections_es.domain.trail import Actor

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice
from .test_notifications import Mailbox, wired

NUMBER = "INV-LIM-1"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def mailing(database_url: str, clock: Any, mailbox: Mailbox) -> Iterator[Api]:
    services = wired(database_url, clock, mailbox)
    yield Api(services)
    services.close()


def at(api: Api, instant: str) -> datetime:
    moment = datetime.fromisoformat(instant).astimezone(UTC)
    api.services.clock.at = moment
    return moment


def receivable(api: Api, who: str = "auditor") -> dict[str, Any]:
    response = api.as_(who).get(f"/receivables/{NUMBER}")
    assert response.status_code == 200, response.text
    return response.json()


def post(api: Api, who: str, command: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
    response = api.as_(who).post(f"/receivables/{NUMBER}/{command}", json=body)
    assert response.status_code == status, response.text
    return response.json()


def in_follow_up(api: Api) -> None:
    """Registered, issued, due, and follow-up started on Thursday 2 April (queues the first dunning message)."""
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice(NUMBER)).status_code == 201
    at(api, "2026-04-02T02:00:00Z")
    post(api, "service", "fall-due")
    post(api, "service", "start-follow-up")


def history(api: Api) -> list[dict[str, Any]]:
    return api.as_("auditor").get(f"/receivables/{NUMBER}/history").json()


def test_a_dunning_email_accepted_by_the_smtp_server_is_a_demand_that_restarts_the_period(
    mailing: Api, mailbox: Mailbox
) -> None:
    in_follow_up(mailing)
    queued = receivable(mailing)["limitation"]
    assert queued == {"started_on": "2026-04-02", "lapses_on": "2029-04-02", "last_interruption": None}

    at(mailing, "2026-04-03T02:00:00Z")  # Friday 10:00 in Shanghai
    (attempt,) = mailing.services.notifier.run_once()
    assert attempt.status == "sent" and len(mailbox.received) == 1
    delivered = history(mailing)[-1]
    assert (delivered["type"], delivered["actor"], delivered["role"], delivered["state_after"]) == (
        "DeliveryRecorded", "system:notifier", "service", "following_up"
    )
    assert delivered["data"] == {
        "message_id": attempt.id, "channel": "email", "template": "first_dunning", "delivered_at": "2026-04-03T02:00:00+00:00"
    }
    shown = receivable(mailing)
    assert shown["limitation"] == {
        "started_on": "2026-04-03",
        "lapses_on": "2029-04-03",
        "last_interruption": {"kind": "demand", "on": "2026-04-03", "version": delivered["version"]},
    }
    assert shown["limitation"]["lapses_on"] > queued["lapses_on"]
    # Nothing is due any more, and the same message is never recorded twice.
    assert mailing.services.notifier.run_once() == []
    again = Delivery(attempt.id, shown["id"], "email", "first_dunning", datetime(2026, 4, 3, 2, tzinfo=UTC))
    with pytest.raises(RuleViolationError) as refused:
        delivery_recorder(mailing.services.app)(again)
    assert refused.value.rule_id == "delivery.duplicate"
    assert [e["type"] for e in history(mailing)].count("DeliveryRecorded") == 1


def test_a_message_delivered_after_the_receivable_settled_is_sent_and_not_recorded(mailing: Api, mailbox: Mailbox) -> None:
    in_follow_up(mailing)
    post(mailing, "service", "record-payment",
         {"amount": "1200.50", "method": "bank_transfer", "paid_on": "2026-04-02", "reference": "PAY-1"})
    assert receivable(mailing)["state"] == "settled"
    (attempt,) = mailing.services.notifier.run_once()  # the dunning message queued before the payment
    assert attempt.status == "sent" and len(mailbox.received) == 1
    assert "DeliveryRecorded" not in [e["type"] for e in history(mailing)]


def test_the_limitation_warning_moves_with_a_delivered_demand(mailing: Api, mailbox: Mailbox) -> None:
    in_follow_up(mailing)
    at(mailing, "2026-04-03T02:00:00Z")
    mailing.services.notifier.run_once()  # delivered on 3 April: the period now lapses on 3 April 2029
    services = mailing.services

    def warned() -> list[str]:
        return [e["data"]["lapses_on"] for e in history(mailing) if e["type"] == "LimitationWarned"]

    # 90 days before the old lapse date (2 April 2029) is midnight on 2 January in Shanghai: nothing.
    services.scheduler.tick(at(mailing, "2029-01-01T16:00:00Z"))
    assert warned() == []
    # 90 days before the new one: the warning.
    services.scheduler.tick(at(mailing, "2029-01-02T16:00:00Z"))
    assert warned() == ["2029-04-03"]


def test_proceedings_are_recorded_in_legal_and_restart_the_period_from_the_day_filed(api: Api) -> None:
    in_follow_up(api)
    post(api, "service", "escalate", {"reason": "no answer"})
    at(api, "2026-07-01T02:00:00Z")
    post(api, "legal", "refer-to-legal", {"reason": "91 days past due"})
    body = {"kind": "suit", "filed_on": "2026-07-01", "case_number": "(2026)沪0115民初1234号"}
    assert api.as_("collector").post(f"/receivables/{NUMBER}/record-proceedings", json=body).status_code == 403
    shown = post(api, "legal", "record-proceedings", body)
    assert shown["state"] == "legal"
    assert shown["limitation"] == {
        "started_on": "2026-07-01",
        "lapses_on": "2029-07-01",
        "last_interruption": {"kind": "proceedings", "on": "2026-07-01", "version": shown["version"]},
    }
    assert history(api)[-1]["data"] == {"kind": "suit", "filed_on": "2026-07-01", "case_number": "(2026)沪0115民初1234号"}
    refused = post(api, "supervisor", "record-proceedings", body | {"filed_on": "2026-07-02", "case_number": "X-2"}, status=422)
    assert refused["rule_id"] == "proceedings.future_date"


def test_proceedings_outside_legal_are_a_conflict_naming_the_state(api: Api) -> None:
    in_follow_up(api)
    body = {"kind": "arbitration", "filed_on": "2026-04-02", "case_number": "SHIAC-1"}
    refused = post(api, "legal", "record-proceedings", body, status=409)
    assert refused["state"] == "following_up" and "record_proceedings" not in refused["allowed_commands"]
    assert "record_delivery" in refused["allowed_commands"]


def test_a_legal_team_member_records_a_lawyers_letter_delivered_by_courier(api: Api) -> None:
    in_follow_up(api)
    at(api, "2026-04-10T02:00:00Z")
    letter = {"message_id": f"EMS-{uuid.uuid4().hex[:8]}", "channel": "letter", "template": "lawyer",
              "delivered_at": "2026-04-09T06:00:00Z"}
    assert api.as_("collector").post(f"/receivables/{NUMBER}/record-delivery", json=letter).status_code == 403
    shown = post(api, "legal", "record-delivery", letter)
    assert shown["limitation"]["last_interruption"] == {"kind": "demand", "on": "2026-04-09", "version": shown["version"]}
    assert post(api, "legal", "record-delivery", letter, status=422)["rule_id"] == "delivery.duplicate"


def test_a_receivable_loaded_from_a_snapshot_has_the_period_of_a_full_replay(database_url: str, clock: Any) -> None:
    services = make_services(database_url, clock, COLLECTIONS_SNAPSHOT_INTERVAL=2)
    try:
        api = Api(services)
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        rid = uuid.UUID(api.as_("service").post("/receivables", json=invoice(NUMBER)).json()["id"])
        at(api, "2026-04-10T02:00:00Z")
        notifier = Request(Actor("system:notifier", "service"))
        for n, day in enumerate(("2026-04-08", "2026-04-09", "2026-04-03")):
            services.app.execute(notifier, rid, "record_delivery", message_id=f"m-{n}", channel="email",
                                 template="dunning", delivered_at=datetime.fromisoformat(f"{day}T02:00:00+00:00"))
        assert [s.originator_version for s in services.app.snapshots.get(rid)] == [2, 4]
        loaded = services.app.get_receivable(rid)
        replayed = None
        for event in services.app.events.get(rid):
            replayed = event.mutate(replayed)
        assert loaded.limitation_period == replayed.limitation_period
        assert loaded.limitation_period.last_interruption == {"kind": "demand", "on": date(2026, 4, 9), "version": 3}
        assert loaded.delivered_messages == replayed.delivered_messages == ["m-0", "m-1", "m-2"]
    finally:
        services.close()
