"""PII at rest (issue 5, confidentiality): with COLLECTIONS_CIPHER_KEY set, the raw
database holds none of the customers' contact details, in the event store, the
snapshots, any read model or the outbox: SQLite file bytes (with its -wal and
-shm files), PostgreSQL table contents as text with bytea columns decoded.
Without the key the same scenario shows them: the test can see PII when it is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from eventsourcing.cryptography import AESCipher

from collections_es.adapters.persistence import Database

from ..conftest import make_services
from . import pii_scenario as scenario
from .conftest import Api

KEY = AESCipher.create_key(32)


@pytest.fixture
def servers() -> Iterator[dict[str, object]]:
    with scenario.RefusingMailServer() as mail, scenario.FailingGateway() as gateway:
        yield scenario.transports(mail, gateway)


def played(database_url: str, clock, transports: dict[str, object], key: str | None) -> Api:
    # Snapshots every 2 events: the snapshot store holds customers' contact details too.
    services = make_services(database_url, clock, COLLECTIONS_CIPHER_KEY=key, COLLECTIONS_SNAPSHOT_INTERVAL=2, **transports)
    api = Api(services)
    scenario.run(api)
    return api


def raw_database(database_url: str) -> list[tuple[str, bytes]]:
    """(where, bytes) for everything the database holds, read past the application."""
    database = Database.parse(database_url)
    if database.is_sqlite:
        assert database.url.database
        path = Path(database.url.database)
        files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        return [(p.name, p.read_bytes()) for p in files]
    engine = sa.create_engine(database.url)
    schema = database.schema
    assert schema
    found = []
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            ).scalars().all()
            assert len(tables) >= 10, tables  # the event store, snapshots, every read model, the outbox
            for table in tables:
                for (text,) in conn.execute(sa.text(f'SELECT t::text FROM "{schema}"."{table}" t')):
                    found.append((table, text.encode("utf-8")))
                bytea = conn.execute(
                    sa.text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = :s AND table_name = :t AND data_type = 'bytea'"
                    ),
                    {"s": schema, "t": table},
                ).scalars().all()
                for column in bytea:
                    for (value,) in conn.execute(sa.text(f'SELECT "{column}" FROM "{schema}"."{table}"')):
                        if value is not None:
                            found.append((f"{table}.{column}", bytes(value)))
    finally:
        engine.dispose()
    return found


def leaks(database_url: str) -> dict[str, list[str]]:
    """Each contact detail of the scenario → where in the raw database it was found."""
    places = raw_database(database_url)
    assert places
    return {
        value: sorted({where for where, blob in places if scenario.found_in(blob, value)})
        for value in scenario.pii_strings()
    }


def test_with_a_cipher_key_the_raw_database_holds_none_of_the_contact_details(database_url, clock, servers):
    api = played(database_url, clock, servers, KEY)
    try:
        # The service reads them back in clear: what is stored is encrypted, not lost.
        customer = api.as_("collector").get("/customers/C-PII-1").json()
        assert customer["contacts"]["phone"] == "13900001111"
        log = api.as_("collector").get("/receivables/INV-PII-2/contacts-log").json()["items"]
        assert "13655556666" in log[0]["note"]
        shown = api.as_("supervisor").get("/notifications").json()["items"]
        assert {m["recipient"] for m in shown} >= {"li.na@pii-one.example", "13655556666"}
        errors = " ".join(m["last_error"] or "" for m in shown)
        assert "User unknown" in errors and "400 Bad Request" in errors  # the servers refused, quoting the address
        # While the service runs (SQLite: the -wal file holds the latest pages) ...
        assert {value: where for value, where in leaks(database_url).items() if where} == {}
    finally:
        api.services.close()
    # ... and once it has stopped (SQLite: checkpointed into the main file).
    assert {value: where for value, where in leaks(database_url).items() if where} == {}


def test_without_a_key_the_same_scenario_shows_them_in_the_raw_database(database_url, clock, servers):
    """The control: the search above can see contact details when they are there."""
    api = played(database_url, clock, servers, None)
    api.services.close()
    missing = [value for value, where in leaks(database_url).items() if not where]
    assert missing == []


def test_the_raw_search_covers_the_sqlite_write_ahead_log_and_the_snapshots(sqlite_url, clock, servers):
    """While the service runs, SQLite's -wal file holds recent pages: the search reads it too;
    and snapshots of customers exist, so the snapshot store was searched with something in it."""
    api = played(sqlite_url, clock, servers, KEY)
    try:
        assert [where for where, _ in raw_database(sqlite_url)][:2] == ["collections.db", "collections.db-wal"]
        assert api.services.app.snapshots is not None
        assert list(api.services.app.snapshots.get(api.services.app.get_customer("C-PII-1").id))
    finally:
        api.services.close()
