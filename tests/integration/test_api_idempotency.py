"""Idempotency-Key over HTTP (docs/api.md, ADR 0003): a retry with the same key and
body gets the first response and records nothing new; the same key with
another body is 422; keys belong to the actor who sent them; concurrent
duplicates record once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import CUSTOMER, Api, invoice

INVOICE = "INV-2026-0001"


def pay(amount: str = "100.00", reference: str = "BANK-1") -> dict[str, Any]:
    return {"amount": amount, "method": "bank_transfer", "paid_on": "2026-03-02", "reference": reference}


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def history(api: Api, ref: str = INVOICE) -> list[dict[str, Any]]:
    response = api.as_("auditor").get(f"/receivables/{ref}/history")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def issued(api: Api) -> str:
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    response = api.as_("service").post("/receivables", json=invoice(INVOICE))
    assert response.status_code == 201, response.text
    return f"/receivables/{INVOICE}"


def test_a_retried_payment_gets_the_first_response_and_is_recorded_once(api, issued):
    first = api.as_("service").post(f"{issued}/record-payment", json=pay(), headers=key("pay-1"))
    assert first.status_code == 200, first.text
    assert (first.json()["balance"], first.json()["version"]) == ("1100.50", 2)
    for _ in range(3):
        again = api.as_("service").post(f"{issued}/record-payment", json=pay(), headers=key("pay-1"))
        assert again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["etag"] == first.headers["etag"] == '"2"'
    assert [e["type"] for e in history(api)] == ["Issued", "PaymentRecorded"]
    assert api.as_("auditor").get(issued).json()["balance"] == "1100.50"


def test_a_retry_gets_the_first_response_even_after_the_receivable_moved_on(api, issued):
    first = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "BANK-1"), headers=key("pay-1"))
    assert api.as_("collector").post(f"{issued}/record-payment", json=pay("200.00", "BANK-2")).status_code == 200
    again = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "BANK-1"), headers=key("pay-1"))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert (again.json()["version"], again.json()["balance"]) == (2, "1100.50")
    assert api.as_("auditor").get(issued).json()["balance"] == "900.50"
    assert len(history(api)) == 3


def test_a_retry_of_a_command_the_state_no_longer_allows_gets_the_first_response_not_409(api, issued):
    first = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "BANK-1"), headers=key("pay-1"))
    assert first.status_code == 200, first.text
    rest = api.as_("service").post(f"{issued}/record-payment", json=pay("1100.50", "BANK-2"))
    assert rest.json()["state"] == "settled" and rest.json()["allowed_commands"] == ["record_complaint", "resolve_complaint"]
    again = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "BANK-1"), headers=key("pay-1"))
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    fresh = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "BANK-1"), headers=key("pay-2"))
    assert (fresh.status_code, fresh.json()["state"]) == (409, "settled")
    assert len(history(api)) == 3


def test_the_same_key_with_another_body_is_422_and_records_nothing(api, issued):
    assert api.as_("service").post(f"{issued}/record-payment", json=pay("100.00"), headers=key("pay-1")).status_code == 200
    before = history(api)
    for other in (pay("100.01"), pay("100.00", "BANK-2")):
        reused = api.as_("service").post(f"{issued}/record-payment", json=other, headers=key("pay-1"))
        assert reused.status_code == 422, reused.text
        assert reused.headers["content-type"].startswith("application/problem+json")
        assert reused.json()["rule_id"] == "idempotency.key_reused"
    # ...and on another route: the key names one request, whatever it was
    reused = api.as_("service").post(f"{issued}/send-reminder", json={"channel": "email"}, headers=key("pay-1"))
    assert (reused.status_code, reused.json()["rule_id"]) == (422, "idempotency.key_reused")
    assert history(api) == before
    assert api.as_("auditor").get(issued).json()["balance"] == "1100.50"


def test_keys_belong_to_the_actor_so_two_clients_may_pick_the_same_key(api, issued):
    by_service = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "ERP-1"), headers=key("1"))
    by_collector = api.as_("collector").post(f"{issued}/record-payment", json=pay("50.00", "DESK-1"), headers=key("1"))
    assert (by_service.status_code, by_collector.status_code) == (200, 200)
    assert (by_service.json()["version"], by_collector.json()["version"]) == (2, 3)
    service_retry = api.as_("service").post(f"{issued}/record-payment", json=pay("100.00", "ERP-1"), headers=key("1"))
    collector_retry = api.as_("collector").post(f"{issued}/record-payment", json=pay("50.00", "DESK-1"), headers=key("1"))
    assert (service_retry.json(), collector_retry.json()) == (by_service.json(), by_collector.json())
    payments = [e for e in history(api) if e["type"] == "PaymentRecorded"]
    assert [(e["actor"], e["data"]["reference"]) for e in payments] == [("service-1", "ERP-1"), ("collector-1", "DESK-1")]


def test_eight_concurrent_duplicates_of_one_payment_record_it_once(api, issued):
    barrier = threading.Barrier(8)
    responses: list[Any] = []

    def send() -> None:
        barrier.wait(timeout=10)
        responses.append(api.as_("service").post(f"{issued}/record-payment", json=pay("300.00", "WIRE-9"), headers=key("wire-9")))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.status_code for r in responses) == [200] * 8, [r.text for r in responses if r.status_code != 200]
    assert len({r.text for r in responses}) == 1
    assert [e["type"] for e in history(api)] == ["Issued", "PaymentRecorded"]
    assert api.as_("auditor").get(issued).json()["balance"] == "900.50"


def test_eight_concurrent_different_payments_are_all_recorded_with_gapless_versions(api, issued):
    barrier = threading.Barrier(8)
    responses: list[Any] = []

    def send(n: int) -> None:
        barrier.wait(timeout=10)
        responses.append(api.as_("service").post(f"{issued}/record-payment", json=pay("10.00", f"P-{n}"), headers=key(f"p-{n}")))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.status_code for r in responses) == [200] * 8
    assert sorted(r.json()["version"] for r in responses) == list(range(2, 10))
    assert [e["version"] for e in history(api)] == list(range(1, 10))
    assert api.as_("auditor").get(issued).json()["balance"] == "1120.50"


def test_a_retried_issue_replays_201_even_after_a_keyless_duplicate_was_refused_409(api):
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    first = api.as_("service").post("/receivables", json=invoice(INVOICE), headers=key("issue-1"))
    assert first.status_code == 201, first.text
    duplicate = api.as_("service").post("/receivables", json=invoice(INVOICE))
    assert duplicate.status_code == 409
    retry = api.as_("service").post("/receivables", json=invoice(INVOICE), headers=key("issue-1"))
    assert retry.status_code == 201
    assert retry.json() == first.json()
    other_key = api.as_("service").post("/receivables", json=invoice(INVOICE), headers=key("issue-2"))
    assert other_key.status_code == 409, "a new key is a new request: the invoice exists"
    assert [e["type"] for e in history(api)] == ["Issued"]


def test_a_retried_customer_registration_replays_201(api):
    first = api.as_("supervisor").post("/customers", json=CUSTOMER, headers=key("cust-1"))
    again = api.as_("supervisor").post("/customers", json=CUSTOMER, headers=key("cust-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert first.json()["version"] == 1


def test_a_refused_request_records_no_key_so_its_retry_is_decided_again(api, issued):
    early = api.as_("service").post(f"{issued}/fall-due", headers=key("due-1"))
    assert (early.status_code, early.json()["rule_id"]) == (422, "fall_due.not_yet")
    api.services.clock.at = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    retried = api.as_("service").post(f"{issued}/fall-due", headers=key("due-1"))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["version"]) == ("due", 2)
    assert api.as_("service").post(f"{issued}/fall-due", headers=key("due-1")).json() == retried.json()
    assert [e["type"] for e in history(api)] == ["Issued", "FellDue"]


def test_an_issue_that_races_past_the_key_check_still_replays_the_first_201(api, monkeypatch, request):
    """The loser of two simultaneous issues with one key misses the key record (the
    winner has not committed yet) and then finds the invoice issued (it has)."""
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    first = api.as_("service").post("/receivables", json=invoice(INVOICE), headers=key("issue-1"))
    assert first.status_code == 201
    original = api.services.app._replay
    calls = {"n": 0}

    def blind_once(req: Any) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 1 else original(req)

    monkeypatch.setattr(api.services.app, "_replay", blind_once)
    loser = api.as_("service").post("/receivables", json=invoice(INVOICE), headers=key("issue-1"))
    assert loser.status_code == 201, loser.text
    assert loser.json() == first.json()
