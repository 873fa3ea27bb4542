"""The scheduler and its timers: path independence, catch-up after downtime,
idempotent firing (also by two schedulers at once), the timers projection's
rebuild, and a due query that reads only what is due.

Receivables belong to a customer in Shanghai (UTC+8) or Los Angeles (UTC-8,
UTC-7 from 8 March 2026); amounts are CNY 1,200.50, issued Monday 2 March 2026.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st

from collections_es.application.clock import FixedClock, SandboxClock
from projections.timers import firings
from collections_es.application.service import Request
from collections_es.domain.errors import NotFoundError
from collections_es.domain.receivable import Receivable, receivable_id
from collections_es.domain.schedule import owed
from collections_es.domain.trail import SCHEDULER_ACTOR, Actor
from projections.timers import timers

from ..conftest import PG_URL, START, make_services
from .conftest import Api

SERVICE = Actor("service-1", "service")
COLLECTOR = Actor("collector-1", "collector")
SUPERVISOR = Actor("supervisor-1", "supervisor")
CUSTOMER_SERVICE = Actor("customer_service-1", "customer_service")

TZ = {"SH": "Asia/Shanghai", "LA": "America/Los_Angeles"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def register(services: Any, who: str) -> None:
    try:
        services.app.get_customer(f"C-{who}")
    except NotFoundError:
        services.app.register_customer(
            Request(SERVICE),
            customer_id=f"C-{who}",
            name=f"Customer {who}",
            timezone=TZ[who],
            tier="A",
            preferred_channel="email",
            contacts={"email": f"ap@{who.lower()}.example.com"},
        )


def issue(services: Any, number: str, who: str, due_on: str) -> uuid.UUID:
    register(services, who)
    return services.app.issue_receivable(
        Request(SERVICE),
        invoice_number=number,
        customer_id=f"C-{who}",
        amount="1200.50",
        currency="CNY",
        issued_on=date(2026, 3, 2),
        due_on=date.fromisoformat(due_on),
    ).resource.id


def do(services: Any, number: str, actor: Actor, command: str, **fields: Any) -> None:
    services.app.execute(Request(actor), receivable_id(number), command, **fields)


def pay(services: Any, number: str, amount: str, paid_on: str, reference: str) -> None:
    do(services, number, SERVICE, "record_payment", amount=amount, method="bank_transfer",
       paid_on=date.fromisoformat(paid_on), reference=reference)


def receivable_events(services: Any) -> list[Any]:
    """Every receivable event in the order the log recorded them."""
    notifications = services.app.recorder.select_notifications(start=1, limit=100_000)
    events = [services.app.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, Receivable.Event)]


def timer_rows(services: Any) -> list[tuple[Any, ...]]:
    services.projections.catch_up(["timers"])
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(timers).order_by(timers.c.receivable_id, timers.c.kind))
        return [tuple(r) for r in rows]


def tick(services: Any, at: datetime) -> list[Any]:
    services.clock.at = at
    return services.scheduler.tick(at)


@pytest.fixture
def other_database_url(database_url: str, tmp_path: Any) -> Iterator[str]:
    """A second, empty database of the same kind as `database_url`."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/other.db"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?schema={schema}"
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


# ---- path independence --------------------------------------------------------

PATH_END = utc("2026-06-01T00:00Z")

#: People's actions at fixed instants, the same whichever way the clock is moved.
#: Receivables: A (SH, due 3 Apr) disputed 20 Apr → resolved 10 May (its escalation comes back late);
#: B (LA, due 20 Mar) escalates on its own; C (SH, due 31 Mar) promises by 15 Apr and breaks it;
#: D (LA, due 10 Apr) pays in part and later agrees a plan it then misses.
PATH_ACTIONS: dict[datetime, list[Callable[[Any], None]]] = {
    utc("2026-04-08T12:00Z"): [
        lambda s: do(s, "C", COLLECTOR, "promise_to_pay", amount="1200.50", promised_on=date(2026, 4, 15)),
    ],
    utc("2026-04-20T12:00Z"): [
        lambda s: do(s, "A", CUSTOMER_SERVICE, "raise_dispute", reason="short delivery"),
        lambda s: pay(s, "D", "200.50", "2026-04-20", "D-1"),
        lambda s: do(s, "D", COLLECTOR, "agree_installment_plan", reason="cash flow", installments=[
            {"due_on": date(2026, 4, 30), "amount": "500.00"}, {"due_on": date(2026, 5, 15), "amount": "500.00"},
        ]),
    ],
    utc("2026-05-10T12:00Z"): [
        lambda s: do(s, "A", SUPERVISOR, "resolve_dispute", resolution="partial credit", adjusted_amount="1100.00"),
    ],
}


def run_path(directory: str, cuts: set[datetime]) -> list[tuple[Any, ...]]:
    """Advance a fresh sandbox to every cut and every action instant in order; every event recorded."""
    services = make_services(f"sqlite:///{directory}/path.db", SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    try:
        assert services.sandbox is not None
        names = {}
        for number, who, due_on in (("A", "SH", "2026-04-03"), ("B", "LA", "2026-03-20"),
                                    ("C", "SH", "2026-03-31"), ("D", "LA", "2026-04-10")):
            names[issue(services, number, who, due_on)] = number
        for at in sorted(cuts | set(PATH_ACTIONS) | {PATH_END}):
            fired = services.scheduler.advance(services.sandbox, at)
            assert all(f.outcome == "fired" for f in fired), fired
            for action in PATH_ACTIONS.get(at, []):
                action(services)
        assert services.sandbox.now() == PATH_END
        return [
            (names[e.originator_id], e.originator_version, type(e).__name__, e.state_after, e.scheduled_for, e.timestamp)
            for e in receivable_events(services)
        ]
    finally:
        services.close()


def test_advancing_the_sandbox_clock_in_many_random_small_steps_records_exactly_what_one_big_step_between_actions_records(tmp_path):
    one_step = run_path(str(tmp_path), set())
    types = [t for (_, _, t, *_) in one_step]
    assert {"ReminderSent", "FellDue", "FollowUpStarted", "Escalated", "PromiseBroken", "DisputeResolved"} <= set(types)
    timer_instants = sorted({e[4] for e in one_step if e[4] is not None})
    span_minutes = int((PATH_END - START).total_seconds() // 60)
    runs: list[int] = []

    @hypothesis.settings(
        max_examples=8, derandomize=True, deadline=None, database=None,
        suppress_health_check=[hypothesis.HealthCheck.too_slow],
    )
    @hypothesis.given(
        minutes=st.lists(st.integers(min_value=1, max_value=span_minutes), min_size=20, max_size=80, unique=True),
        exact=st.lists(st.sampled_from(timer_instants), max_size=10),
        nudge=st.sampled_from([timedelta(0), -timedelta(minutes=1), timedelta(minutes=1)]),
    )
    def many_small_steps(minutes: list[int], exact: list[datetime], nudge: timedelta) -> None:
        # Random cuts, and cuts right at (or a minute around) the instants timers are owed.
        cuts = {START + timedelta(minutes=m) for m in minutes} | {min(PATH_END, t + nudge) for t in exact}
        runs.append(len(cuts))
        with tempfile.TemporaryDirectory() as directory:
            assert run_path(directory, cuts) == one_step

    many_small_steps()
    assert len(runs) == 8 and min(runs) >= 20, runs


# ---- catch-up ------------------------------------------------------------------

DOWNTIME_STARTS = utc("2026-04-01T12:30Z")
DOWNTIME_ENDS = DOWNTIME_STARTS + timedelta(days=40)


def _before_downtime(services: Any) -> None:
    """Both runs: ticked daily until 1 April, with people acting on the way."""
    for number, who, due_on in (("P", "SH", "2026-03-10"), ("Q", "LA", "2026-03-10"), ("R", "SH", "2026-03-25"),
                                ("S", "LA", "2026-04-20"), ("T", "SH", "2026-03-10")):
        issue(services, number, who, due_on)
    at = START.replace(hour=12, minute=30)
    while at < DOWNTIME_STARTS:
        tick(services, at)
        if at.date() == date(2026, 3, 20):
            do(services, "P", COLLECTOR, "promise_to_pay", amount="1200.50", promised_on=date(2026, 4, 10))
            do(services, "Q", COLLECTOR, "agree_installment_plan", reason="cash flow", installments=[
                {"due_on": date(2026, 3, 25), "amount": "400.00"},
                {"due_on": date(2026, 4, 25), "amount": "400.00"},
                {"due_on": date(2026, 5, 25), "amount": "400.50"},
            ])
            do(services, "T", CUSTOMER_SERVICE, "raise_dispute", reason="wrong goods")
        if at.date() == date(2026, 3, 24):
            pay(services, "Q", "400.00", "2026-03-24", "Q-1")
        at += timedelta(days=1)


def _final(services: Any) -> dict[str, Any]:
    out = {}
    for number in "PQRST":
        rid = receivable_id(number)
        r = services.app.get_receivable(rid)
        events = list(services.app.history(rid))
        out[number] = (r.state, r.balance, [type(e).__name__ for e in events], [e.scheduled_for for e in events])
    return out


def test_one_tick_after_forty_days_of_scheduler_downtime_ends_where_ticking_every_day_would(database_url, other_database_url):
    daily = make_services(database_url, FixedClock(START))
    late = make_services(other_database_url, FixedClock(START))
    try:
        for services in (daily, late):
            _before_downtime(services)
        assert _final(daily) == _final(late)
        at = DOWNTIME_STARTS
        while at <= DOWNTIME_ENDS:
            tick(daily, at)
            at += timedelta(days=1)
        fired = tick(late, DOWNTIME_ENDS)
        assert fired and all(f.outcome == "fired" for f in fired)
        assert all(f.fired_at == DOWNTIME_ENDS for f in fired)
        expected = _final(daily)
        assert _final(late) == expected
        # What the window held: a broken promise, a missed installment, an escalation, a new receivable
        # reminded, due and followed up; the disputed one waited.
        assert {n: s for n, (s, *_rest) in expected.items()} == {
            "P": "overdue_escalated", "Q": "overdue_escalated", "R": "overdue_escalated", "S": "following_up", "T": "following_up",
        }
        assert [f.kind for f in fired if f.receivable_id == str(receivable_id("S"))] == ["reminder", "fall_due", "follow_up"]
        assert tick(late, DOWNTIME_ENDS) == []
    finally:
        daily.close()
        late.close()


# ---- idempotent firing -------------------------------------------------------------


def test_ticking_twice_at_the_same_instant_fires_nothing_the_second_time(services):
    for i, who in enumerate(["SH", "LA"] * 3):
        issue(services, f"INV-TWICE-{i}", who, "2026-03-10")
    now = utc("2026-05-01T00:00Z")
    first = tick(services, now)
    assert len(first) == 6 * 4  # reminder, falls due, follow-up, escalation each
    events, rows = receivable_events(services), timer_rows(services)
    with services.engine.connect() as conn:
        noted = conn.execute(sa.select(sa.func.count()).select_from(firings)).scalar_one()
    assert noted == len(first)
    assert tick(services, now) == []
    assert receivable_events(services) == events
    assert timer_rows(services) == rows


def test_firing_a_timer_again_after_it_fired_records_nothing_new(services):
    issue(services, "INV-AGAIN", "SH", "2026-03-10")
    now = utc("2026-03-10T00:00Z")
    services.clock.at = now
    services.projections.catch_up(["timers"])
    due = services.scheduler.due(now)
    assert [r.kind for r in due] == ["reminder", "fall_due"]
    tick(services, now)
    before = receivable_events(services)
    again = [services.scheduler.fire(row, "scheduler:retry") for row in due]
    assert receivable_events(services) == before
    assert [(f.kind, f.scheduled_for) for f in again] == [(r.kind, r.at.replace(tzinfo=UTC)) for r in due]


def test_two_schedulers_over_one_database_ticking_at_once_record_each_event_once(database_url):
    now = utc("2026-05-01T00:00Z")
    first = make_services(database_url, FixedClock(START))
    second = make_services(database_url, FixedClock(START))
    try:
        for i in range(12):
            issue(first, f"INV-RACE-{i}", "SH" if i % 2 else "LA", "2026-03-10")
        first.clock.at = second.clock.at = now
        barrier = threading.Barrier(2)
        results: dict[str, Any] = {}

        def run(name: str, services: Any) -> None:
            barrier.wait()
            try:
                results[name] = services.scheduler.tick(now)
            except Exception as exc:  # noqa: BLE001 - reported below
                results[name] = exc

        threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("first", first), ("second", second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert set(results) == {"first", "second"}
        assert not any(isinstance(outcome, Exception) for outcome in results.values()), results
        events = [e for e in receivable_events(first) if e.actor_id == SCHEDULER_ACTOR]
        keys = [(e.originator_id, type(e).__name__, e.scheduled_for) for e in events]
        assert len(keys) == len(set(keys)) == 12 * 4  # reminder, falls due, follow-up, escalation: once each
        fired = [f for outcome in results.values() if not isinstance(outcome, Exception) for f in outcome]
        assert all(f.outcome == "fired" for f in fired)
        assert all(first.app.get_receivable(receivable_id(f"INV-RACE-{i}")).state == "overdue_escalated" for i in range(12))
        assert first.scheduler.tick(now) == [] and second.scheduler.tick(now) == []
        assert [e for e in receivable_events(first) if e.actor_id == SCHEDULER_ACTOR] == events
    finally:
        first.close()
        second.close()


def test_two_projection_workers_applying_the_same_batch_at_once_let_the_first_win_without_an_error(request, database_url):
    first = make_services(database_url, FixedClock(START))
    second = make_services(database_url, FixedClock(START))
    try:
        rid = issue(first, "INV-PROJ-RACE", "SH", "2026-04-03")
        projection = first.projections.projections["timers"]
        applied, go = threading.Event(), threading.Event()
        original = projection.apply_batch

        def apply_then_wait(conn: Any, batch: Any, prepared: Any) -> None:
            original(conn, batch, prepared)
            applied.set()
            assert go.wait(30)

        projection.apply_batch = apply_then_wait  # type: ignore[method-assign]
        outcomes: dict[str, Any] = {}

        def run(name: str, services: Any) -> None:
            try:
                outcomes[name] = services.projections.run_once("timers")
            except Exception as exc:  # noqa: BLE001 - the assertion below reports it
                outcomes[name] = exc

        a = threading.Thread(target=run, args=("first", first))
        a.start()
        assert applied.wait(30)  # the first worker holds its batch open, rows written
        b = threading.Thread(target=run, args=("second", second))
        b.start()
        b.join(1.0)  # the second worker reads the same batch and waits on the first one's lock
        go.set()
        a.join(30)
        b.join(30)
        projection.apply_batch = original  # type: ignore[method-assign]
        assert outcomes["first"] >= 1
        assert outcomes["second"] == 0, outcomes["second"]
        assert {row[1] for row in timer_rows(first) if row[0] == str(rid)} == {"reminder", "fall_due", "limitation_warning"}
    finally:
        first.close()
        second.close()


# ---- the timers projection --------------------------------------------------------


def test_rebuilding_the_timers_projection_gives_the_rows_kept_live_and_what_the_schedule_owes_now(services):
    _before_downtime(services)
    issue(services, "INV-SETTLED", "LA", "2026-05-01")
    pay(services, "INV-SETTLED", "1200.50", "2026-03-31", "SETTLED-1")
    live = timer_rows(services)
    assert {row[1] for row in live} == {"promise_check", "escalate", "limitation_warning", "reminder", "fall_due"}
    assert str(receivable_id("INV-SETTLED")) not in {row[0] for row in live}
    services.projections.rebuild("timers")
    assert timer_rows(services) == live
    # And each receivable's rows are what `owed` says after its last event, under that event's policy.
    for number in ["P", "Q", "R", "S", "T", "INV-SETTLED"]:
        rid = receivable_id(number)
        r = services.app.get_receivable(rid)
        last = list(services.app.history(rid))[-1]
        expected = sorted(
            (str(rid), t.kind, t.at.astimezone(UTC).replace(tzinfo=None), t.command, t.reason, last.policy_version)
            for t in owed(r, services.app.policy_version(last.policy_version), last.timestamp)
        )
        assert sorted(row for row in live if row[0] == str(rid)) == expected, number


def test_the_due_query_returns_only_unfired_timers_due_by_now_earliest_first_whatever_else_is_waiting(services):
    now = utc("2026-06-01T00:00Z")
    naive = now.replace(tzinfo=None)
    waiting = [
        {"receivable_id": str(uuid.UUID(int=i)), "kind": "escalate", "at": naive + timedelta(minutes=1 + i),
         "command": "escalate", "reason": "later", "policy_version": "2026.1"}
        for i in range(500)
    ]
    due = [
        {"receivable_id": str(uuid.UUID(int=10_000 + i)), "kind": kind, "at": naive - timedelta(hours=h),
         "command": kind, "reason": "due", "policy_version": "2026.1"}
        for i, (kind, h) in enumerate([("fall_due", 5), ("escalate", 0), ("follow_up", 30), ("fall_due", 1)])
    ]
    already = {"receivable_id": str(uuid.UUID(int=20_000)), "kind": "fall_due", "at": naive - timedelta(days=2),
               "command": "fall_due", "reason": "fired", "policy_version": "2026.1"}
    with services.engine.begin() as conn:
        conn.execute(timers.insert(), [*waiting, *due, already])
        conn.execute(firings.insert().values(receivable_id=already["receivable_id"], kind="fall_due",
                                             at=already["at"], fired_at=naive, outcome="fired"))
    rows = services.scheduler.due(now)
    assert [(r.receivable_id, r.kind, r.at) for r in rows] == [
        (d["receivable_id"], d["kind"], d["at"]) for d in sorted(due, key=lambda d: d["at"])
    ]
    assert all(r.at <= naive for r in rows)
    assert len(services.scheduler.due(now, limit=2)) == 2
    assert services.scheduler.due(now - timedelta(days=3)) == []
    assert len(services.scheduler.due(now + timedelta(minutes=10))) == 4 + 10  # inclusive of its instant


def test_the_due_query_reads_the_timers_by_the_index_on_their_instant(sqlite_url, clock):
    services = make_services(sqlite_url, clock)
    try:
        compiled = None

        def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            nonlocal compiled
            if "rm_timers" in statement and "timer_firings" in statement:
                compiled = (statement, parameters)

        sa.event.listen(services.engine, "before_cursor_execute", capture)
        services.scheduler.due(START)
        sa.event.remove(services.engine, "before_cursor_execute", capture)
        assert compiled is not None
        with services.engine.connect() as conn:
            plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled[0], compiled[1]))
        assert "USING INDEX ix_rm_timers_at (at<?)" in plan, plan
        assert "SCAN rm_timers" not in plan, plan
    finally:
        services.close()


# ---- the time routes ---------------------------------------------------------------


def test_post_admin_tick_fires_what_is_due_for_services_and_supervisors_only(api):
    issue(api.services, "INV-HTTP-TICK", "SH", "2026-03-10")
    api.services.clock.at = utc("2026-03-10T00:00Z")
    assert api.as_("collector").post("/admin/tick").status_code == 403
    response = api.as_("service").post("/admin/tick")
    assert response.status_code == 200, response.text
    body = response.json()
    assert utc(body["now"]) == utc("2026-03-10T00:00Z")
    assert [(f["kind"], utc(f["scheduled_for"]), f["outcome"]) for f in body["fired"]] == [
        ("reminder", utc("2026-03-03T01:00Z"), "fired"),
        ("fall_due", utc("2026-03-09T16:00Z"), "fired"),
    ]
    assert api.as_("supervisor").post("/admin/tick").json()["fired"] == []


def test_the_sandbox_clock_routes_are_not_found_outside_sandbox_mode(api):
    assert api.as_("service").get("/sandbox/clock").status_code == 404
    assert api.as_("service").post("/sandbox/clock/advance", json={"to": "2026-04-01T00:00:00Z"}).status_code == 404


def test_the_sandbox_clock_only_moves_forward_and_only_for_services_and_supervisors(database_url):
    services = make_services(database_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    try:
        api = Api(services)
        assert utc(api.as_("service").get("/sandbox/clock").json()["now"]) == START
        assert api.as_("collector").post("/sandbox/clock/advance", json={"to": "2026-04-01T00:00:00Z"}).status_code == 403
        moved = api.as_("supervisor").post("/sandbox/clock/advance", json={"to": "2026-04-01T00:00:00Z"})
        assert moved.status_code == 200 and utc(moved.json()["now"]) == utc("2026-04-01T00:00Z")
        back = api.as_("service").post("/sandbox/clock/advance", json={"to": "2026-03-31T00:00:00Z"})
        assert back.status_code == 422
        assert back.json()["rule_id"] == "clock.forward_only"
        assert utc(api.as_("service").get("/sandbox/clock").json()["now"]) == utc("2026-04-01T00:00Z")
    finally:
        services.close()


def test_advancing_the_sandbox_clock_to_an_instant_without_a_time_zone_is_refused_with_422(sqlite_url):
    services = make_services(sqlite_url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    try:
        api = Api(services)
        naive = api.as_("service").post("/sandbox/clock/advance", json={"to": "2026-04-02T00:00:00"})
        assert naive.status_code == 422, naive.text
        assert services.sandbox.now() == START
    finally:
        services.close()
