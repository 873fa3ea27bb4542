"""PII in responses (issue 5, confidentiality): every route that can return contact
details masks them for the roles without need (auditor, sales), also where free text
(contact notes, reasons, sales' notes) quotes them; collectors, supervisors and legal
see them in full where the route shows them. Run with the cipher key set, so what is
shown in full was also read back through the encryption."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.cryptography import AESCipher

from ..conftest import make_services
from . import pii_scenario as scenario
from .conftest import Api

MASKED_FOR = ("auditor", "sales")
FULL_FOR = ("collector", "supervisor", "legal")

# (method, path, body, shows contact details to the roles with need)
READS: list[tuple[str, str, Any, bool]] = [
    ("GET", "/customers/C-PII-1", None, True),
    ("GET", "/customers", None, False),  # the list has no contact details for anyone
    ("GET", "/customers/C-PII-1/credit-record", None, False),
    ("GET", "/customers/C-PII-1/contacts-log", None, True),
    ("GET", "/customers/C-PII-3/contacts-log", None, True),
    ("GET", "/receivables/INV-PII-2/contacts-log", None, True),
    ("GET", "/receivables/INV-PII-3", None, True),  # the dispute's reason quotes them
    ("GET", "/receivables/INV-PII-3?as_of=2026-04-03T03:00:00Z", None, True),
    ("GET", "/receivables/INV-PII-1/history", None, True),
    ("GET", "/receivables/INV-PII-3/history", None, True),
    ("GET", "/notifications", None, True),
    ("GET", "/audit/export?format=jsonl", None, True),
    ("GET", "/audit/export?format=csv", None, True),
    ("GET", "/receivables/INV-PII-1/letters/dunning?lang=en", None, False),  # no address in a dunning letter
    ("GET", "/receivables/INV-PII-1/letters/lawyer_letter", None, True),  # the lawyer's letter is addressed
    ("GET", "/receivables/INV-PII-2/letters/lawyer_letter?lang=en&format=html", None, True),
]


@pytest.fixture
def played(database_url, clock) -> Iterator[Api]:
    with scenario.RefusingMailServer() as mail, scenario.FailingGateway() as gateway:
        services = make_services(
            database_url, clock, COLLECTIONS_CIPHER_KEY=AESCipher.create_key(32), **scenario.transports(mail, gateway)
        )
        api = Api(services)
        try:
            scenario.run(api)
            to_legal(api, "INV-PII-1", "INV-PII-2")
            yield api
        finally:
            services.close()


def to_legal(api: Api, *invoices: str) -> None:
    """Escalated and referred to legal: the stage a lawyer's letter is written at (ADR 0037)."""
    for number in invoices:
        for who, command, reason in (("collector", "escalate", "no payment after the follow-up"),
                                     ("legal", "refer-to-legal", "escalation went unanswered")):
            response = api.as_(who).post(f"/receivables/{number}/{command}", json={"reason": reason})
            assert response.status_code == 200, response.text


def call(api: Api, who: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    client = api.as_(who)
    response = client.get(path) if method == "GET" else getattr(client, method.lower())(path, json=body)
    return response.status_code, response.text


def shown(text: str) -> list[str]:
    """The scenario's contact details that appear in a response body (raw or JSON-escaped)."""
    blob = text.encode("utf-8")
    return [value for value in scenario.pii_strings() if scenario.found_in(blob, value)]


def test_no_read_route_shows_contact_details_to_auditors_or_sales_and_the_others_see_them(played: Api) -> None:
    leaked, hidden, statuses = {}, {}, {}
    for method, path, body, shows in READS:
        for who in MASKED_FOR:
            status, text = call(played, who, method, path, body)
            statuses[(path, who)] = status
            if shown(text):
                leaked[(path, who)] = shown(text)
        for who in FULL_FOR:
            status, text = call(played, who, method, path, body)
            statuses[(path, who)] = status
            if status == 200 and shows and not shown(text):
                hidden[(path, who)] = "nothing shown"
            if not shows and shown(text):
                leaked[(path, who)] = shown(text)
    assert leaked == {}
    assert hidden == {}
    # The routes were really answered (not refused) for the masked roles where access allows it.
    answered = {key for key, status in statuses.items() if status == 200}
    for path in ("/customers/C-PII-1", "/customers/C-PII-1/contacts-log", "/receivables/INV-PII-2/contacts-log",
                 "/receivables/INV-PII-3", "/receivables/INV-PII-1/history"):
        assert {(path, "auditor"), (path, "sales")} <= answered
    assert {("/notifications", "auditor"), ("/audit/export?format=jsonl", "auditor")} <= answered
    assert ("/receivables/INV-PII-1/letters/lawyer_letter", "collector") in answered


def test_masked_responses_keep_their_shape_and_what_is_not_personal(played: Api) -> None:
    customer = played.as_("sales").get("/customers/C-PII-1").json()
    assert customer["contacts_masked"] is True
    assert customer["contacts"] == {"email": "l****@pii-one.example", "phone": "139****1111", "address": "北京市朝阳区****"}
    assert customer["contact_persons"] == [{"name": "王****", "role": "财务经理", "email": "w****@pii-one.example",
                                            "phone": "137****3333"}]
    assert customer["ability_to_pay"] == "王**** (137****3333) says cash comes at month end"
    (entry,) = played.as_("auditor").get("/receivables/INV-PII-2/contacts-log").json()["items"]
    assert entry["note"] == "Spoke to C**** on 136****6666; statement to c****@pii-two.example"
    assert entry["next_step"] == "post a copy to Flat 1****; call 138****9999"
    dispute = played.as_("auditor").get("/receivables/INV-PII-3").json()["dispute"]
    assert dispute["reason"] == "O**** (+16****0199) disputes the quantity"
    (message, *_) = [m for m in played.as_("auditor").get("/notifications").json()["items"] if m["channel"] == "sms"]
    assert message["recipient"] == "136****6666"


def test_command_responses_mask_for_roles_without_need_too(played: Api) -> None:
    # by e-mail: the scenario phoned this customer today already (contact.phone_per_day)
    note = {"channel": "email", "outcome": "other", "note": "wrote back"}
    status, text = call(played, "sales", "POST", "/receivables/INV-PII-3/record-contact", note)
    assert status == 200 and shown(text) == [], text
    status, text = call(played, "collector", "POST", "/receivables/INV-PII-3/record-contact", note)
    assert status == 200 and "+1 650 555 0199" in shown(text)
    person = scenario.PERSONS["C-PII-2"]
    patch = {"willingness_to_pay": f"{person['name']} promised to ask the CFO"}
    status, text = call(played, "sales", "PATCH", "/customers/C-PII-2", patch)
    assert status == 200 and shown(text) == []
    status, text = call(played, "supervisor", "GET", "/customers/C-PII-2")
    assert status == 200 and person["name"] in shown(text)
    new = scenario.CUSTOMERS[0] | {"customer_id": "C-PII-9"}
    status, text = call(played, "sales", "POST", "/customers", new)
    assert status == 201 and shown(text) == []
