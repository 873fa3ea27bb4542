"""Webhooks against a real HTTP receiver on loopback (ADR 0045): signed as Standard Webhooks
(checked with the published `standardwebhooks` library and with the specification's HMAC
written out here), delivered at least once and in order per receivable through a receiver
that is down for a while, `failed` after N tries and replayable by hand, refused for
loopback and private addresses unless allowed, managed by supervisors only, and the credit
hold's changes delivered as `Customer.CreditHoldChanged`. Time moves by setting the fixed
clock; nothing sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice


class Receiver:
    """An HTTP endpoint on loopback that records every POST and answers `status`; it can be
    stopped (connections refused) and started again on the same port."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body, "status": receiver.status})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def delivered(self) -> list[dict[str, Any]]:
        """What it accepted (2xx), decoded."""
        return [json.loads(r["body"]) | {"_id": r["headers"]["webhook-id"]} for r in self.received if r["status"] < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def hooks(database_url: str, clock: Any) -> Iterator[Api]:
    services = make_services(
        database_url, clock,
        COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE=True,
        COLLECTIONS_WEBHOOKS_MAX_ATTEMPTS=3,
        COLLECTIONS_WEBHOOKS_BACKOFF_SECONDS=60,
        COLLECTIONS_WEBHOOKS_LEASE_SECONDS=120,
        COLLECTIONS_WEBHOOKS_TIMEOUT_SECONDS=5,
    )
    yield Api(services)
    services.close()


def later(api: Api, **delta: float) -> None:
    api.services.clock.at = api.services.clock.now() + timedelta(**delta)


def subscribe(api: Api, url: str, events: list[str]) -> dict[str, Any]:
    response = api.as_("supervisor").post("/webhooks", json={"url": url, "events": events, "description": "ERP"})
    assert response.status_code == 201, response.text
    return response.json()


def issue(api: Api, number: str, **overrides: Any) -> None:
    response = api.as_("service").post("/receivables", json=invoice(number, **overrides))
    assert response.status_code == 201, response.text


def pay(api: Api, number: str, amount: str, reference: str) -> None:
    body = {"amount": amount, "method": "bank_transfer", "paid_on": "2026-03-02", "reference": reference}
    response = api.as_("service").post(f"/receivables/{number}/record-payment", json=body)
    assert response.status_code == 200, response.text


def delete(api: Api, who: str, path: str) -> Any:
    return api.client.delete(path, headers=api.headers(who))


def log_of(api: Api, hook: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    response = api.as_("supervisor").get(f"/webhooks/{hook['id']}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def spec_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The Standard Webhooks signature, from the specification (not the project's helper)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_a_delivery_is_signed_as_standard_webhooks_and_carries_the_event_with_money_as_strings(
    hooks: Api, receiver: Receiver
) -> None:
    hook = subscribe(hooks, receiver.url, ["Receivable.Issued", "Receivable.PaymentRecorded"])
    assert hooks.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    issue(hooks, "INV-W-1")
    pay(hooks, "INV-W-1", "200.50", "BANK-1")
    attempts = hooks.services.webhooks.sender.run_once()
    assert [a.status for a in attempts] == ["delivered", "delivered"]
    issued, paid = receiver.received
    for post in (issued, paid):
        headers = {k.lower(): v for k, v in post["headers"].items()}
        Webhook(hook["secret"]).verify(post["body"], headers)  # the published library
        assert headers["webhook-signature"] == spec_signature(hook["secret"], headers, post["body"])
        assert abs(int(headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60  # system time
        assert headers["content-type"] == "application/json"
    body = json.loads(paid["body"])
    receivable_id = body["receivable_id"]
    assert body == {
        "type": "Receivable.PaymentRecorded",
        "receivable_id": receivable_id,
        "customer_id": "C-SH-1",
        "version": 2,
        "occurred_at": "2026-03-02T01:00:00Z",
        "data": body["data"],
    }
    assert body["data"] | {"amount": "200.50", "method": "bank_transfer", "paid_on": "2026-03-02",
                           "reference": "BANK-1"} == body["data"]
    assert json.loads(issued["body"])["data"]["due_on"] == "2026-04-01"
    assert issued["headers"]["webhook-id"] != paid["headers"]["webhook-id"]
    forged = dict(paid["headers"], **{"webhook-signature": spec_signature("whsec_" + base64.b64encode(b"x" * 24).decode(),
                                                                          paid["headers"], paid["body"])})
    with pytest.raises(Exception, match="signature"):
        Webhook(hook["secret"]).verify(paid["body"], forged)
    assert hooks.services.webhooks.sender.run_once() == []
    shown = log_of(hooks, hook)
    assert [(d["event_type"], d["status"], d["attempts"], d["last_status"]) for d in shown] == [
        ("Receivable.Issued", "delivered", 1, 200), ("Receivable.PaymentRecorded", "delivered", 1, 200)]
    assert shown[1]["delivered_at"] == "2026-03-02T01:00:00Z"


def test_a_receiver_down_for_a_while_gets_every_event_once_back_in_order_per_receivable(
    hooks: Api, receiver: Receiver
) -> None:
    hook = subscribe(hooks, receiver.url, ["Receivable.Issued", "Receivable.PaymentRecorded"])
    assert hooks.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    issue(hooks, "INV-A")
    issue(hooks, "INV-B")
    pay(hooks, "INV-A", "100.00", "A-1")
    pay(hooks, "INV-B", "50.00", "B-1")
    pay(hooks, "INV-A", "200.00", "A-2")
    sender = hooks.services.webhooks.sender
    receiver.status = 503
    first = sender.run_once()  # only the first of each receivable is tried: the rest wait behind it
    assert [(a.status, a.http_status) for a in first] == [("pending", 503), ("pending", 503)]
    receiver.stop()  # and now not even answering
    assert sender.run_once() == []  # not due before the backoff ends
    later(hooks, seconds=60)
    second = sender.run_once()
    assert [a.status for a in second] == ["pending", "pending"] and "ConnectError" in (second[0].error or "")
    receiver.start()
    receiver.status = 200
    later(hooks, seconds=119)
    assert sender.run_once() == []  # 60 s, then 120 s
    later(hooks, seconds=1)
    assert [a.status for a in sender.run_once()] == ["delivered"] * 5
    assert sender.run_once() == []
    delivered = receiver.delivered()
    by_receivable: dict[str, list[tuple[str, int]]] = {}
    for body in delivered:
        by_receivable.setdefault(body["receivable_id"], []).append((body["type"], body["version"]))
    assert sorted(by_receivable.values()) == [
        [("Receivable.Issued", 1), ("Receivable.PaymentRecorded", 2)],
        [("Receivable.Issued", 1), ("Receivable.PaymentRecorded", 2), ("Receivable.PaymentRecorded", 3)],
    ]
    ids = [body["_id"] for body in delivered]
    assert len(ids) == len(set(ids)) == 5  # none lost, none twice
    refused = {r["headers"]["webhook-id"] for r in receiver.received if r["status"] == 503}
    assert refused <= set(ids)  # the retry is the same delivery (same webhook-id)
    shown = log_of(hooks, hook, status="delivered")
    assert sorted(d["attempts"] for d in shown) == [1, 1, 1, 3, 3]


def test_a_delivery_fails_after_the_configured_tries_and_a_replay_by_hand_sends_it_again(
    hooks: Api, receiver: Receiver
) -> None:
    hook = subscribe(hooks, receiver.url, ["Receivable.Issued"])
    assert hooks.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    issue(hooks, "INV-F")
    receiver.status = 500
    sender = hooks.services.webhooks.sender
    for wait in (0, 60, 120):
        later(hooks, seconds=wait)
        (attempt,) = sender.run_once()
    assert attempt.status == "failed"
    (failed,) = log_of(hooks, hook, status="failed")
    assert (failed["attempts"], failed["last_status"], failed["last_error"], failed["next_attempt_at"]) == (
        3, 500, "HTTP 500", None)
    later(hooks, days=1)
    assert sender.run_once() == []  # failed stays failed
    receiver.status = 200
    response = hooks.as_("supervisor").post(f"/webhooks/{hook['id']}/deliveries/{failed['id']}/replay")
    assert response.status_code == 200, response.text
    assert response.json() | {"status": "delivered", "attempts": 4, "last_status": 200} == response.json()
    assert [r["headers"]["webhook-id"] for r in receiver.received] == [failed["id"]] * 4
    assert [r["status"] for r in receiver.received] == [500, 500, 500, 200]
    assert hooks.as_("supervisor").post(f"/webhooks/{hook['id']}/deliveries/no-such/replay").status_code == 404


def test_a_crash_between_the_post_and_marking_it_delivered_sends_it_again_with_the_same_id(
    hooks: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(hooks, receiver.url, ["Receivable.Issued"])
    assert hooks.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    issue(hooks, "INV-C")
    sender = hooks.services.webhooks.sender

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the sender died")

    with monkeypatch.context() as patch:
        patch.setattr(sender.store, "finish", crash)
        with pytest.raises(RuntimeError):
            sender.run_once()
    if not hooks.services.database.is_postgres:
        assert sender.run_once() == []  # still leased to the sender that died
        later(hooks, seconds=120)
    # On PostgreSQL its row lock ended with the dead sender's transaction: taken again at once (ADR 0063).
    assert [a.status for a in sender.run_once()] == ["delivered"]
    first, again = receiver.received
    assert first["headers"]["webhook-id"] == again["headers"]["webhook-id"]
    assert first["body"] == again["body"]


def test_loopback_and_private_addresses_are_refused_unless_the_setting_allows_them(
    database_url: str, clock: Any, receiver: Receiver
) -> None:
    services = make_services(database_url, clock)
    try:
        api = Api(services)
        for url in (receiver.url, "http://localhost:8080/x", "http://10.1.2.3/x", "http://192.168.0.7/x",
                    "http://169.254.169.254/latest/meta-data", "http://[::1]:9000/x", "http://[::ffff:127.0.0.1]/x",
                    "ftp://203.0.113.1/x", "file:///etc/passwd", "not a url"):
            response = api.as_("supervisor").post("/webhooks", json={"url": url, "events": ["*"]})
            assert response.status_code == 422, (url, response.text)
            assert response.json()["field"] == "url", url
        assert api.as_("supervisor").get("/webhooks").json()["items"] == []
    finally:
        services.close()
    allowed = make_services(database_url, clock, COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE=True)
    try:
        api = Api(allowed)
        hook = subscribe(api, receiver.url, ["Receivable.Issued"])
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        issue(api, "INV-S")
        allowed.webhooks.sender.allow_private = False  # the setting withdrawn: checked again at delivery
        (attempt,) = allowed.webhooks.sender.run_once()
        assert attempt.status == "pending" and "non-public" in (attempt.error or "")
        assert receiver.received == []
        assert "non-public" in log_of(api, hook)[0]["last_error"]
    finally:
        allowed.close()


def test_only_supervisors_manage_subscriptions_whose_secret_is_shown_once_and_delete_stops_deliveries(
    hooks: Api, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "events": ["Receivable.Issued"]}
    for role in ("service", "collector", "legal", "sales", "customer_service", "auditor"):
        assert hooks.as_(role).post("/webhooks", json=body).status_code == 403, role
        assert hooks.as_(role).get("/webhooks").status_code == 403, role
    unknown = hooks.as_("supervisor").post("/webhooks", json={**body, "events": ["Receivable.Teleported"]})
    assert unknown.status_code == 422 and unknown.json()["field"] == "events"
    hook = subscribe(hooks, receiver.url, ["Receivable.Issued", "Receivable.PaymentRecorded"])
    assert hook["secret"].startswith("whsec_") and len(base64.b64decode(hook["secret"][6:])) == 24
    listed = hooks.as_("supervisor").get("/webhooks").json()["items"]
    assert listed == [{k: v for k, v in hook.items() if k != "secret"}]
    assert hook["secret"] not in hooks.as_("supervisor").get("/webhooks").text
    types = hooks.as_("supervisor").get("/webhooks/event-types").json()["items"]
    assert {"Receivable.PaymentRecorded", "Customer.CreditHoldChanged", "Customer.Registered"} <= set(types)

    assert hooks.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    issue(hooks, "INV-D")
    assert [a.status for a in hooks.services.webhooks.sender.run_once()] == ["delivered"]
    receiver.status = 503
    pay(hooks, "INV-D", "10.00", "D-1")
    assert [a.status for a in hooks.services.webhooks.sender.run_once()] == ["pending"]
    assert delete(hooks, "collector", f"/webhooks/{hook['id']}").status_code == 403
    assert delete(hooks, "supervisor", f"/webhooks/{hook['id']}").status_code == 204
    assert delete(hooks, "supervisor", f"/webhooks/{hook['id']}").status_code == 404
    receiver.status = 200
    pay(hooks, "INV-D", "20.00", "D-2")
    later(hooks, hours=1)
    assert hooks.services.webhooks.sender.run_once() == []
    assert len(receiver.received) == 2  # the first delivery and the refused try, nothing since
    assert hooks.as_("supervisor").get("/webhooks").json()["items"] == []
    assert hooks.as_("supervisor").get(f"/webhooks/{hook['id']}/deliveries").status_code == 404


def test_the_credit_holds_changes_are_delivered_and_a_rebuild_sends_nothing_twice(
    hooks: Api, receiver: Receiver
) -> None:
    hook = subscribe(hooks, receiver.url, ["Customer.CreditHoldChanged", "Receivable.PaymentRecorded"])
    customer = CUSTOMER | {"credit_limit": {"amount": "2000.00", "currency": "CNY"}}
    assert hooks.as_("supervisor").post("/customers", json=customer).status_code == 201
    issue(hooks, "INV-H1")
    issue(hooks, "INV-H2")  # CNY 2,401.00 open against a limit of 2,000.00: on hold
    pay(hooks, "INV-H1", "1200.50", "H-1")  # settled: CNY 1,200.50 open, the hold lifts
    sender = hooks.services.webhooks.sender
    assert [a.status for a in sender.run_once()] == ["delivered"] * 3
    holds = [b for b in receiver.delivered() if b["type"] == "Customer.CreditHoldChanged"]
    assert [(b["customer_id"], b["version"], b["data"]) for b in holds] == [
        ("C-SH-1", 1, {"customer_id": "C-SH-1", "credit_hold": True, "reasons": ["over_credit_limit"],
                       "recent_write_off_until": None}),
        ("C-SH-1", 2, {"customer_id": "C-SH-1", "credit_hold": False, "reasons": [], "recent_write_off_until": None}),
    ]
    assert holds[0]["occurred_at"] == "2026-03-02T01:00:00Z"
    for post in receiver.received:
        Webhook(hook["secret"]).verify(post["body"], post["headers"])
    shown = log_of(hooks, hook)
    assert [d["event_type"] for d in shown] == [
        "Customer.CreditHoldChanged", "Receivable.PaymentRecorded", "Customer.CreditHoldChanged"]

    hooks.services.projections.rebuild(["credit_records", "webhooks"])
    assert sender.run_once() == []
    assert len(receiver.received) == 3 and len(log_of(hooks, hook)) == 3
    pay(hooks, "INV-H2", "100.00", "H-2")  # after the rebuild, new events still go out, once
    assert [a.status for a in sender.run_once()] == ["delivered"]
    assert len(receiver.received) == 4


def test_with_a_cipher_key_the_secret_and_bodies_are_encrypted_at_rest_and_sent_unmasked(
    sqlite_url: str, clock: Any, receiver: Receiver
) -> None:
    import sqlalchemy as sa

    from collections_es.adapters.cipher import new_key

    services = make_services(sqlite_url, clock, COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE=True, COLLECTIONS_CIPHER_KEY=new_key())
    try:
        api = Api(services)
        hook = subscribe(api, receiver.url, ["Customer.Registered"])
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        assert [a.status for a in services.webhooks.sender.run_once()] == ["delivered"]
        (sent,) = receiver.delivered()
        assert sent["data"]["contacts"]["email"] == "zhang.wei@example.com"  # the service role's view: unmasked
    finally:
        services.close()
    raw = sa.create_engine(sqlite_url)  # no cipher: what is on disk
    with raw.connect() as conn:
        stored = " ".join(str(v) for table in ("webhook_subscriptions", "webhook_deliveries")
                          for row in conn.execute(sa.text(f"SELECT * FROM {table}")) for v in row)
    raw.dispose()
    assert hook["secret"][6:] not in stored and "zhang.wei" not in stored and "aes1:" in stored


def test_collections_es_deliver_once_sends_what_is_due_and_prints_each_try(
    sqlite_url: str, clock: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from collections_es.cli import app
    from collections_es.config import get_settings

    services = make_services(sqlite_url, clock, COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE=True)
    try:
        api = Api(services)
        subscribe(api, receiver.url, ["Customer.Registered"])
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    finally:
        services.close()
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["deliver", "--once"])
        again = CliRunner().invoke(app, ["deliver", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert line.split("\t")[1:] == ["delivered", "200"]
    assert again.exit_code == 0 and again.output == ""
    assert [b["type"] for b in receiver.delivered()] == ["Customer.Registered"]


def test_a_write_off_hold_is_sent_with_its_end_and_its_lapse_goes_out_with_the_customers_next_event(
    hooks: Api, receiver: Receiver
) -> None:
    from .test_credit_record import build_history, credit

    subscribe(hooks, receiver.url, ["Customer.CreditHoldChanged"])
    build_history(hooks)  # limit CNY 2,000; five invoices; payments, promises, a write-off on 11 April 2026
    hooks.services.webhooks.sender.run_once()
    holds = [b["data"] for b in receiver.delivered()]
    assert [b["version"] for b in receiver.delivered()] == list(range(1, len(holds) + 1))
    assert all(a != b for a, b in zip(holds, holds[1:]))  # only changes are sent
    record = credit(hooks)
    assert holds[-1] == {"customer_id": "C-SH-1", "credit_hold": record["credit_hold"],
                         "reasons": record["credit_hold_reasons"], "recent_write_off_until": "2027-04-11"}
    hooks.services.clock.at = datetime(2027, 4, 12, 2, tzinfo=UTC)  # the write-off is older than 365 days
    hooks.services.webhooks.sender.run_once()
    assert len(receiver.delivered()) == len(holds)  # time alone is not an event
    response = hooks.as_("sales").patch("/customers/C-SH-1", json={"credit_limit": {"amount": "1800", "currency": "CNY"}})
    assert response.status_code == 200, response.text
    hooks.services.webhooks.sender.run_once()
    assert receiver.delivered()[-1]["data"] == {"customer_id": "C-SH-1", "credit_hold": True,
                                                "reasons": ["over_credit_limit"], "recent_write_off_until": None}
    assert credit(hooks)["credit_hold_reasons"] == ["over_credit_limit"]
