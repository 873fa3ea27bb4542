"""Reads over HTTP: a receivable now, at a version, as of an instant, by id or
invoice number; the filtered, cursor-paginated list; the customer file with
contacts masked for roles without need; the OpenAPI document; health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from collections_es.application.access import ROLES
from collections_es.domain import lifecycle

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice

LA_CUSTOMER = {**CUSTOMER, "customer_id": "C-LA-1", "name": "Pacific Trading LLC", "timezone": "America/Los_Angeles"}


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def register(api: Api, *customers: dict[str, Any]) -> None:
    for customer in customers:
        ok(api.as_("supervisor").post("/customers", json=customer), 201)


def pay(amount: str, reference: str, paid_on: str = "2026-03-02") -> dict[str, str]:
    return {"amount": amount, "method": "bank_transfer", "paid_on": paid_on, "reference": reference}


# ---- one receivable, then and now --------------------------------------------


def test_a_receivable_reads_as_it_was_at_each_version_and_as_of_each_instant(api):
    register(api, CUSTOMER)
    clock = api.services.clock
    clock.at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    rid = ok(api.as_("service").post("/receivables", json=invoice()), 201)["id"]
    clock.at = datetime(2026, 4, 5, 4, 0, tzinfo=UTC)  # 12:00 on 04-05 in Shanghai
    ok(api.as_("service").post(f"/receivables/{rid}/fall-due"))
    clock.at = datetime(2026, 4, 11, 2, 0, tzinfo=UTC)
    ok(api.as_("service").post(f"/receivables/{rid}/record-payment", json=pay("200.50", "BANK-1", "2026-04-11")))
    auditor = api.as_("auditor")

    for version, state, balance in [(1, "issued", "1200.50"), (2, "due", "1200.50"), (3, "due", "1000.00")]:
        response = auditor.get(f"/receivables/{rid}", params={"version": version})
        then = ok(response)
        assert (then["version"], then["state"], then["balance"]) == (version, state, balance)
        assert then["allowed_commands"] == lifecycle.allowed_commands(state)
        assert response.headers["etag"] == f'"{version}"'
    assert ok(auditor.get(f"/receivables/{rid}", params={"version": 3})) == ok(auditor.get(f"/receivables/{rid}"))
    assert "no version 4" in auditor.get(f"/receivables/{rid}", params={"version": 4}).json()["detail"]

    for as_of, version, state, days_past_due in [
        ("2026-03-02T01:00:00Z", 1, "issued", 0),  # the very instant it was issued
        ("2026-04-05T03:59:59Z", 1, "issued", 4),  # one second before it fell due: 4 days late all the same
        ("2026-04-05T12:00:00+08:00", 2, "due", 4),  # the same instant as 04:00Z, written in Shanghai time
        ("2026-05-01T00:00:00Z", 3, "due", 30),  # 08:00 on 05-01 in Shanghai
    ]:
        then = ok(auditor.get(f"/receivables/{rid}", params={"as_of": as_of}))
        assert (then["version"], then["state"], then["days_past_due"]) == (version, state, days_past_due), as_of
        assert datetime.fromisoformat(then["as_of"]) == datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    before = auditor.get(f"/receivables/{rid}", params={"as_of": "2026-03-02T00:59:59Z"})
    assert before.status_code == 404 and "did not exist" in before.json()["detail"]


@pytest.mark.parametrize(
    "company_zone, day, version, state, as_of",
    [
        # It fell due at 12:00 on 04-05 in Shanghai (04:00Z).
        ("Asia/Shanghai", "2026-04-04", 1, "issued", "2026-04-04T15:59:59.999999+00:00"),
        ("Asia/Shanghai", "2026-04-05", 2, "due", "2026-04-05T15:59:59.999999+00:00"),
        # In Los Angeles 04-04 ends at 07:00Z on 04-05, after it fell due.
        ("America/Los_Angeles", "2026-04-04", 2, "due", "2026-04-05T06:59:59.999999+00:00"),
        ("UTC", "2026-04-04", 1, "issued", "2026-04-04T23:59:59.999999+00:00"),
    ],
)
def test_a_receivable_as_of_a_day_is_as_it_was_at_the_end_of_that_day_in_the_company_time_zone(
    database_url, clock, company_zone, day, version, state, as_of
):
    services = make_services(database_url, clock, COLLECTIONS_TIMEZONE=company_zone)
    try:
        api = Api(services)
        register(api, CUSTOMER)
        clock.at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
        rid = ok(api.as_("service").post("/receivables", json=invoice()), 201)["id"]
        clock.at = datetime(2026, 4, 5, 4, 0, tzinfo=UTC)
        ok(api.as_("service").post(f"/receivables/{rid}/fall-due"))
        clock.at = datetime(2026, 4, 11, 2, 0, tzinfo=UTC)
        then = ok(api.as_("auditor").get(f"/receivables/{rid}", params={"as_of": day}))
        assert (then["version"], then["state"]) == (version, state)
        assert datetime.fromisoformat(then["as_of"]) == datetime.fromisoformat(as_of)
        # The same as the last instant of the day, given as an instant.
        assert ok(api.as_("auditor").get(f"/receivables/{rid}", params={"as_of": as_of})) == then
        assert api.as_("auditor").get(f"/receivables/{rid}", params={"as_of": "2026-02-28"}).status_code == 404
    finally:
        services.close()


def test_as_of_refuses_what_is_neither_a_day_nor_an_instant_with_its_zone(api):
    register(api, CUSTOMER)
    rid = ok(api.as_("service").post("/receivables", json=invoice()), 201)["id"]
    for value in ("2026-02-30", "0001-01-01", "9999-12-31", "2026-04-01T10:00:00", "1775000000", "04/01/2026"):
        response = api.as_("auditor").get(f"/receivables/{rid}", params={"as_of": value})
        assert response.status_code == 422, (value, response.text)
        assert response.json()["field"] == "as_of", value


def test_a_receivable_is_the_same_whether_named_by_id_or_by_invoice_number(api):
    register(api, CUSTOMER)
    rid = ok(api.as_("service").post("/receivables", json=invoice("INV-2026-0042")), 201)["id"]
    ok(api.as_("service").post("/receivables/INV-2026-0042/record-payment", json=pay("0.50", "BANK-1")))
    auditor = api.as_("auditor")
    by_id, by_number = ok(auditor.get(f"/receivables/{rid}")), ok(auditor.get("/receivables/INV-2026-0042"))
    assert by_id == by_number
    assert (by_number["id"], by_number["invoice_number"]) == (rid, "INV-2026-0042")
    assert (by_number["balance"], by_number["version"]) == ("1200.00", 2)
    assert ok(auditor.get(f"/receivables/{rid}/history")) == ok(auditor.get("/receivables/INV-2026-0042/history"))
    assert ok(auditor.get("/receivables/INV-2026-0042", params={"version": 1}))["balance"] == "1200.50"


# ---- the list ------------------------------------------------------------------


@pytest.fixture
def portfolio(api: Api) -> dict[str, dict[str, Any]]:
    """25 receivables across two customers, two currencies and three collectors,
    some settled, some due, one reassigned; read on 2026-04-10. By invoice number."""
    register(api, CUSTOMER, LA_CUSTOMER)
    clock = api.services.clock
    clock.at = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    made: dict[str, dict[str, Any]] = {}
    for i in range(25):
        body = invoice(
            f"INV-L-{i:02d}",
            customer_id="C-SH-1" if i % 2 == 0 else "C-LA-1",
            currency="USD" if i % 3 == 0 else "CNY",
            amount=f"{100 + i}.00",
            collector=f"collector-{i % 3 + 1}",
            due_on="2026-04-01" if i < 20 else "2026-06-01",
        )
        made[body["invoice_number"]] = ok(api.as_("service").post("/receivables", json=body), 201)
    for i in range(0, 25, 5):
        ok(api.as_("service").post(f"/receivables/INV-L-{i:02d}/record-payment", json=pay(f"{100 + i}.00", f"FULL-{i}")))
    clock.at = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)  # the due date has begun in Shanghai and in Los Angeles
    for i in (1, 2, 3):
        ok(api.as_("service").post(f"/receivables/INV-L-{i:02d}/fall-due"))
    ok(api.as_("supervisor").post("/receivables/INV-L-04/assign-collector", json={"collector": "collector-9"}))
    clock.at = datetime(2026, 4, 10, 4, 0, tzinfo=UTC)
    return made


def listed(api: Api, **query: Any) -> list[str]:
    """Every invoice number the list gives for `query`, following the cursor; checks the pages."""
    numbers: list[str] = []
    ids: list[str] = []
    cursor = None
    limit = query.pop("limit", 50)
    for _ in range(100):
        page = ok(api.as_("collector").get("/receivables", params={**query, "limit": limit, **({"cursor": cursor} if cursor else {})}))
        assert len(page["items"]) <= limit
        numbers += [item["invoice_number"] for item in page["items"]]
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["items"] and cursor == page["items"][-1]["id"]
    assert ids == sorted(ids), "the list is ordered by id across pages"
    assert len(set(ids)) == len(ids), "no item is repeated across pages"
    return numbers


def numbers(*indexes: int) -> set[str]:
    return {f"INV-L-{i:02d}" for i in indexes}


def test_cursor_pages_of_the_list_lose_and_repeat_no_receivable(api, portfolio):
    first = ok(api.as_("collector").get("/receivables", params={"limit": 7}))
    assert len(first["items"]) == 7 and first["next_cursor"] == first["items"][-1]["id"]
    every = listed(api, limit=7)
    assert len(every) == 25 and set(every) == set(portfolio)
    assert set(listed(api, limit=1)) == set(portfolio)
    assert listed(api, limit=25) == every
    la = listed(api, customer_id="C-LA-1", limit=5)
    assert set(la) == numbers(*range(1, 25, 2))


def test_the_list_filters_by_state_customer_collector_currency_and_overdue(api, portfolio):
    assert set(listed(api, state="settled")) == numbers(0, 5, 10, 15, 20)
    assert set(listed(api, state="due")) == numbers(1, 2, 3)
    assert set(listed(api, state="legal")) == set()
    assert set(listed(api, customer_id="C-SH-1")) == numbers(*range(0, 25, 2))
    assert set(listed(api, collector="collector-9")) == numbers(4)
    assert set(listed(api, collector="collector-2")) == numbers(*(i for i in range(25) if i % 3 == 1 and i != 4))
    assert set(listed(api, currency="USD")) == numbers(*range(0, 25, 3))
    assert set(listed(api, overdue="true")) == numbers(*(i for i in range(20) if i % 5 != 0))
    assert set(listed(api, state="issued", customer_id="C-SH-1", currency="CNY")) == numbers(4, 8, 14, 16, 22)
    assert set(listed(api, overdue="false")) == set(portfolio)

    (item,) = ok(api.as_("auditor").get("/receivables", params={"collector": "collector-9"}))["items"]
    assert item == {
        "id": portfolio["INV-L-04"]["id"],
        "invoice_number": "INV-L-04",
        "customer_id": "C-SH-1",
        "collector": "collector-9",
        "state": "issued",
        "currency": "CNY",
        "amount": "104.00",
        "balance": "104.00",
        "issued_on": "2026-03-02",
        "due_on": "2026-04-01",
        "version": 2,
    }
    (paid,) = ok(api.as_("auditor").get(
        "/receivables",
        params={"state": "settled", "currency": "CNY", "customer_id": "C-SH-1", "collector": "collector-2"},
    ))["items"]
    assert (paid["invoice_number"], paid["balance"], paid["amount"]) == ("INV-L-10", "0.00", "110.00")


def test_the_overdue_filter_agrees_with_days_past_due_in_the_customers_time_zone(api):
    register(api, CUSTOMER, LA_CUSTOMER)
    ok(api.as_("service").post("/receivables", json=invoice("INV-SH")), 201)
    ok(api.as_("service").post("/receivables", json=invoice("INV-LA", customer_id="C-LA-1", currency="USD")), 201)
    for at in (
        datetime(2026, 4, 1, 17, 0, tzinfo=UTC),  # 01:00 on 04-02 in Shanghai (1 day late); 10:00 on 04-01 in LA (not late)
        datetime(2026, 4, 2, 2, 0, tzinfo=UTC),  # 10:00 on 04-02 in Shanghai; 19:00 on 04-01 in LA: still not late there
    ):
        api.services.clock.at = at
        late = {n for n in ("INV-SH", "INV-LA") if ok(api.as_("collector").get(f"/receivables/{n}"))["days_past_due"] > 0}
        assert late == {"INV-SH"}
        assert set(listed(api, overdue="true")) == late, at


def test_a_written_off_receivable_is_not_listed_as_overdue(api):
    register(api, CUSTOMER)
    ok(api.as_("service").post("/receivables", json=invoice()), 201)
    api.services.clock.at = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
    ok(api.as_("service").post("/receivables/INV-2026-0001/fall-due"))
    ok(api.as_("collector").post("/receivables/INV-2026-0001/escalate", json={"reason": "no answer"}))
    ok(api.as_("supervisor").post("/receivables/INV-2026-0001/request-write-off", json={"reason": "insolvent"}))
    assert ok(api.as_("supervisor-2").post("/receivables/INV-2026-0001/approve-write-off"))["state"] == "written_off"
    api.services.clock.at = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    assert listed(api, state="written_off") == ["INV-2026-0001"]
    assert listed(api, overdue="true") == []


# ---- the customer file ------------------------------------------------------------


def test_contacts_are_shown_in_full_to_collectors_and_supervisors_and_masked_for_auditors_and_sales(api):
    register(api, CUSTOMER)
    for role in ROLES:
        customer = ok(api.as_(role).get(f"/customers/{CUSTOMER['customer_id']}"))
        assert (customer["name"], customer["timezone"], customer["tier"], customer["version"]) == (
            "上海示例贸易有限公司",
            "Asia/Shanghai",
            "A",
            1,
        )
        contacts = customer["contacts"]
        if role in ("auditor", "sales"):
            assert customer["contacts_masked"] is True, role
            assert contacts["phone"] == "138****5678"
            assert contacts["email"] == "z****@example.com"
            assert contacts["address"].endswith("****") and "世纪大道" not in contacts["address"]
        else:
            assert customer["contacts_masked"] is False, role
            assert contacts == CUSTOMER["contacts"], role


# ---- the API describes itself; health --------------------------------------------


def test_openapi_lists_one_post_route_per_lifecycle_command_in_kebab_case(api):
    document = ok(api.client.get("/openapi.json"))
    paths = document["paths"]
    expected = {f"/receivables/{{receivable_ref}}/{command.replace('_', '-')}" for command in lifecycle.COMMANDS}
    commands = {path for path, ops in paths.items() if path.startswith("/receivables/{receivable_ref}/") and "post" in ops}
    assert commands == expected
    for path in expected:
        operation = paths[path]["post"]
        assert "200" in operation["responses"], path
        assert operation["operationId"], path
    assert "record-payment" in str(sorted(expected)) and "approve-write-off" in str(sorted(expected))
    payment = paths["/receivables/{receivable_ref}/record-payment"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "RecordPayment" in str(payment)
    assert {"/receivables", "/receivables/{receivable_ref}", "/receivables/{receivable_ref}/history", "/customers"} <= set(paths)
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_healthz_answers_and_readyz_reports_the_projection_lag(api):
    assert ok(api.client.get("/healthz")) == {"status": "ok"}
    register(api, CUSTOMER)
    ok(api.as_("service").post("/receivables", json=invoice()), 201)
    ready = ok(api.client.get("/readyz"))
    assert ready["status"] == "ready"
    assert ready["projections"]["receivables"]["lag"] >= 1
    listed(api)  # a list read catches the projection up
    ready = ok(api.client.get("/readyz"))
    assert (ready["status"], ready["projections"]["receivables"]) == ("ready", {"lag": 0})
