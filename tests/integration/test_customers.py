"""The customer file over HTTP: register with the full file, read (PII masked by role),
change it with PATCH (one event per kind of change, If-Match, Idempotency-Key), list it
with filters; refusals change nothing."""

from __future__ import annotations

from typing import Any

from collections_es.domain.customer import Customer, customer_uuid
from collections_es.domain.trail import stored_event_hash

from .conftest import CUSTOMER, Api

FULL = CUSTOMER | {
    "language": "zh-CN",
    "contact_persons": [{"name": "张伟", "role": "财务经理", "email": "zhang.wei@example.com", "phone": "13812345678"}],
    "credit_limit": {"amount": "50000.00", "currency": "CNY"},
    "credit_rating": "B",
    "ability_to_pay": "现金流稳定，季度末偏紧",
    "willingness_to_pay": "合作意愿高",
}


def register(api: Api, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.as_("supervisor").post("/customers", json=body or FULL)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_customer_file_keeps_contacts_credit_limit_and_sales_notes(api: Api) -> None:
    created = register(api)
    shown = api.as_("collector").get("/customers/C-SH-1")
    assert shown.status_code == 200
    body = shown.json()
    assert body == created | {"contacts_masked": False}
    assert body["credit_limit"] == {"amount": "50000.00", "currency": "CNY"}
    assert body["contact_persons"][0]["name"] == "张伟"
    assert body["ability_to_pay"] == "现金流稳定，季度末偏紧"
    assert body["willingness_to_pay"] == "合作意愿高"
    assert [n["topic"] for n in body["notes"]] == ["ability_to_pay", "willingness_to_pay"]
    assert shown.headers["ETag"] == '"1"'


def test_contacts_and_contact_persons_are_masked_for_roles_without_need(api: Api) -> None:
    register(api)
    body = api.as_("auditor").get("/customers/C-SH-1").json()
    assert body["contacts_masked"] is True
    assert body["contacts"]["phone"] == "138****5678"
    assert body["contact_persons"][0]["email"] == "z****@example.com"
    assert body["contact_persons"][0]["role"] == "财务经理"
    assert "张伟" not in str(body["contact_persons"])


def test_a_patch_records_one_event_per_kind_of_change(api: Api) -> None:
    register(api)
    response = api.as_("sales").patch(
        "/customers/C-SH-1",
        json={
            "tier": "C",
            "language": "en",
            "contacts": {"email": "ap@example.com"},
            "credit_limit": {"amount": "80000", "currency": "CNY"},
            "willingness_to_pay": "承诺季度末付清",
        },
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 5
    assert body["tier"] == "C" and body["language"] == "en"
    assert body["contacts"] == {"email": "a****@example.com"}  # sales sees contacts masked
    assert api.as_("supervisor").get("/customers/C-SH-1").json()["contacts"] == {"email": "ap@example.com"}
    assert body["credit_limit"] == {"amount": "80000.00", "currency": "CNY"}
    assert body["willingness_to_pay"] == "承诺季度末付清"
    events = list(api.services.app.events.get(customer_uuid("C-SH-1")))
    assert [type(e).__name__ for e in events] == ["Registered", "Updated", "ContactsChanged", "CreditLimitSet", "NoteAdded"]
    assert events[1].changes == {"tier": "C", "language": "en"}
    assert {e.actor_id for e in events[1:]} == {"sales-1"}
    assert all(stored_event_hash(e) == e.hash for e in events)
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]


def test_a_patch_that_changes_nothing_records_nothing(api: Api) -> None:
    register(api)
    response = api.as_("sales").patch("/customers/C-SH-1", json={"tier": FULL["tier"], "contacts": FULL["contacts"]})
    assert response.status_code == 200
    assert response.json()["version"] == 1


def test_a_patch_on_a_stale_version_is_412_and_changes_nothing(api: Api) -> None:
    register(api)
    assert api.as_("sales").patch("/customers/C-SH-1", json={"tier": "C"}).status_code == 200
    stale = api.as_("sales").patch("/customers/C-SH-1", json={"tier": "D"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert api.as_("sales").get("/customers/C-SH-1").json()["tier"] == "C"


def test_a_repeated_patch_with_the_same_idempotency_key_is_applied_once(api: Api) -> None:
    register(api)
    headers = {"Idempotency-Key": "patch-1"}
    first = api.as_("sales").patch("/customers/C-SH-1", json={"ability_to_pay": "好转"}, headers=headers)
    again = api.as_("sales").patch("/customers/C-SH-1", json={"ability_to_pay": "好转"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.json()["version"] == 2
    other = api.as_("sales").patch("/customers/C-SH-1", json={"ability_to_pay": "变差"}, headers=headers)
    assert other.status_code == 422


def test_bad_patches_are_refused_with_the_field_at_fault_and_change_nothing(api: Api) -> None:
    register(api)
    cases = [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"credit_limit": {"amount": "10.001", "currency": "CNY"}}, "credit_limit.amount"),
        ({"credit_limit": {"amount": "10", "currency": "XXQ"}}, "credit_limit.currency"),
        ({"preferred_channel": "pigeon"}, "preferred_channel"),
        ({"language": "fr"}, "language"),
        ({"name": "x" * 201}, "name"),
        ({"nickname": "x"}, "nickname"),
        ({"name": None}, "name"),
    ]
    for body, field in cases:
        response = api.as_("sales").patch("/customers/C-SH-1", json=body)
        assert response.status_code in (400, 422), (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in response.json().get("errors", [])] + [response.json().get("field")]
        assert any(f and f.startswith(field) for f in fields), (body, response.json())
    assert api.as_("sales").get("/customers/C-SH-1").json()["version"] == 1


def test_only_roles_that_keep_the_file_may_change_it(api: Api) -> None:
    register(api)
    assert api.as_("collector").patch("/customers/C-SH-1", json={"tier": "C"}).status_code == 403
    assert api.as_("supervisor").patch("/customers/C-SH-1", json={"tier": "C"}).status_code == 200


def test_customers_are_listed_with_filters_and_a_cursor(api: Api) -> None:
    for i, (tier, channel) in enumerate([("A", "email"), ("B", "sms"), ("A", "sms"), ("A", "email")]):
        register(api, CUSTOMER | {"customer_id": f"C-{i}", "name": f"Firm {i} 贸易", "tier": tier, "preferred_channel": channel})
    api.as_("sales").patch("/customers/C-3", json={"tier": "C"})
    everyone = api.as_("auditor").get("/customers").json()
    assert [c["customer_id"] for c in everyone["items"]] == ["C-0", "C-1", "C-2", "C-3"]
    tier_a = api.as_("auditor").get("/customers", params={"tier": "A"}).json()
    assert [c["customer_id"] for c in tier_a["items"]] == ["C-0", "C-2"]
    sms = api.as_("auditor").get("/customers", params={"preferred_channel": "sms", "limit": 1}).json()
    assert [c["customer_id"] for c in sms["items"]] == ["C-1"] and sms["next_cursor"] == "C-1"
    rest = api.as_("auditor").get("/customers", params={"preferred_channel": "sms", "cursor": "C-1"}).json()
    assert [c["customer_id"] for c in rest["items"]] == ["C-2"] and rest["next_cursor"] is None
    named = api.as_("auditor").get("/customers", params={"name": "Firm 3"}).json()
    assert [(c["customer_id"], c["tier"]) for c in named["items"]] == [("C-3", "C")]
    assert api.as_("auditor").get("/customers", params={"preferred_channel": "pigeon"}).status_code == 422


def test_the_customers_list_rebuilds_to_the_same_rows(api: Api) -> None:
    register(api)
    api.as_("sales").patch("/customers/C-SH-1", json={"tier": "A", "credit_limit": None})
    before = api.as_("auditor").get("/customers").json()
    api.services.projections.rebuild("customers")
    assert api.as_("auditor").get("/customers").json() == before


def test_a_registration_recorded_before_the_file_grew_still_loads_and_verifies(services) -> None:
    from datetime import UTC, datetime

    from collections_es.domain.trail import Actor, Context, event_hash

    ctx = Context(Actor("service-1", "service"), datetime(2026, 3, 2, tzinfo=UTC), "corr-old", services.app.policy())
    old_fields = {
        "customer_id": "C-OLD",
        "name": "Old Firm",
        "timezone": "Asia/Shanghai",
        "tier": "standard",
        "preferred_channel": "email",
        "contacts": {"email": "old@example.com"},
    }
    customer = Customer._start(Customer.Registered, ctx, id=customer_uuid("C-OLD"), **old_fields)
    (pending,) = customer.pending_events
    # Store it exactly as the first release did: without the keys of the fields added later.
    for added in ("language", "contact_persons", "credit_limit", "credit_currency", "credit_rating",
                  "ability_to_pay", "willingness_to_pay",
                  "segment", "strategy_override", "preferred_contact_hours", "strategy"):  # issue 13
        pending.__dict__.pop(added, None)
    services.app.save(customer)

    (event,) = services.app.events.get(customer_uuid("C-OLD"))
    assert "language" not in event.__dict__
    first_release_fields = {k: v for k, v in event.__dict__.items() if k != "hash"} | {
        "originator_topic": event.originator_topic
    }
    assert event.hash == event_hash("Customer.Registered", first_release_fields)
    assert stored_event_hash(event) == event.hash
    loaded: Customer = services.app.get_customer("C-OLD")
    assert loaded.language == "zh-CN" and loaded.contact_persons == [] and loaded.credit_limit is None
