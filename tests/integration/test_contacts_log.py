"""The contact log: every recorded contact, with what was said, the customer's attitude,
the reason for non-payment, the promised date and the next step; read per receivable and
per customer; a demand or an acknowledgement marks a limitation-period interruption."""

from __future__ import annotations

from datetime import UTC, datetime

from collections_es.domain.receivable import receivable_id

from .conftest import CUSTOMER, Api, invoice

OTHER = CUSTOMER | {"customer_id": "C-BJ-2", "name": "北京示例科技有限公司"}


def setup(api: Api) -> None:
    for customer in (CUSTOMER, OTHER):
        assert api.as_("supervisor").post("/customers", json=customer).status_code == 201
    for number, customer in (("INV-A", CUSTOMER), ("INV-B", CUSTOMER), ("INV-C", OTHER)):
        body = invoice(number, customer_id=customer["customer_id"])
        assert api.as_("service").post("/receivables", json=body).status_code == 201
    api.services.clock.at = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai
    for number in ("INV-A", "INV-B", "INV-C"):
        assert api.as_("service").post(f"/receivables/{number}/fall-due").status_code == 200
        assert api.as_("service").post(f"/receivables/{number}/start-follow-up").status_code == 200


def contact(api: Api, number: str, **body: str) -> None:
    response = api.as_("collector").post(f"/receivables/{number}/record-contact", json=body)
    assert response.status_code == 200, response.text


def test_each_contact_is_logged_with_its_details_per_customer_and_per_receivable(api: Api) -> None:
    setup(api)
    contact(api, "INV-A", channel="phone", outcome="acknowledged", note="承认欠款，月底前付款",
            customer_attitude="合作", reason_for_non_payment="资金周转困难", promised_on="2026-04-30",
            next_step="4月30日再跟进")
    contact(api, "INV-C", channel="email", outcome="no_answer", note="邮件无回复")
    contact(api, "INV-B", channel="sms", outcome="refused", note="拒绝付款", customer_attitude="敌对",
            reason_for_non_payment="对质量有异议")

    log = api.as_("auditor").get("/customers/C-SH-1/contacts-log").json()
    assert [(e["invoice_number"], e["outcome"]) for e in log["items"]] == [("INV-A", "acknowledged"), ("INV-B", "refused")]
    first = log["items"][0]
    assert first == first | {
        "receivable_id": str(receivable_id("INV-A")),
        "customer_id": "C-SH-1",
        "actor": "collector-1",
        "role": "collector",
        "channel": "phone",
        "note": "承认欠款，月底前付款",
        "customer_attitude": "合作",
        "reason_for_non_payment": "资金周转困难",
        "promised_on": "2026-04-30",
        "next_step": "4月30日再跟进",
        "interrupts_limitation": True,
    }
    assert first["occurred_at"].startswith("2026-04-03T02:00:00")
    assert log["items"][1]["interrupts_limitation"] is True  # refused, but reached and asked: a demand
    no_answer = api.as_("auditor").get("/customers/C-BJ-2/contacts-log").json()["items"]
    assert [e["interrupts_limitation"] for e in no_answer] == [False]

    per_receivable = api.as_("auditor").get("/receivables/INV-C/contacts-log").json()
    assert [e["note"] for e in per_receivable["items"]] == ["邮件无回复"]
    assert per_receivable["items"][0]["reason_for_non_payment"] is None


def test_an_acknowledged_contact_restarts_the_limitation_period(api: Api) -> None:
    setup(api)
    policy = api.services.app.policy()
    before = api.services.app.get_receivable(receivable_id("INV-A")).limitation_lapses_on(policy)
    contact(api, "INV-A", channel="phone", outcome="acknowledged", note="承认欠款")
    after = api.services.app.get_receivable(receivable_id("INV-A")).limitation_lapses_on(policy)
    # Due 1 April 2026: from the day after (art. 188); then from the acknowledgement on 3 April.
    assert (before.isoformat(), after.isoformat()) == ("2029-04-02", "2029-04-03")


def test_the_contact_log_pages_with_a_cursor_and_rebuilds_the_same(api: Api) -> None:
    setup(api)
    for i in range(3):
        contact(api, "INV-A", channel="email", outcome="left_message", note=f"第{i + 1}次")
    page = api.as_("collector").get("/customers/C-SH-1/contacts-log", params={"limit": 2}).json()
    assert [e["note"] for e in page["items"]] == ["第1次", "第2次"]
    rest = api.as_("collector").get("/customers/C-SH-1/contacts-log", params={"cursor": page["next_cursor"]}).json()
    assert [e["note"] for e in rest["items"]] == ["第3次"] and rest["next_cursor"] is None
    whole = api.as_("collector").get("/customers/C-SH-1/contacts-log").json()
    api.services.projections.rebuild("contacts_log")
    assert api.as_("collector").get("/customers/C-SH-1/contacts-log").json() == whole


def test_an_overlong_reason_for_non_payment_is_refused_and_nothing_is_logged(api: Api) -> None:
    setup(api)
    response = api.as_("collector").post(
        "/receivables/INV-A/record-contact",
        json={"channel": "phone", "outcome": "refused", "note": "n", "reason_for_non_payment": "x" * 2001},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "reason_for_non_payment"
    assert api.as_("collector").get("/receivables/INV-A/contacts-log").json()["items"] == []
    assert api.as_("collector").get("/customers/C-NOBODY/contacts-log").status_code == 404
