"""The pieces of the scale-out, one at a time (ADR 0062, ADR 0063): the scheduler's advisory lock,
the elected loop, senders taking rows FOR UPDATE SKIP LOCKED, heartbeats and `collections-es health`,
what `serve` runs. The whole, with processes killed, is tests/integration/test_processes.py."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from collections_es.adapters.heartbeat import Heartbeat, check
from collections_es.adapters.leader import AdvisoryLock, NoElection, leadership
from collections_es.adapters.persistence import Database
from collections_es.application.clock import FixedClock
from collections_es.bootstrap import elected_loop
from collections_es.cli import _serve_role, app
from collections_es.config import Settings, get_settings
from projections.outbox import SqlOutbox, messages

from ..conftest import START, make_services


@pytest.fixture
def pg_services(pg_url) -> Iterator:
    services = make_services(pg_url, FixedClock(START), COLLECTIONS_LEADER_POLL_SECONDS=0.05)
    yield services
    services.close()


@pytest.mark.postgres
def test_one_advisory_lock_holder_at_a_time_and_the_lock_passes_when_its_connection_ends(pg_url):
    database = Database.parse(pg_url)
    first, second = AdvisoryLock(database, "scheduler"), AdvisoryLock(database, "scheduler")
    other = AdvisoryLock(database, "something-else")
    try:
        assert first.hold() and first.hold()  # taken, then still held
        assert not second.hold()
        assert other.hold()  # another name, another lock
        # The leader's session ends (as when its process is killed): it knows at its next check.
        admin = sa.create_engine(database.url)
        key = first.key & 0xFFFFFFFFFFFFFFFF  # pg_locks shows a bigint key as its two 32-bit halves
        with admin.begin() as conn:
            ended = conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :high AND objid = :low AND objsubid = 1"), {"high": key >> 32, "low": key & 0xFFFFFFFF})
            assert ended.scalars().all() == [True]
        admin.dispose()
        assert second.hold()
        assert not first.hold()
        first.release()
        second.release()
        assert AdvisoryLock(database, "scheduler").hold()
    finally:
        for lock in (first, second, other):
            lock.release()


def test_a_scheduler_that_cannot_reach_the_database_neither_leads_nor_stands_by():
    lock = AdvisoryLock(Database.parse("postgresql://collections@127.0.0.1:1/nowhere"), "scheduler")
    try:
        assert not lock.hold() and not lock.connected
    finally:
        lock.release()


def test_sqlite_elects_no_one_this_process_always_leads(sqlite_url):
    lock = leadership(Database.parse(sqlite_url), "scheduler")
    assert isinstance(lock, NoElection) and lock.hold()


@pytest.mark.postgres
def test_of_two_elected_loops_one_works_and_the_other_takes_over_when_it_stops(pg_services, tmp_path):
    worked: dict[str, int] = {"a": 0, "b": 0}
    stops = {"a": threading.Event(), "b": threading.Event()}
    beats = {name: Heartbeat("scheduler", tmp_path / f"{name}.health") for name in stops}

    def loop(name: str) -> threading.Thread:
        def work() -> None:
            worked[name] += 1

        thread = threading.Thread(target=elected_loop, args=(pg_services, "scheduler", work), daemon=True,
                                  kwargs={"interval": 0.05, "stop": stops[name], "heartbeat": beats[name]})
        thread.start()
        return thread

    a = loop("a")
    deadline = time.monotonic() + 10
    while worked["a"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    b = loop("b")
    while _state(beats["b"]) != "standby":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    assert worked["b"] == 0
    stops["a"].set()
    a.join(5)
    while worked["b"] < 2:
        assert time.monotonic() < deadline, "the standby did not take over"
        time.sleep(0.02)
    assert _state(beats["b"]) == "leader"
    stops["b"].set()
    b.join(5)


def _state(heartbeat: Heartbeat) -> str | None:
    try:
        return json.loads(heartbeat.path.read_text())["state"]
    except FileNotFoundError:
        return None


def _message(n: int) -> dict:
    at = datetime(2026, 3, 1, 9, 0)
    return {
        "id": f"m-{n}", "position": n, "kind": "pre_due_reminder", "channel": "email", "recipient": f"a{n}@example.com",
        "language": "en", "subject": "s", "body": "b", "receivable_id": "r", "customer_id": "c", "status": "pending",
        "attempts": 0, "next_attempt_at": at, "created_at": at,
    }


@pytest.mark.postgres
def test_senders_pass_over_a_message_another_sender_holds_and_take_it_once_it_is_let_go(pg_services):
    with pg_services.engine.begin() as conn:
        conn.execute(messages.insert(), [_message(n) for n in (1, 2)])
    one, two = SqlOutbox(pg_services.engine), SqlOutbox(pg_services.engine)
    until = START + timedelta(minutes=5)
    with pytest.raises(RuntimeError):
        with one.take(START, until) as first:
            assert first["id"] == "m-1"
            with two.take(START, until) as second:
                assert second["id"] == "m-2"  # m-1 is held: passed over, not awaited
                with one.take(START, until) as third:
                    assert third is None  # both are held
                two.finish("m-2", "sent", 1, sent_at=START)
            with two.take(START, until) as again:
                assert again is None  # m-2 is sent, m-1 still held
            # The holder dies before writing its outcome: its transaction goes, and the lock with it.
            raise RuntimeError("the sender died")
    with two.take(START, until) as retaken:
        assert retaken["id"] == "m-1" and retaken["attempts"] == 0
    with pg_services.engine.connect() as conn:
        assert dict(conn.execute(sa.select(messages.c.id, messages.c.status)).tuples().all()) == {"m-1": "pending", "m-2": "sent"}


def test_health_says_whether_a_workers_loop_beat_recently_and_its_process_lives(tmp_path, monkeypatch):
    path = tmp_path / "scheduler.health"
    runner = CliRunner()
    monkeypatch.setenv("COLLECTIONS_HEALTH_FILE", str(path))

    missing = runner.invoke(app, ["health", "scheduler"])
    assert missing.exit_code == 1 and "no heartbeat" in missing.output

    Heartbeat("scheduler", path).beat("standby")
    fresh = runner.invoke(app, ["health", "scheduler"])
    assert fresh.exit_code == 0 and f"scheduler: standby (pid {os.getpid()})" in fresh.output

    assert runner.invoke(app, ["health", "notify"]).exit_code == 1  # someone else's heartbeat
    assert runner.invoke(app, ["health", "api"]).exit_code == 2

    Heartbeat("scheduler", path, wall_clock=lambda: time.time() - 120).beat("leader")
    stale = runner.invoke(app, ["health", "scheduler", "--max-age", "60"])
    assert stale.exit_code == 1 and "last came round 120 s ago" in stale.output

    Heartbeat("scheduler", path).beat("cut off")  # it cannot reach the database: neither leading nor waiting
    cut_off = runner.invoke(app, ["health", "scheduler"])
    assert cut_off.exit_code == 1 and "scheduler: cut off" in cut_off.output

    path.write_text(json.dumps({"role": "scheduler", "state": "leader", "pid": 2**22 + 17, "at": time.time()}))
    assert not check("scheduler", path, max_age=60).ok  # that process is gone


@pytest.mark.postgres
def test_serve_is_the_api_only_on_postgresql_with_external_projections_and_everything_otherwise(pg_url, sqlite_url):
    def role(url: str, projections: str) -> tuple[str, tuple[str, ...]]:
        settings = Settings(DATABASE_URL=url, COLLECTIONS_PROJECTIONS=projections)
        return _serve_role(settings, Database.parse(url))

    assert role(pg_url, "external") == ("api", ("api",))
    assert role(pg_url, "embedded") == ("embedded", ("api", "projections", "scheduler", "notify", "deliver"))
    assert role(sqlite_url, "external") == ("embedded", ("api", "scheduler", "notify", "deliver"))
    assert role(sqlite_url, "embedded")[0] == "embedded"


def test_serve_refuses_several_workers_unless_it_is_the_api_only(sqlite_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "--workers needs PostgreSQL and COLLECTIONS_PROJECTIONS=external" in result.output


def test_the_sandbox_clock_starts_where_the_settings_say_bounded_like_every_date(sqlite_url):
    services = make_services(sqlite_url, COLLECTIONS_CLOCK="sandbox", COLLECTIONS_SANDBOX_START="2026-03-02T09:00:00+08:00")
    try:
        assert services.clock.now() == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    finally:
        services.close()
    for bad in ("2026-03-02T09:00:00", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"):
        with pytest.raises(ValueError, match="COLLECTIONS_SANDBOX_START"):
            Settings(DATABASE_URL=sqlite_url, COLLECTIONS_SANDBOX_START=bad)


@pytest.mark.postgres
def test_webhook_senders_pass_over_a_held_delivery_and_the_later_ones_of_its_receivable_wait_behind_it(pg_services):
    from projections.base import tracking
    from projections.webhooks import HOLD_CURSOR, SqlDeliveries, deliveries, subscriptions

    at = datetime(2026, 3, 1, 9, 0)
    with pg_services.engine.begin() as conn:
        conn.execute(subscriptions.insert().values(
            id="s", url="https://example.com/hook", events='["*"]', secret="whsec", start_position=0,
            created_by="supervisor-1", created_at=at))
        conn.execute(deliveries.insert(), [
            {"id": f"d-{n}", "subscription_id": "s", "position": n, "seq": 0, "ordering_key": key,
             "event_type": "Receivable.PaymentRecorded", "body": "{}", "status": "pending", "attempts": 0, "tries": 0,
             "next_attempt_at": at, "created_at": at}
            for n, key in ((1, "r:A"), (2, "r:A"), (3, "r:B"))
        ])
        conn.execute(tracking.update().where(tracking.c.name == HOLD_CURSOR).values(position=3))
    one, two = SqlDeliveries(pg_services.engine), SqlDeliveries(pg_services.engine)
    until = START + timedelta(minutes=5)
    done = {"attempts": 1, "tries": 1, "at": START, "http_status": 200, "error": None}
    with one.take(START, until) as first:
        assert first["id"] == "d-1"
        with two.take(START, until) as second:
            assert second["id"] == "d-3"  # d-1 is held, and d-2 waits behind it (same receivable)
            with one.take(START, until) as third:
                assert third is None
            two.finish("d-3", "delivered", **done)
        one.finish("d-1", "delivered", **done)
    with two.take(START, until) as fourth:
        assert fourth["id"] == "d-2"  # its turn, once d-1 is delivered
