"""Notifications through the outbox, against real servers on loopback: an SMTP server
(aiosmtpd) for e-mail and a small HTTP server for the SMS webhook. A message per policy
step and event, sent once; retried with backoff while the server is away; `failed` after
the configured number of tries; all visible in GET /notifications.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from collections_es.bootstrap import Services

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """An SMTP server on loopback that keeps what it receives; can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[EmailMessage] = []
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class Gateway:
    """An SMS gateway on loopback: records each POST; answers with `status` (settable)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.received.append({"headers": dict(self.headers), "json": json.loads(body), "status": gateway.status})
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    yield gw
    gw.close()


def wired(database_url: str, clock: Any, mailbox: Mailbox, gateway: Gateway | None = None, **extra: Any) -> Services:
    return make_services(
        database_url,
        clock,
        COLLECTIONS_SMTP_HOST="127.0.0.1",
        COLLECTIONS_SMTP_PORT=mailbox.port,
        COLLECTIONS_SMTP_SECURITY="none",
        COLLECTIONS_SMTP_FROM="ar@example.com",
        COLLECTIONS_SMTP_TIMEOUT_SECONDS=5,
        COLLECTIONS_SMS_WEBHOOK_URL=gateway.url if gateway else None,
        COLLECTIONS_NOTIFY_BACKOFF_SECONDS=60,
        **extra,
    )


@pytest.fixture
def notifying(database_url: str, clock: Any, mailbox: Mailbox, gateway: Gateway) -> Iterator[Api]:
    services = wired(database_url, clock, mailbox, gateway, COLLECTIONS_NOTIFY_MAX_ATTEMPTS=3)
    yield Api(services)
    services.close()


def at(api: Api, instant: str) -> None:
    api.services.clock.at = datetime.fromisoformat(instant).astimezone(UTC)


def remind(api: Api, customer: dict[str, Any], number: str = "INV-N-1", channel: str = "email") -> None:
    """Register, issue (CNY 1,200.50 due 1 April 2026) and send the pre-due reminder on 25 March."""
    assert api.as_("supervisor").post("/customers", json=customer).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice(number)).status_code == 201
    at(api, "2026-03-25T02:00:00Z")
    response = api.as_("service").post(f"/receivables/{number}/send-reminder", json={"channel": channel})
    assert response.status_code == 200, response.text


def notifications(api: Api, who: str = "supervisor", **params: str) -> list[dict[str, Any]]:
    response = api.as_(who).get("/notifications", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_the_pre_due_reminder_arrives_once_in_the_customers_language_with_amount_and_due_date(
    notifying: Api, mailbox: Mailbox
) -> None:
    mailbox.start()
    remind(notifying, CUSTOMER | {"language": "en"})
    attempts = notifying.services.notifier.run_once()
    assert [a.status for a in attempts] == ["sent"]
    assert notifying.services.notifier.run_once() == []
    (mail,) = mailbox.received
    assert mail["To"] == "zhang.wei@example.com" and mail["From"] == "ar@example.com"
    assert mail["Subject"] == "Payment reminder: invoice INV-N-1 falls due on April 1, 2026"
    assert mail["Content-Language"] == "en"
    assert mail["X-Collections-Message-Id"] == attempts[0].id
    body = mail.get_content()
    assert "CN¥1,200.50" in body and "April 1, 2026" in body and "Please quote invoice number INV-N-1" in body
    (shown,) = notifications(notifying)
    assert shown | {"id": attempts[0].id, "kind": "pre_due_reminder", "channel": "email", "status": "sent", "attempts": 1,
                    "language": "en", "sent_at": "2026-03-25T02:00:00Z"} == shown


def test_a_chinese_speaking_customer_gets_the_reminder_in_chinese(notifying: Api, mailbox: Mailbox) -> None:
    mailbox.start()
    remind(notifying, CUSTOMER)
    notifying.services.notifier.run_once()
    (mail,) = mailbox.received
    assert mail["Subject"] == "付款提醒：发票 INV-N-1 将于 2026年4月1日 到期"
    assert "¥1,200.50" in mail.get_content() and mail["Content-Language"] == "zh-CN"


def test_while_the_smtp_server_is_away_the_message_is_retried_with_backoff_and_then_sent_once(
    notifying: Api, mailbox: Mailbox
) -> None:
    remind(notifying, CUSTOMER)  # the SMTP server is not running
    (first,) = notifying.services.notifier.run_once()
    assert first.status == "pending" and "ConnectionRefusedError" in (first.error or "")
    (shown,) = notifications(notifying)
    assert (shown["status"], shown["attempts"], shown["next_attempt_at"]) == ("pending", 1, "2026-03-25T02:01:00Z")
    assert notifying.services.notifier.run_once() == []  # not due again before the backoff ends
    at(notifying, "2026-03-25T02:01:00Z")
    (second,) = notifying.services.notifier.run_once()
    assert second.status == "pending"
    assert notifications(notifying)[0]["next_attempt_at"] == "2026-03-25T02:03:00Z"  # 60 s, then 120 s
    mailbox.start()
    at(notifying, "2026-03-25T02:03:00Z")
    (third,) = notifying.services.notifier.run_once()
    assert third.status == "sent"
    assert notifying.services.notifier.run_once() == []
    assert len(mailbox.received) == 1
    assert notifications(notifying)[0] | {"status": "sent", "attempts": 3} == notifications(notifying)[0]


def test_a_message_that_cannot_be_sent_ends_as_failed_after_the_configured_tries(
    notifying: Api, mailbox: Mailbox
) -> None:
    remind(notifying, CUSTOMER)
    for minute in (0, 1, 3):
        at(notifying, f"2026-03-25T02:0{minute}:00Z")
        notifying.services.notifier.run_once()
    (failed,) = notifications(notifying, status="failed")
    assert (failed["attempts"], failed["next_attempt_at"]) == (3, None)
    assert failed["last_error"]
    at(notifying, "2026-03-26T02:00:00Z")
    mailbox.start()
    assert notifying.services.notifier.run_once() == [] and mailbox.received == []


def test_sms_goes_to_the_webhook_with_the_message_id_as_idempotency_key_and_is_retried_on_an_error(
    notifying: Api, gateway: Gateway
) -> None:
    customer = CUSTOMER | {"preferred_channel": "sms", "customer_id": CUSTOMER["customer_id"]}
    assert notifying.as_("supervisor").post("/customers", json=customer).status_code == 201
    assert notifying.as_("service").post("/receivables", json=invoice("INV-S-1")).status_code == 201
    at(notifying, "2026-04-02T02:00:00Z")
    assert notifying.as_("service").post("/receivables/INV-S-1/fall-due").status_code == 200
    assert notifying.as_("service").post("/receivables/INV-S-1/start-follow-up").status_code == 200
    gateway.status = 503
    (failed,) = notifying.services.notifier.run_once()
    assert failed.status == "pending" and "503" in (failed.error or "")
    gateway.status = 200
    at(notifying, "2026-04-02T02:01:00Z")
    (sent,) = notifying.services.notifier.run_once()
    assert sent.status == "sent" and sent.id == failed.id
    assert [r["status"] for r in gateway.received] == [503, 200]
    posted = gateway.received[-1]
    assert posted["headers"]["Idempotency-Key"] == sent.id
    assert posted["json"]["to"] == "13812345678" and posted["json"]["language"] == "zh-CN"
    assert "INV-S-1" in posted["json"]["text"] and "¥1,200.50" in posted["json"]["text"]
    (shown,) = notifications(notifying, who="auditor", kind="first_dunning")
    assert shown["channel"] == "sms" and shown["recipient"] == "138****5678"  # masked for the auditor


def test_a_broken_promise_sends_a_notice_and_each_event_makes_exactly_one_message(
    notifying: Api, mailbox: Mailbox
) -> None:
    mailbox.start()
    assert notifying.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert notifying.as_("service").post("/receivables", json=invoice("INV-P-1")).status_code == 201
    at(notifying, "2026-04-02T02:00:00Z")
    for command, body in (("fall-due", None), ("start-follow-up", None),
                          ("promise-to-pay", {"amount": "1200.50", "promised_on": "2026-04-05"})):
        who = "collector" if command == "promise-to-pay" else "service"
        assert notifying.as_(who).post(f"/receivables/INV-P-1/{command}", json=body).status_code == 200
    assert [a.status for a in notifying.services.notifier.run_once()] == ["sent"]
    at(notifying, "2026-04-09T02:00:00Z")
    response = notifying.as_("service").post("/receivables/INV-P-1/break-promise", json={"reason": "unpaid"})
    assert response.status_code == 200, response.text
    notifying.services.projections.rebuild("outbox")  # a rebuild creates no second message
    assert [a.status for a in notifying.services.notifier.run_once()] == ["sent"]
    kinds = [m["kind"] for m in notifications(notifying)]
    assert kinds == ["first_dunning", "broken_promise"]
    assert [m["Subject"] for m in mailbox.received] == [
        "催款函：发票 INV-P-1 已逾期，未付余额 ¥1,200.50",
        "未按承诺付款：发票 INV-P-1",
    ]
    notifying.services.projections.rebuild("outbox")
    assert notifying.services.notifier.run_once() == [] and len(mailbox.received) == 2


def test_the_channel_the_reminder_names_wins_over_the_preferred_one(notifying: Api, gateway: Gateway) -> None:
    remind(notifying, CUSTOMER, channel="sms")  # the customer prefers e-mail
    (sent,) = notifying.services.notifier.run_once()
    assert sent.status == "sent"
    assert [r["json"]["to"] for r in gateway.received] == ["13812345678"]


def test_a_customer_without_an_address_or_phone_gets_a_failed_message_that_says_why(notifying: Api) -> None:
    remind(notifying, CUSTOMER | {"contacts": {"address": "上海市"}})
    (shown,) = notifications(notifying)
    assert (shown["status"], shown["channel"], shown["last_error"]) == (
        "failed", None, "no e-mail address or phone number on file"
    )
    assert notifying.services.notifier.run_once() == []


def test_a_message_whose_event_is_too_old_when_first_due_expires_unsent(notifying: Api, mailbox: Mailbox) -> None:
    mailbox.start()
    remind(notifying, CUSTOMER)
    at(notifying, "2026-03-28T02:00:01Z")  # 72 hours and a second after the reminder was recorded
    assert notifying.services.notifier.run_once() == []
    (shown,) = notifications(notifying, status="expired")
    assert shown["attempts"] == 0
    assert shown["last_error"] == "not sent: its event is older than 3 days (COLLECTIONS_NOTIFY_MAX_AGE_HOURS)"
    assert mailbox.received == []


def test_notifications_are_not_shown_to_roles_without_need(notifying: Api) -> None:
    assert notifying.as_("sales").get("/notifications").status_code == 403
    assert notifying.as_("supervisor").get("/notifications", params={"status": "lost"}).status_code == 422


def test_the_api_process_runs_the_sender_when_asked(database_url: str, clock: Any, mailbox: Mailbox) -> None:
    import time
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from collections_es.api.app import create_app

    mailbox.start()
    services = wired(database_url, clock, mailbox, COLLECTIONS_NOTIFY_INTERVAL_SECONDS=0.05)
    try:
        api = Api(services)
        remind(api, CUSTOMER)
        with TestClient(create_app(services, notify=True)):
            deadline = time.monotonic() + 10
            while not mailbox.received and time.monotonic() < deadline:
                time.sleep(0.05)
        assert len(mailbox.received) == 1
    finally:
        services.close()


def test_the_backoff_doubles_and_is_capped() -> None:
    from collections_es.application.clock import FixedClock
    from collections_es.application.notifier import Notifier

    notifier = Notifier(None, FixedClock(datetime(2026, 1, 1, tzinfo=UTC)), {}, catch_up=lambda: None,  # type: ignore[arg-type]
                        backoff_seconds=30, backoff_max_seconds=100)
    assert [notifier.backoff(n) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (30, 60, 100, 100)]
