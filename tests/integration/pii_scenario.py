"""A scenario full of known contact details, shared by the confidentiality tests.

Three customers with known e-mails, phones, addresses and contact persons;
receivables issued; reminders and a dunning message rendered into the outbox
and sent to an SMTP server that refuses them, echoing the address (as real
servers do), and to an SMS gateway that fails; contacts recorded with notes that
quote the contact details; a dispute whose reason quotes them; sales' notes on
the customer file that quote them; every read model caught up.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from .conftest import Api, invoice

PERSONS = {
    "C-PII-1": {"name": "王芳芳", "role": "财务经理", "email": "wang.fangfang@pii-one.example", "phone": "13722223333"},
    "C-PII-2": {"name": "Chen Jingyi", "role": "accounts payable", "email": "chen.jingyi@pii-two.example", "phone": "13811119999"},
    "C-PII-3": {"name": "Olivia Pemberton", "role": "controller", "email": "olivia.p@pii-three.example", "phone": "+1 650 555 0199"},
}
CUSTOMERS = [
    {
        "customer_id": "C-PII-1",
        "name": "北京示例贸易有限公司",
        "timezone": "Asia/Shanghai",
        "preferred_channel": "email",
        "contacts": {"email": "li.na@pii-one.example", "phone": "13900001111", "address": "北京市朝阳区建国路八十八号现代城"},
        "contact_persons": [PERSONS["C-PII-1"]],
    },
    {
        "customer_id": "C-PII-2",
        "name": "Harbour Traders Ltd",
        "timezone": "Asia/Shanghai",
        "preferred_channel": "sms",
        "language": "en",
        "contacts": {"email": "zhao.lei@pii-two.example", "phone": "13655556666", "address": "Flat 12, 34 Harbour Road, Wan Chai"},
        "contact_persons": [PERSONS["C-PII-2"]],
    },
    {
        "customer_id": "C-PII-3",
        "name": "Parkway Components",
        "timezone": "Asia/Shanghai",
        "preferred_channel": "email",
        "language": "en",
        "contacts": {"email": "ap@pii-three.example", "phone": "13544447777", "address": "1600 Amphitheatre Parkway, Suite 9"},
        "contact_persons": [PERSONS["C-PII-3"]],
    },
]


def pii_strings() -> list[str]:
    """Every contact detail of the scenario: what must never be seen where it should not."""
    found = []
    for customer in CUSTOMERS:
        found += list(customer["contacts"].values())
        for person in customer["contact_persons"]:
            found += [person["name"], person["email"], person["phone"]]
    return found


def encodings(value: str) -> list[bytes]:
    """The forms a string takes in a database: UTF-8, and JSON-escaped (ASCII and not)."""
    forms = {value.encode("utf-8"), json.dumps(value).strip('"').encode("utf-8"),
             json.dumps(value, ensure_ascii=False).strip('"').encode("utf-8")}
    return sorted(forms)


def found_in(blob: bytes, value: str) -> bool:
    return any(form in blob for form in encodings(value))


# ---- the outside world: servers that refuse ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RefusingMailServer:
    """An SMTP server on loopback that refuses every recipient, quoting the address back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.refused: list[str] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:  # noqa: N802
        self.refused.append(address)
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"

    def __enter__(self) -> RefusingMailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class FailingGateway:
    """An SMS gateway on loopback that answers 400 quoting the number back."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.received.append(body)
                answer = json.dumps({"error": f"number {body['to']} is not reachable"}).encode()
                self.send_response(400)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FailingGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def transports(mail: RefusingMailServer, gateway: FailingGateway) -> dict[str, Any]:
    """Settings that send through the two servers above."""
    return {
        "COLLECTIONS_SMTP_HOST": "127.0.0.1",
        "COLLECTIONS_SMTP_PORT": mail.port,
        "COLLECTIONS_SMTP_SECURITY": "none",
        "COLLECTIONS_SMTP_TIMEOUT_SECONDS": 5,
        "COLLECTIONS_SMS_WEBHOOK_URL": gateway.url,
    }


# ---- the scenario -------------------------------------------------------------------------


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


def run(api: Api) -> dict[str, str]:
    """Play the scenario; returns customer id → invoice number."""
    services = api.services
    services.clock.at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    invoices = {}
    for i, customer in enumerate(CUSTOMERS, start=1):
        ok(api.as_("supervisor").post("/customers", json=customer), 201)
        number = f"INV-PII-{i}"
        ok(api.as_("service").post("/receivables", json=invoice(number, customer_id=customer["customer_id"])), 201)
        invoices[customer["customer_id"]] = number
    person = PERSONS["C-PII-1"]
    ok(api.as_("sales").patch("/customers/C-PII-1", json={
        "ability_to_pay": f"{person['name']} ({person['phone']}) says cash comes at month end",
    }))
    services.clock.at = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
    ok(api.as_("service").post("/receivables/INV-PII-1/send-reminder", json={"channel": "email"}))
    ok(api.as_("service").post("/receivables/INV-PII-2/send-reminder", json={"channel": "sms"}))
    services.clock.at = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai
    for customer in CUSTOMERS:
        number = invoices[customer["customer_id"]]
        ok(api.as_("service").post(f"/receivables/{number}/fall-due"))
        ok(api.as_("service").post(f"/receivables/{number}/start-follow-up"))
        person = customer["contact_persons"][0]
        contacts = customer["contacts"]
        ok(api.as_("collector").post(f"/receivables/{number}/record-contact", json={
            "channel": "phone",
            "outcome": "acknowledged",
            "note": f"Spoke to {person['name']} on {contacts['phone']}; statement to {person['email']}",
            "customer_attitude": f"{person['name']} was cooperative",
            "reason_for_non_payment": f"invoice was sent to {contacts['email']}, not to {person['email']}",
            "next_step": f"post a copy to {contacts['address']}; call {person['phone']}",
        }))
    person = PERSONS["C-PII-3"]
    ok(api.as_("collector").post("/receivables/INV-PII-3/raise-dispute", json={
        "reason": f"{person['name']} ({person['phone']}) disputes the quantity",
    }))
    attempts = services.notifier.run_once()
    assert attempts and {a.status for a in attempts} == {"pending"}, attempts  # every send failed, to retry
    assert services.read_models(*services.projections.projections) == 0  # every read model caught up
    return invoices

