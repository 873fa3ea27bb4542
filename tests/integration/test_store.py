"""The event store on real SQLite and PostgreSQL: round trips, the hash chain,
snapshots, point-in-time reads, idempotency atomicity and concurrent writers."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest

from collections_es.application.idempotency import IdempotencyRecord, idempotency_record_id
from collections_es.application.service import Idempotency, Request
from collections_es.domain.errors import DuplicateError, VersionMismatchError
from collections_es.domain.receivable import Receivable
from collections_es.domain.trail import GENESIS_HASH, Actor, stored_event_hash

from ..conftest import START, make_services

SERVICE = Actor("erp", "service")


def issue(services, number: str = "INV-1", amount: str = "10000.00") -> Receivable:
    with contextlib.suppress(DuplicateError):
        services.app.register_customer(
            Request(SERVICE),
            customer_id="C1",
            name="ACME",
            timezone="Asia/Shanghai",
            tier="A",
            preferred_channel="email",
            contacts={"email": "a@example.com"},
        )
    outcome = services.app.issue_receivable(
        Request(SERVICE),
        invoice_number=number,
        customer_id="C1",
        amount=amount,
        currency="CNY",
        issued_on=date(2026, 3, 2),
        due_on=date(2026, 4, 1),
    )
    return outcome.resource


def pay(services, rid, reference: str, amount: str = "1.00", **request) -> Receivable:
    return services.app.execute(
        Request(SERVICE, **request),
        rid,
        "record_payment",
        amount=amount,
        method="bank_transfer",
        paid_on=date(2026, 3, 2),
        reference=reference,
    ).resource


def test_a_receivable_reloads_equal_to_what_was_saved_with_its_hash_chain_intact(services):
    r = issue(services)
    pay(services, r.id, "P1", "100.25")
    loaded = services.app.get_receivable(r.id)
    assert loaded.balance == Decimal("9899.75")
    assert loaded.state == "issued" and loaded.version == 2
    events = list(services.app.history(r.id))
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert all(stored_event_hash(e) == e.hash for e in events)
    assert isinstance(events[1].paid_on, date) and events[1].amount == Decimal("100.25")


def test_a_long_history_is_loaded_from_a_snapshot_and_equals_full_replay(database_url, clock):
    services = make_services(database_url, clock, COLLECTIONS_SNAPSHOT_INTERVAL=10)
    try:
        r = issue(services)
        for i in range(34):
            pay(services, r.id, f"P{i}")
        snapshots = list(services.app.snapshots.get(r.id))
        assert [s.originator_version for s in snapshots] == [10, 20, 30]
        from_snapshot = services.app.get_receivable(r.id)
        replayed = services.app.get_receivable(r.id, version=35)
        assert from_snapshot.version == replayed.version == 35
        assert from_snapshot.balance == replayed.balance == Decimal("9966.00")
        assert from_snapshot.last_hash == replayed.last_hash
    finally:
        services.close()


def test_a_receivable_can_be_read_as_of_a_past_version_and_a_past_instant(services, clock):
    r = issue(services)
    clock.at = START + timedelta(days=1)
    pay(services, r.id, "P1", "1000.00")
    clock.at = START + timedelta(days=2)
    pay(services, r.id, "P2", "1000.00")
    assert services.app.get_receivable(r.id, version=2).balance == Decimal("9000.00")
    as_of = services.app.get_receivable_as_of(r.id, START + timedelta(days=1, hours=5))
    assert as_of.version == 2 and as_of.balance == Decimal("9000.00")
    assert services.app.get_receivable_as_of(r.id, START).version == 1


def test_an_idempotency_key_and_the_events_it_caused_are_saved_together_or_not_at_all(services, monkeypatch):
    """Two requests with one key both pass the replay check (a race); the loser's
    payment must not be saved without its key, nor its key without its payment."""
    r = issue(services)
    key = Idempotency("pay-once", "fingerprint-1")
    pay(services, r.id, "P1", idempotency=key)
    # The racing duplicate: it does not see the stored key before deciding...
    original = services.app._replay
    calls = {"n": 0}

    def blind_once(request):
        calls["n"] += 1
        return None if calls["n"] == 1 else original(request)

    monkeypatch.setattr(services.app, "_replay", blind_once)
    # ...so it decides a second payment (a new reference), and its save collides on the key.
    replayed = pay(services, r.id, "P1-retry", idempotency=key)
    assert replayed.version == 2
    stored = services.app.get_receivable(r.id)
    assert stored.version == 2 and stored.payment_references == ["P1"]
    record = services.app.repository.get(idempotency_record_id("erp", "pay-once"))
    assert isinstance(record, IdempotencyRecord) and record.resource_version == 2


def test_if_match_refuses_a_stale_version_and_changes_nothing(services):
    r = issue(services)
    pay(services, r.id, "P1")
    with pytest.raises(VersionMismatchError):
        pay(services, r.id, "P2", expected_version=1)
    assert services.app.get_receivable(r.id).version == 2
    assert pay(services, r.id, "P2", expected_version=2).version == 3


def test_sixteen_concurrent_writers_lose_no_update_and_leave_gapless_versions(database_url, clock):
    """Two service instances (as two processes would) with eight writer threads each:
    writes within an instance take turns, writes across instances race and retry."""
    services = make_services(database_url, clock)
    other = make_services(database_url, clock)
    try:
        r = issue(services, amount="100000.00")
        writers, commands = 16, 25
        errors: list[BaseException] = []
        barrier = threading.Barrier(writers)

        def writer(w: int) -> None:
            try:
                barrier.wait()
                for c in range(commands):
                    pay(services if w % 2 else other, r.id, f"W{w}-{c}", "1.00")
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        final = services.app.get_receivable(r.id)
        assert final.version == 1 + writers * commands
        assert final.balance == Decimal("100000.00") - writers * commands
        versions = [e.originator_version for e in services.app.history(r.id)]
        assert versions == list(range(1, writers * commands + 2))
        assert len(set(final.payment_references)) == writers * commands
    finally:
        services.close()
        other.close()


def test_sqlite_commits_with_synchronous_full_in_wal_mode(sqlite_url, clock):
    services = make_services(sqlite_url, clock)
    try:
        issue(services)
        path = services.database.url.database
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        with services.engine.connect() as sa_conn:
            assert sa_conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        with services.app.recorder.datastore.transaction(commit=False) as curs:
            curs.execute("PRAGMA synchronous")
            assert curs.fetchone()[0] == 2
    finally:
        services.close()
