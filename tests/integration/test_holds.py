"""Holds over HTTP, through the sandbox clock (ADR 0052): while a receivable or its customer
is on hold nothing time-driven acts (falling due still happens); on release, or when `until`
passes, collection resumes from that moment and what came due meanwhile fires once.

The customer is in Shanghai (UTC+8) under the bundled policy; the invoice is issued on
Monday 2 March 2026 and falls due on Friday 3 April. Without a hold the policy owes: the
reminder on Friday 27 March 09:00, falling due on 3 April 00:00, the follow-up on Monday
6 April 09:00 (the day after due is a Saturday), the escalation on 3 May 00:00 (30 days).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from collections_es.application.clock import FixedClock, SandboxClock

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice
from .projection_history import projection_tables, table_contents
from .test_notifications import Mailbox, wired

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 2 March, 09:00 in Shanghai
DUE = "2026-04-03"
FALLS_DUE = "2026-04-02T16:00:00Z"  # 3 April 00:00 Shanghai
FOLLOW_UP = "2026-04-06T01:00:00Z"  # Monday 6 April 09:00
ESCALATE = "2026-05-02T16:00:00Z"  # 3 May 00:00
RELEASE = "2026-05-11T02:00:00Z"  # Monday 11 May 10:00, inside a contact window


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def sandboxed(database_url: str) -> Iterator[Api]:
    services = make_services(database_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    api = Api(services)
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    yield api
    services.close()


@pytest.fixture
def sandbox(database_url: str) -> Iterator[Api]:
    """SQLite and PostgreSQL: the catch-up and the customer's hold run on both."""
    yield from sandboxed(database_url)


@pytest.fixture
def sandbox_sqlite(sqlite_url: str) -> Iterator[Api]:
    """SQLite only, for what the database cannot change (the suite's time budget)."""
    yield from sandboxed(sqlite_url)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def issue(api: Api, number: str) -> None:
    ok(api.as_("service").post("/receivables", json=invoice(number, due_on=DUE)), 201)


def advance(api: Api, to: str) -> list[dict[str, Any]]:
    fired = ok(api.as_("service").post("/sandbox/clock/advance", json={"to": to}))["fired"]
    return [f for f in fired if f["outcome"] == "fired"]


def history(api: Api, number: str) -> list[tuple[str, str | None, str]]:
    """(type, scheduled_for, occurred_at) of every event."""
    events = ok(api.as_("auditor").get(f"/receivables/{number}/history"))
    return [(e["type"], (e.get("data") or {}).get("scheduled_for") or e.get("scheduled_for"), e["occurred_at"]) for e in events]


def types(api: Api, number: str) -> list[str]:
    return [t for t, _, _ in history(api, number)]


def receivable(api: Api, number: str) -> dict[str, Any]:
    return ok(api.as_("collector").get(f"/receivables/{number}"))


def test_a_hold_across_the_due_date_and_the_escalation_date_then_release_catches_up_once(sandbox: Api) -> None:
    issue(sandbox, "INV-H-1")
    held = ok(sandbox.as_("supervisor").post("/receivables/INV-H-1/hold", json={"reason": "negotiating a settlement"}))
    assert [(h["scope"], h["reason"], h["until"], h["placed_by"]) for h in held["holds"]] == [
        ("receivable", "negotiating a settlement", None, "supervisor-1")
    ]
    assert "release_hold" in held["allowed_commands"]

    # Past the reminder, the due date, the follow-up and the escalation: only falling due happens.
    fired = advance(sandbox, "2026-05-10T02:00:00Z")
    assert [(f["kind"], f["scheduled_for"]) for f in fired] == [("fall_due", FALLS_DUE)]
    assert types(sandbox, "INV-H-1") == ["Issued", "HoldPlaced", "FellDue"]
    shown = receivable(sandbox, "INV-H-1")
    assert (shown["state"], shown["days_past_due"], len(shown["holds"])) == ("due", 37, 1)
    assert ok(sandbox.as_("supervisor").get("/notifications"))["items"] == []

    # Released: collection resumes from that moment; what came due fires once, in its order.
    advance(sandbox, RELEASE)
    released = ok(sandbox.as_("supervisor").post("/receivables/INV-H-1/release-hold", json={"reason": "talks failed"}))
    assert released["holds"] == []
    fired = advance(sandbox, "2026-05-11T03:00:00Z")
    assert [(f["kind"], f["command"]) for f in fired] == [("follow_up", "start_follow_up"), ("escalate", "escalate")]
    assert all(utc(f["fired_at"]) >= utc(RELEASE) for f in fired)
    assert types(sandbox, "INV-H-1") == ["Issued", "HoldPlaced", "FellDue", "HoldReleased", "FollowUpStarted", "Escalated"]
    assert receivable(sandbox, "INV-H-1")["state"] == "overdue_escalated"

    # Nothing fires twice afterwards.
    assert [f["kind"] for f in advance(sandbox, "2026-07-31T00:00:00Z")] == []
    assert types(sandbox, "INV-H-1")[-2:] == ["FollowUpStarted", "Escalated"]
    (dunning,) = ok(sandbox.as_("supervisor").get("/notifications"))["items"]
    assert dunning["kind"] == "first_dunning"


def test_a_customer_hold_covers_every_open_receivable_and_one_issued_while_held(sandbox: Api) -> None:
    issue(sandbox, "INV-C-1")
    issue(sandbox, "INV-C-2")
    customer = ok(sandbox.as_("supervisor").post(f"/customers/{CUSTOMER['customer_id']}/hold", json={"reason": "bankruptcy filing"}))
    assert (customer["hold"]["scope"], customer["hold"]["reason"], customer["hold"]["until"]) == (
        "customer", "bankruptcy filing", None
    )
    assert ok(sandbox.as_("auditor").get(f"/customers/{CUSTOMER['customer_id']}"))["hold"]["reason"] == "bankruptcy filing"
    issue(sandbox, "INV-C-3")  # issued while the customer is held: held from its first moment
    for number in ("INV-C-1", "INV-C-2", "INV-C-3"):
        assert [(h["scope"], h["reason"], h["placed_by"]) for h in receivable(sandbox, number)["holds"]] == [
            ("customer", "bankruptcy filing", "supervisor-1")
        ]

    fired = advance(sandbox, "2026-05-10T02:00:00Z")
    assert sorted(f["kind"] for f in fired) == ["fall_due"] * 3
    advance(sandbox, RELEASE)
    released = ok(sandbox.as_("supervisor").post(f"/customers/{CUSTOMER['customer_id']}/release-hold", json={"reason": "plan approved"}))
    assert released["hold"] is None
    fired = advance(sandbox, "2026-05-11T03:00:00Z")
    assert sorted(f["kind"] for f in fired) == ["escalate"] * 3 + ["follow_up"] * 3
    for number in ("INV-C-1", "INV-C-2", "INV-C-3"):
        assert types(sandbox, number)[-3:] == ["HoldReleased", "FollowUpStarted", "Escalated"]
        assert receivable(sandbox, number)["holds"] == []

    # Every read model followed the holds, and rebuilt from the log it is the same.
    runner = sandbox.services.projections
    runner.catch_up()
    tables = projection_tables(runner)
    live = table_contents(sandbox.services.engine, tables)
    for name in runner.projections:
        runner.rebuild(name)
    assert live == table_contents(sandbox.services.engine, tables)


def test_a_hold_with_until_ends_by_itself_and_collection_resumes_then(sandbox_sqlite: Api) -> None:
    sandbox = sandbox_sqlite
    issue(sandbox, "INV-U-1")
    until = "2026-04-08T04:00:00Z"  # Wednesday 8 April 12:00 Shanghai: the windows reopen at 14:00
    held = ok(sandbox.as_("supervisor").post("/receivables/INV-U-1/hold", json={"reason": "awaiting audit", "until": until}))
    assert held["holds"][0]["until"] == until
    fired = advance(sandbox, "2026-04-08T03:59:59Z")
    assert [f["kind"] for f in fired] == ["fall_due"]
    assert receivable(sandbox, "INV-U-1")["holds"][0]["until"] == until

    fired = advance(sandbox, "2026-04-09T00:00:00Z")
    assert [(f["kind"], f["scheduled_for"]) for f in fired] == [("follow_up", "2026-04-08T06:00:00Z")]
    assert receivable(sandbox, "INV-U-1")["holds"] == []
    assert types(sandbox, "INV-U-1") == ["Issued", "HoldPlaced", "FellDue", "FollowUpStarted"]
    # The escalation was not held back: it keeps its own date.
    assert [(f["kind"], f["scheduled_for"]) for f in advance(sandbox, "2026-05-04T00:00:00Z")] == [("escalate", ESCALATE)]


def test_hold_refusals_name_the_rule_and_change_nothing(sandbox_sqlite: Api) -> None:
    sandbox = sandbox_sqlite
    issue(sandbox, "INV-R-1")
    assert sandbox.as_("collector").post("/receivables/INV-R-1/hold", json={"reason": "x"}).status_code == 403
    assert sandbox.as_("collector").post(f"/customers/{CUSTOMER['customer_id']}/hold", json={"reason": "x"}).status_code == 403
    refused = sandbox.as_("supervisor").post("/receivables/INV-R-1/release-hold", json={"reason": "x"})
    assert (refused.status_code, refused.json()["rule_id"]) == (422, "hold.not_in_force")
    refused = sandbox.as_("supervisor").post(f"/customers/{CUSTOMER['customer_id']}/release-hold", json={"reason": "x"})
    assert (refused.status_code, refused.json()["rule_id"]) == (422, "hold.not_in_force")
    past = sandbox.as_("supervisor").post("/receivables/INV-R-1/hold", json={"reason": "x", "until": "2026-03-01T00:00:00Z"})
    assert (past.status_code, past.json()["rule_id"], past.json()["field"]) == (422, "hold.until_past", "until")
    naive = sandbox.as_("supervisor").post("/receivables/INV-R-1/hold", json={"reason": "x", "until": "2026-05-01T00:00:00"})
    assert naive.status_code == 422
    far = sandbox.as_("supervisor").post(f"/customers/{CUSTOMER['customer_id']}/hold", json={"reason": "x", "until": "2200-01-01T00:00:00Z"})
    assert far.status_code == 422 and "until" in far.text and "2199" in far.text, far.text
    assert sandbox.as_("supervisor").post("/receivables/INV-R-1/hold", json={"reason": " "}).status_code == 422
    assert sandbox.as_("supervisor").post("/customers/NOBODY/hold", json={"reason": "x"}).status_code == 404
    assert types(sandbox, "INV-R-1") == ["Issued"]
    assert ok(sandbox.as_("auditor").get(f"/customers/{CUSTOMER['customer_id']}"))["version"] == 1
    ok(sandbox.as_("service").post("/receivables/INV-R-1/record-payment", json={
        "amount": "1200.50", "method": "bank_transfer", "paid_on": "2026-03-02", "reference": "P-1"}))
    settled = sandbox.as_("supervisor").post("/receivables/INV-R-1/hold", json={"reason": "x"})
    assert (settled.status_code, settled.json()["state"]) == (409, "settled")


# ---- nothing is sent while held (a real SMTP server on loopback) -------------------------


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


def test_the_notifier_sends_nothing_while_held_and_what_it_held_back_stays_unsent(sqlite_url: str, mailbox: Mailbox) -> None:
    clock = FixedClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    services = wired(sqlite_url, clock, mailbox)
    try:
        api = Api(services)
        ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
        ok(api.as_("service").post("/receivables", json=invoice("INV-N-1")), 201)
        clock.at = utc("2026-03-25T02:00:00Z")
        ok(api.as_("service").post("/receivables/INV-N-1/send-reminder", json={"channel": "email"}))  # queued
        ok(api.as_("supervisor").post(f"/customers/{CUSTOMER['customer_id']}/hold", json={"reason": "legal review"}))
        ok(api.as_("service").post("/receivables", json=invoice("INV-N-2")), 201)
        # A person may still act while held; the service sends nothing for it.
        ok(api.as_("collector").post("/receivables/INV-N-2/send-reminder", json={"channel": "email"}))
        attempts = services.notifier.run_once()
        assert sorted(a.status for a in attempts) == ["withheld", "withheld"]
        assert mailbox.received == []
        shown = ok(api.as_("supervisor").get("/notifications", params={"status": "withheld"}))["items"]
        assert len(shown) == 2 and all(m["attempts"] == 0 and "on hold" in m["last_error"] for m in shown)

        # The scheduler acts on nothing but the calendar's facts while held.
        clock.at = utc("2026-04-20T02:00:00Z")
        assert {f.kind for f in services.scheduler.tick() if f.outcome == "fired"} == {"fall_due"}
        assert services.notifier.run_once() == []

        ok(api.as_("supervisor").post(f"/customers/{CUSTOMER['customer_id']}/release-hold", json={"reason": "cleared"}))
        assert services.notifier.run_once() == []  # held back is not sent later
        fired = {f.kind for f in services.scheduler.tick() if f.outcome == "fired"}
        assert fired == {"follow_up"}, "caught up at the release (the escalation's day has not come)"
        sent = services.notifier.run_once()
        assert [a.status for a in sent] == ["sent", "sent"]  # each receivable's first dunning letter
        assert len(mailbox.received) == 2
        assert {m["kind"] for m in ok(api.as_("supervisor").get("/notifications", params={"status": "sent"}))["items"]} == {
            "first_dunning"
        }
    finally:
        services.close()


# ---- the console ------------------------------------------------------------------------


def test_a_supervisor_holds_a_receivable_from_its_page_which_shows_the_hold_and_the_worklist_marks_it(sqlite_url: str) -> None:
    from .console import Console, text_of
    from .test_console import api_post, post_form

    services = make_services(sqlite_url, FixedClock(datetime(2026, 4, 10, 1, 0, tzinfo=UTC)))
    try:
        console = Console(services)
        api_post(console, "/customers", CUSTOMER)
        api_post(console, "/receivables", invoice("INV-K-1", issued_on="2026-03-02", due_on="2026-04-01"))
        api_post(console, "/receivables/INV-K-1/fall-due", None)
        assert 'action="/console/receivables/INV-K-1/hold"' not in console.as_("collector").get("/console/receivables/INV-K-1").text
        page = console.as_("supervisor").get("/console/receivables/INV-K-1").text
        rid = re.search(r'action="/console/receivables/([0-9a-f-]{36})/hold"', page).group(1)
        assert f'action="/console/receivables/{rid}/release-hold"' in page  # offered: the state allows it

        response = post_form(console, "supervisor", f"/console/receivables/{rid}/hold",
                             {"reason": "customer in talks", "until": "2026-04-20T09:00"})
        assert response.status_code == 303, response.text
        shown = text_of(console.as_("supervisor").get("/console/receivables/INV-K-1").text)
        assert "On hold: customer in talks · until" in shown and "placed by supervisor-1" in shown
        assert "HoldPlaced supervisor-1 supervisor customer in talks" in shown
        api = console.browser(Authorization=f"Bearer {console.tokens['auditor']}")
        assert api.get("/receivables/INV-K-1").json()["holds"][0]["until"] == "2026-04-20T01:00:00Z"  # 09:00 Shanghai

        listing = console.as_("supervisor").get("/console/worklist").text
        item = listing.split(f'id="item-{rid}"', 1)[1].split("</article>", 1)[0]
        assert "On hold" in text_of(item)
        worklist = console.browser(Authorization=f"Bearer {console.tokens['supervisor']}").get("/worklist").json()
        assert [(i["invoice_number"], i["on_hold"], i["held_until"]) for i in worklist["items"]] == [
            ("INV-K-1", True, "2026-04-20T01:00:00Z")
        ]
        services.clock.at = datetime(2026, 4, 20, 1, 0, tzinfo=UTC)  # the hold has run out
        worklist = console.browser(Authorization=f"Bearer {console.tokens['supervisor']}").get("/worklist").json()
        assert [(i["on_hold"], i["held_until"]) for i in worklist["items"]] == [(False, None)]
    finally:
        services.close()


# ---- a customer's hold placed while a receivable is being issued -----------------------------


@pytest.mark.parametrize("change", ["placed", "released"])
def test_a_receivable_issued_while_its_customers_hold_changes_ends_up_in_line_with_the_customer(sqlite_url: str, change: str) -> None:
    from collections_es.application.service import Request
    from collections_es.domain.trail import Actor

    services = make_services(sqlite_url, FixedClock(START))
    try:
        app, supervisor = services.app, Request(Actor("supervisor-1", "supervisor"))
        app.register_customer(supervisor, **CUSTOMER)
        if change == "released":
            app.hold_customer(supervisor, CUSTOMER["customer_id"], reason="talks")
        read_customer, raced = app.get_customer, []

        def racing(customer_id: str, **kw: Any) -> Any:
            """The issue reads the customer, then the hold changes before the receivable is saved
            (so the hold's copy to the customer's receivables does not find it)."""
            seen = read_customer(customer_id, **kw)
            if not raced:
                raced.append(change)
                if change == "placed":
                    app.hold_customer(supervisor, customer_id, reason="raced")
                else:
                    app.release_customer_hold(supervisor, customer_id, reason="raced")
            return seen

        app.get_customer = racing  # type: ignore[method-assign]
        fields = invoice("INV-RACE-1", due_on=DUE)
        fields |= {k: date.fromisoformat(fields[k]) for k in ("issued_on", "due_on")}
        issued = app.issue_receivable(Request(Actor("erp", "service")), **fields)
        app.get_customer = read_customer  # type: ignore[method-assign]
        assert raced == [change]
        r = app.get_receivable(issued.resource.id)
        assert [h.reason for h in r.holds_in_force(START)] == (["raced"] if change == "placed" else [])
        assert issued.resource.holds_in_force(START) == r.holds_in_force(START)
    finally:
        services.close()
