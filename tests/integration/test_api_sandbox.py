"""The sandbox clock over HTTP (COLLECTIONS_CLOCK=sandbox): it stands still,
moves forward only when told, and every command sees the time it shows. With
the system clock the sandbox routes do not exist."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collections_es.application.clock import SandboxClock

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def sandbox_api(database_url: str) -> Iterator[Api]:
    services = make_services(database_url, None, COLLECTIONS_CLOCK="sandbox")
    assert services.settings.clock == "sandbox"
    assert isinstance(services.clock, SandboxClock)
    yield Api(services)
    services.close()


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def sandbox_now(api: Api) -> datetime:
    return datetime.fromisoformat(ok(api.as_("service").get("/sandbox/clock"))["now"])


def advance(api: Api, to: datetime) -> dict[str, Any]:
    return ok(api.as_("supervisor").post("/sandbox/clock/advance", json={"to": to.isoformat()}))


def advance_to_a_monday_morning_in_shanghai(api: Api) -> datetime:
    """Move the sandbox to 09:00 in Shanghai on a Monday at least two days ahead, so the
    weekdays of the dates that follow are known and no step races a midnight."""
    day = sandbox_now(api).date() + timedelta(days=2)
    monday = day + timedelta(days=(7 - day.weekday()) % 7)
    start = datetime.combine(monday, time(1, 0), tzinfo=UTC)
    assert start.astimezone(SHANGHAI).strftime("%a %H:%M") == "Mon 09:00"
    advance(api, start)
    return start


def test_the_sandbox_clock_starts_at_the_real_time_and_stands_still(sandbox_api):
    before = datetime.now(UTC)
    now = sandbox_now(sandbox_api)
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before - timedelta(minutes=5) < now <= datetime.now(UTC)
    assert sandbox_now(sandbox_api) == now == sandbox_api.services.clock.now()


def test_the_sandbox_clock_moves_forward_and_never_back(sandbox_api):
    start = sandbox_now(sandbox_api)
    later = start + timedelta(days=3, hours=5)
    moved = advance(sandbox_api, later)
    assert datetime.fromisoformat(moved["now"]) == later
    assert moved["fired"] == []
    assert sandbox_now(sandbox_api) == later
    assert datetime.fromisoformat(advance(sandbox_api, later)["now"]) == later, "standing still is allowed"
    in_shanghai = later.astimezone(SHANGHAI) + timedelta(hours=1)
    assert datetime.fromisoformat(advance(sandbox_api, in_shanghai)["now"]) == in_shanghai

    for backwards in (start, in_shanghai - timedelta(microseconds=1)):
        refused = sandbox_api.as_("supervisor").post("/sandbox/clock/advance", json={"to": backwards.isoformat()})
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert (refused.json()["rule_id"], refused.json()["field"]) == ("clock.forward_only", "to")
    for body in ({}, {"to": "tomorrow"}, {"to": "2099-01-01T00:00:00Z", "by": "1d"}):
        assert sandbox_api.as_("supervisor").post("/sandbox/clock/advance", json=body).status_code == 422, body
    assert sandbox_now(sandbox_api) == in_shanghai


def test_only_services_and_supervisors_may_read_or_move_the_sandbox_clock(sandbox_api):
    start = sandbox_now(sandbox_api)
    for role in ("collector", "auditor", "legal"):
        assert sandbox_api.as_(role).get("/sandbox/clock").status_code == 403
        moved = sandbox_api.as_(role).post("/sandbox/clock/advance", json={"to": (start + timedelta(days=1)).isoformat()})
        assert moved.status_code == 403
    assert sandbox_api.client.get("/sandbox/clock").status_code == 401
    assert sandbox_now(sandbox_api) == start
    assert ok(sandbox_api.as_("service").post("/sandbox/clock/advance", json={"to": (start + timedelta(days=1)).isoformat()}))


def test_commands_see_the_sandbox_time_and_the_due_date_comes_at_midnight_in_shanghai(sandbox_api):
    api = sandbox_api
    start = advance_to_a_monday_morning_in_shanghai(api)
    issued_on = start.astimezone(SHANGHAI).date()
    due_on = issued_on + timedelta(days=10)  # a Thursday: its reminder day, a week before, is a Thursday too
    due_starts = datetime.combine(due_on, time(0, 0), tzinfo=SHANGHAI)  # 16:00Z the day before

    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    body = invoice("INV-SANDBOX-1", issued_on=issued_on.isoformat(), due_on=due_on.isoformat())
    issued = ok(api.as_("service").post("/receivables", json=body), 201)
    assert (issued["state"], issued["days_past_due"]) == ("issued", 0)
    refused = api.as_("service").post("/receivables/INV-SANDBOX-1/fall-due")
    assert (refused.status_code, refused.json()["rule_id"]) == (422, "fall_due.not_yet")

    # On the way the pre-due reminder timer fires (a business morning about a week before due), nothing else.
    moved = advance(api, due_starts - timedelta(seconds=1))
    assert [f["command"] for f in moved["fired"]] == ["send_reminder"], moved["fired"]
    assert all(start < datetime.fromisoformat(f["scheduled_for"]) < due_starts for f in moved["fired"])
    refused = api.as_("service").post("/receivables/INV-SANDBOX-1/fall-due")
    assert (refused.status_code, refused.json()["rule_id"]) == (422, "fall_due.not_yet"), "one second before midnight in Shanghai"
    reminded = ok(api.as_("auditor").get("/receivables/INV-SANDBOX-1"))
    assert (reminded["state"], reminded["version"]) == ("reminded", 2), [f["outcome"] for f in moved["fired"]]

    moved = advance(api, due_starts)
    assert datetime.fromisoformat(moved["now"]) == due_starts
    assert [(f["command"], datetime.fromisoformat(f["scheduled_for"])) for f in moved["fired"]] == [("fall_due", due_starts)]
    now_due = ok(api.as_("auditor").get("/receivables/INV-SANDBOX-1"))
    assert (now_due["state"], now_due["days_past_due"]) == ("due", 0)
    fell_due = ok(api.as_("auditor").get("/receivables/INV-SANDBOX-1/history"))[-1]
    assert (fell_due["type"], fell_due["actor"]) == ("FellDue", "system:scheduler")
    assert datetime.fromisoformat(fell_due["occurred_at"]) == datetime.fromisoformat(fell_due["scheduled_for"]) == due_starts
    refused = api.as_("service").post("/receivables/INV-SANDBOX-1/fall-due")
    assert (refused.status_code, refused.json()["state"]) == (409, "due")

    # A payment dated tomorrow (in Shanghai) is refused until the clock reaches tomorrow there.
    tomorrow = (due_on + timedelta(days=1)).isoformat()
    payment = {"amount": "1200.50", "method": "alipay", "paid_on": tomorrow, "reference": "A-1"}
    too_soon = api.as_("service").post("/receivables/INV-SANDBOX-1/record-payment", json=payment)
    assert (too_soon.status_code, too_soon.json()["rule_id"]) == (422, "payment.future_date")
    advance(api, due_starts + timedelta(days=1, hours=2))  # 02:00 tomorrow in Shanghai
    settled = ok(api.as_("service").post("/receivables/INV-SANDBOX-1/record-payment", json=payment))
    assert (settled["state"], settled["balance"], settled["days_past_due"]) == ("settled", "0.00", 0)
    history = ok(api.as_("auditor").get("/receivables/INV-SANDBOX-1/history"))
    assert datetime.fromisoformat(history[-1]["occurred_at"]) == due_starts + timedelta(days=1, hours=2)


def test_the_pre_due_reminder_is_sent_even_when_a_week_before_due_is_a_weekend(sandbox_api):
    api = sandbox_api
    start = advance_to_a_monday_morning_in_shanghai(api)
    issued_on = start.astimezone(SHANGHAI).date()
    due_on = issued_on + timedelta(days=12)  # a Saturday; a week before it is a Saturday too
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    body = invoice("INV-SANDBOX-SAT", issued_on=issued_on.isoformat(), due_on=due_on.isoformat())
    ok(api.as_("service").post("/receivables", json=body), 201)
    moved = advance(api, datetime.combine(due_on, time(0, 0), tzinfo=SHANGHAI) - timedelta(seconds=1))
    assert [f["command"] for f in moved["fired"]] == ["send_reminder"]
    assert [f["outcome"] for f in moved["fired"]] == ["fired"]
    receivable = ok(api.as_("auditor").get("/receivables/INV-SANDBOX-SAT"))
    assert (receivable["state"], receivable["version"]) == ("reminded", 2)


def test_an_invoice_due_at_the_end_of_the_calendar_does_not_stop_the_timers_of_the_others(sandbox_api):
    api = sandbox_api
    start = advance_to_a_monday_morning_in_shanghai(api)
    issued_on = start.astimezone(SHANGHAI).date()
    due_on = issued_on + timedelta(days=8)
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    far = api.as_("service").post("/receivables", json=invoice("INV-FAR", issued_on=issued_on.isoformat(), due_on="9999-12-31"))
    assert far.status_code in (201, 422), far.text
    ok(api.as_("service").post("/receivables", json=invoice("INV-NEAR", issued_on=issued_on.isoformat(), due_on=due_on.isoformat())), 201)
    moved = api.as_("supervisor").post("/sandbox/clock/advance", json={"to": (start + timedelta(days=8)).isoformat()})
    assert moved.status_code == 200, moved.text
    assert ok(api.as_("auditor").get("/receivables/INV-NEAR"))["state"] == "due"


def test_advancing_the_sandbox_clock_to_an_instant_without_a_time_zone_is_422(sandbox_api):
    start = sandbox_now(sandbox_api)
    naive = sandbox_api.as_("supervisor").post("/sandbox/clock/advance", json={"to": "2099-01-01T00:00:00"})
    assert naive.status_code == 422, naive.text
    assert naive.json()["field"] == "to"
    assert sandbox_now(sandbox_api) == start


@pytest.mark.parametrize("fixture", ["api", "frozen_api"])
def test_without_the_sandbox_clock_the_sandbox_routes_do_not_exist(fixture, database_url, request):
    api: Api = request.getfixturevalue(fixture)
    for response in (
        api.as_("supervisor").get("/sandbox/clock"),
        api.as_("supervisor").post("/sandbox/clock/advance", json={"to": "2099-01-01T00:00:00Z"}),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    assert not [p for p in api.client.get("/openapi.json").json()["paths"] if p.startswith("/sandbox")]
