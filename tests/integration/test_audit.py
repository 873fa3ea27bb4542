"""The audit: verify finds every kind of tampering done straight in the database,
and the export streams every event, page by page, as JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.cryptography import AESCipher
from typer.testing import CliRunner

from collections_es.adapters.persistence import Database
from collections_es.adapters.policy_file import load_policy
from collections_es.application import audit
from projections.receivables import ProjectedVersions
from collections_es.application.clock import FixedClock
from collections_es.application.service import Collections, Request
from collections_es.cli import app as cli_app
from collections_es.config import get_settings
from collections_es.domain.trail import Actor

from ..conftest import PG_URL, START, make_services, require_postgres
from .conftest import CUSTOMER, Api, invoice

LATER = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def pay(amount: str, reference: str) -> dict[str, str]:
    return {"amount": amount, "method": "bank_transfer", "paid_on": "2026-03-02", "reference": reference}


def tell_story(api: Api) -> dict[str, str]:
    """The policy book (2 events), a customer (1), receivable A with 4 events
    (issued, paid 100.00, reassigned, paid 200.00 later) and receivable B (1): 8 chained events."""
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    a = ok(api.as_("service").post("/receivables", json=invoice("INV-A")), 201)["id"]
    b = ok(api.as_("service").post("/receivables", json=invoice("INV-B", amount="80.00")), 201)["id"]
    ok(api.as_("service").post("/receivables/INV-A/record-payment", json=pay("100.00", "P-1")))
    ok(api.as_("supervisor").post("/receivables/INV-A/assign-collector", json={"collector": "collector-2"}))
    api.services.clock.at = LATER
    ok(api.as_("service").post("/receivables/INV-A/record-payment", json=pay("200.00", "P-2")))
    return {"A": a, "B": b}


@pytest.fixture
def story(api: Api) -> dict[str, str]:
    """The story in a database of this test's own, to tamper with."""
    return tell_story(api)


class Shared:
    def __init__(self, api: Api, story: dict[str, str], url: str) -> None:
        self.api, self.story, self.url = api, story, url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request, tmp_path_factory) -> Iterator[Shared]:
    """One untouched story per database for the tests that only read (faster than one each)."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('audit')}/collections.db"
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        url = f"{PG_URL}?schema={schema}"
    services = make_services(url, FixedClock(START))
    api = Api(services)
    yield Shared(api, tell_story(api), url)
    services.close()
    if schema is not None:
        engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def cli(monkeypatch):
    """`cli(url, *args)` runs the command line with DATABASE_URL=url."""

    def invoke(url: str, *args: str):
        monkeypatch.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(cli_app, list(args))
        finally:
            get_settings.cache_clear()

    return invoke


# ---- tampering, straight in the stored-events table ------------------------------------


class Store:
    """SQL on the event store's own table, the way someone with database access would."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.table = "stored_events" if self.sqlite else "collectionses_events"

    def _key(self, rid: str) -> Any:
        return uuid.UUID(rid).hex if self.sqlite else uuid.UUID(rid)

    def row(self, rid: str, version: int) -> tuple[str, bytes]:
        with self.engine.connect() as conn:
            topic, state = conn.execute(
                sa.text(f"SELECT topic, state FROM {self.table} WHERE originator_id = :id AND originator_version = :v"),
                {"id": self._key(rid), "v": version},
            ).one()
        return topic, bytes(state)

    def write(self, rid: str, version: int, *, state: bytes, topic: str | None = None) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.text(
                    f"UPDATE {self.table} SET state = :state, topic = COALESCE(:topic, topic) "
                    "WHERE originator_id = :id AND originator_version = :v"
                ),
                {"state": state, "topic": topic, "id": self._key(rid), "v": version},
            )
            assert done.rowcount == 1

    def delete(self, rid: str, version: int) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.text(f"DELETE FROM {self.table} WHERE originator_id = :id AND originator_version = :v"),
                {"id": self._key(rid), "v": version},
            )
            assert done.rowcount == 1


def verified(api: Api, who: str = "auditor") -> dict[str, Any]:
    return ok(api.as_(who).get("/audit/verify"))


def test_a_clean_history_verifies_with_every_chained_event_checked(shared):
    api = shared.api
    report = verified(api)
    assert report["ok"] is True and report["first_break"] is None and report["breaks"] == []
    assert (report["checked_events"], report["checked_aggregates"], report["break_count"]) == (8, 4, 0)
    assert verified(api, "supervisor")["ok"] is True
    assert api.as_("collector").get("/audit/verify").status_code == 403


def test_the_history_of_a_receivable_lists_every_event_with_its_trail_and_links(shared):
    history = ok(shared.api.as_("auditor").get("/receivables/INV-A/history"))
    assert [e["version"] for e in history] == [1, 2, 3, 4]
    assert all(
        {"version", "type", "occurred_at", "actor", "role", "reason", "data", "state_after", "hash", "prev_hash"} <= set(e)
        for e in history
    )
    assert [e["prev_hash"] for e in history[1:]] == [e["hash"] for e in history[:-1]]
    assert history[0]["prev_hash"] == "0" * 64


def test_changing_one_digit_of_a_stored_amount_is_an_edited_break_at_that_event(api, story):
    store = Store(api.services.engine)
    _, state = store.row(story["A"], 2)
    assert b'"100.00"' in state
    store.write(story["A"], 2, state=state.replace(b'"100.00"', b'"900.00"'))

    report = verified(api)
    assert report["ok"] is False and report["break_count"] == 1
    first = report["first_break"]
    assert (first["kind"], first["receivable_id"], first["aggregate_type"], first["version"]) == (
        "edited", story["A"], "Receivable", 2,
    )
    assert first["notification_id"] > 0 and "hash" in first["detail"]


def test_a_stored_event_that_no_longer_parses_is_an_undecodable_break_and_never_a_500(api, story):
    store = Store(api.services.engine)
    _, state = store.row(story["A"], 3)
    store.write(story["A"], 3, state=b"#" + state[1:])

    report = verified(api)
    assert report["ok"] is False and report["checked_events"] == 8
    first = report["first_break"]
    assert (first["kind"], first["receivable_id"], first["version"]) == ("undecodable", story["A"], 3)
    exported = api.as_("auditor").get("/audit/export")
    assert exported.status_code == 200
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert len(rows) == 8
    assert [(r["aggregate_id"], r["version"]) for r in rows if r["error"]] == [(story["A"], 3)]


def test_reading_a_receivable_whose_stored_event_is_damaged_is_a_problem_pointing_to_verify(api, story, database_url):
    """A process that reads the damaged event is told so. (A process that replayed the receivable
    before the damage serves it from its aggregate cache, ADR 0064: verify and the signed
    checkpoints are what find a change made behind the service's back, ADR 0061.)"""
    store = Store(api.services.engine)
    _, state = store.row(story["A"], 2)
    store.write(story["A"], 2, state=b"#" + state[1:])
    fresh = make_services(database_url, FixedClock(START))  # another process: nothing cached
    reader = Api(fresh)
    for path in ("/receivables/INV-A", "/receivables/INV-A/history"):
        response = reader.as_("auditor").get(path)
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("/problems/damaged-event") and "/audit/verify" in response.json()["detail"]
    fresh.close()


def test_deleting_a_middle_event_is_a_deleted_break_for_the_api_and_the_command_line(api, story, cli):
    url = api.services.settings.database_url
    result = cli(url, "verify")
    assert result.exit_code == 0, result.output
    assert "checked 8 events of 4 aggregates" in result.output and "ok:" in result.output

    Store(api.services.engine).delete(story["A"], 2)

    report = verified(api)
    assert report["ok"] is False and report["break_count"] == 1
    first = report["first_break"]
    assert (first["kind"], first["receivable_id"], first["version"]) == ("deleted", story["A"], 2)
    result = cli(url, "verify")
    assert result.exit_code == 1
    assert f"deleted at Receivable {story['A']} version 2" in result.output


def test_deleting_the_last_events_of_receivables_is_seen_through_the_read_model(api, story):
    api.services.projections.catch_up()
    store = Store(api.services.engine)
    store.delete(story["A"], 4)
    store.delete(story["B"], 1)  # every event of B

    report = verified(api)
    assert report["ok"] is False and report["read_model_compared"] is True
    assert sorted((b["kind"], b["receivable_id"], b["version"]) for b in report["breaks"]) == sorted(
        [("deleted", story["A"], 4), ("deleted", story["B"], 1)]
    )
    by_id = {b["receivable_id"]: b["detail"] for b in report["breaks"]}
    assert "read model saw version 4" in by_id[story["A"]] and "holds no event" in by_id[story["B"]]


def test_swapping_the_stored_state_of_two_events_is_a_reordered_break(api, story):
    store = Store(api.services.engine)
    _, second = store.row(story["A"], 2)
    _, fourth = store.row(story["A"], 4)
    store.write(story["A"], 2, state=fourth)
    store.write(story["A"], 4, state=second)

    report = verified(api)
    assert report["ok"] is False
    assert [(b["kind"], b["version"]) for b in report["breaks"]] == [("reordered", 2), ("reordered", 4)]
    assert "version 4 is stored at version 2" in report["first_break"]["detail"]


def test_swapping_two_whole_events_of_different_types_is_a_reordered_break(api, story):
    store = Store(api.services.engine)
    second, third = store.row(story["A"], 2), store.row(story["A"], 3)
    store.write(story["A"], 2, topic=third[0], state=third[1])
    store.write(story["A"], 3, topic=second[0], state=second[1])

    breaks = verified(api)["breaks"]
    assert [(b["kind"], b["version"]) for b in breaks] == [("reordered", 2), ("reordered", 3)]


def test_an_edited_event_that_was_re_hashed_breaks_the_link_from_the_next_event(api, story):
    from collections_es.domain.trail import stored_event_hash

    services = api.services
    store = Store(services.engine)
    topic, _ = store.row(story["A"], 2)
    forged = next(e for e in services.app.events.get(uuid.UUID(story["A"])) if e.originator_version == 2)
    object.__setattr__(forged, "amount", Decimal("900.00"))
    object.__setattr__(forged, "hash", stored_event_hash(forged))
    store.write(story["A"], 2, state=services.app.mapper.to_stored_event(forged).state, topic=topic)

    report = verified(api)
    assert report["break_count"] == 1
    first = report["first_break"]
    assert (first["kind"], first["receivable_id"], first["version"]) == ("broken_link", story["A"], 3)


# ---- a store that no longer decrypts ------------------------------------------------


def encrypted_store(database_url: str, key: str) -> Collections:
    database = Database.parse(database_url)
    database.make_engine().dispose()  # creates the test's PostgreSQL schema
    env = database.event_store_env() | {"CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher", "CIPHER_KEY": key}
    return Collections(env, clock=FixedClock(START))


def test_verifying_an_encrypted_store_with_another_key_reports_undecodable_events(database_url, cli):
    key = AESCipher.create_key(32)
    writer = encrypted_store(database_url, key)
    try:
        writer.install_policy(load_policy(None))
        writer.register_customer(Request(Actor("supervisor-1", "supervisor")), **CUSTOMER)
        good = audit.verify(writer)
    finally:
        writer.close()
    assert (good.ok, good.checked_events) == (True, 3)

    reader = encrypted_store(database_url, AESCipher.create_key(32))
    try:
        report = audit.verify(reader)
    finally:
        reader.close()
    assert report.ok is False and report.checked_events == 3 and report.break_count == 3
    assert {b.kind for b in report.breaks} == {"undecodable"}
    assert "cipher" in report.breaks[0].detail.lower()

    result = cli(database_url, "verify")  # no key at all: the bytes are not JSON
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "undecodable at PolicyBook" in result.output


# ---- the command line ----------------------------------------------------------------


def test_the_export_command_writes_the_events_as_json_lines_and_as_csv(shared, cli, tmp_path):
    story = shared.story
    history = ok(shared.api.as_("auditor").get("/receivables/INV-A/history"))

    jsonl = tmp_path / "events.jsonl"
    result = cli(shared.url, "export", "--format", "jsonl", "--output", str(jsonl))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8
    mine = [r for r in rows if r["aggregate_id"] == story["A"]]
    assert [(r["version"], r["type"], r["hash"], r["prev_hash"], r["state_after"], r["data"]) for r in mine] == [
        (e["version"], e["type"], e["hash"], e["prev_hash"], e["state_after"], e["data"]) for e in history
    ]

    out = tmp_path / "events.csv"
    result = cli(shared.url, "export", "--format", "csv", "--output", str(out), "--from", "2026-03-05T00:00:00Z")
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [(r["aggregate_id"], r["version"], r["type"]) for r in table] == [(story["A"], "4", "PaymentRecorded")]
    assert json.loads(table[0]["data"])["amount"] == "200.00" and table[0]["hash"] == history[3]["hash"]

    result = cli(shared.url, "export", "--output", "-", "--to", "2026-03-02T01:00:01Z")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 7


def test_the_export_command_refuses_a_bad_instant_or_format_with_a_message(cli, tmp_path):
    url = f"sqlite:///{tmp_path}/never.db"
    for args, named in (
        (("--from", "yesterday"), "--from"),
        (("--to", "2026-03-05T00:00:00"), "--to"),
        (("--from", "2026-03-06T00:00:00Z", "--to", "2026-03-05T00:00:00Z"), "--from"),
        (("--format", "xml"), "--format"),
    ):
        result = cli(url, "export", "--output", str(tmp_path / "x"), *args)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert named in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


# ---- the export endpoint ----------------------------------------------------------------


def exported(response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_the_export_endpoint_streams_every_event_as_json_lines_with_decimals_as_strings(shared):
    response = shared.api.as_("supervisor").get("/audit/export", params={"format": "jsonl"})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"].startswith("attachment")
    rows = exported(response)
    assert list(rows[0]) == list(audit.EXPORT_COLUMNS)
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert [r["type"] for r in rows] == [
        "Opened", "Adopted", "Registered", "Issued", "Issued", "PaymentRecorded", "CollectorAssigned", "PaymentRecorded",
    ]
    payment = rows[5]
    assert payment["data"] == {"amount": "100.00", "method": "bank_transfer", "paid_on": "2026-03-02", "reference": "P-1", "allocation": None}
    assert (payment["actor"], payment["role"], payment["state_after"]) == ("service-1", "service", "issued")
    assert (payment["aggregate_type"], payment["occurred_at"]) == ("Receivable", "2026-03-02T01:00:00Z")
    assert rows[2]["data"]["contacts"]["phone"] == "13812345678"  # a supervisor sees contact details

    masked = exported(shared.api.as_("auditor").get("/audit/export"))
    assert masked[2]["data"]["contacts"]["phone"] == "138****5678"  # an auditor does not


def test_the_export_endpoint_gives_csv_with_a_fixed_header_and_data_as_json(shared):
    response = shared.api.as_("auditor").get("/audit/export", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="collections-es-events.csv"' in response.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == list(audit.EXPORT_COLUMNS)
    rows = [dict(zip(table[0], r)) for r in table[1:]]
    assert len(rows) == 8
    issued = [r for r in rows if r["type"] == "Issued"]
    assert [json.loads(r["data"])["amount"] for r in issued] == ["1200.50", "80.00"]
    assert all(r["override"] == "" and r["error"] == "" for r in rows)


def test_the_export_endpoint_selects_events_by_the_instant_they_occurred(shared):
    def types(**params: str) -> list[tuple[str, int]]:
        return [(r["type"], r["version"]) for r in exported(shared.api.as_("auditor").get("/audit/export", params=params))]

    assert types(**{"from": "2026-03-05T02:00:00Z"}) == [("PaymentRecorded", 4)]
    assert types(**{"from": "2026-03-05T10:00:00+08:00"}) == [("PaymentRecorded", 4)]  # the same instant
    assert len(types(to="2026-03-05T02:00:00Z")) == 7  # `to` is excluded
    assert types(**{"from": "2026-03-06T00:00:00Z", "to": "2026-03-07T00:00:00Z"}) == []


def test_the_export_endpoint_refuses_naive_or_inverted_bounds_with_the_field_named(shared):
    for params, field in (
        ({"from": "2026-03-05T02:00:00"}, "from"),
        ({"to": "2026-03-05T02:00:00"}, "to"),
        ({"from": "2026-03-06T00:00:00Z", "to": "2026-03-05T00:00:00Z"}, "from"),
        ({"from": "not-an-instant"}, "from"),
        ({"format": "xml"}, "format"),
    ):
        response = shared.api.as_("auditor").get("/audit/export", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == field
    assert shared.api.as_("collector").get("/audit/export").status_code == 403
    assert shared.api.as_("sales").get("/audit/export").status_code == 403


# ---- memory stays flat: the log is read in bounded pages ---------------------------------


def test_export_and_verify_read_the_log_in_bounded_pages_whatever_its_length(services, monkeypatch):
    app = services.app
    request = Request(Actor("erp", "service"))
    app.register_customer(request, **CUSTOMER)
    fields = invoice("INV-LONG") | {"amount": Decimal("100000.00"), "issued_on": date(2026, 3, 2), "due_on": date(2026, 4, 1)}
    receivable = app.issue_receivable(request, **fields).resource
    for i in range(300):  # one save of 300 events: quick to write, long to read
        receivable.record_payment(
            app._context(request), amount=Decimal("1.00"), method="cash", paid_on=date(2026, 3, 2), reference=f"R-{i}"
        )
    app.save(receivable)
    total = app.recorder.max_notification_id()
    assert total == 304

    calls: list[int] = []
    real = app.recorder.select_notifications

    def counted(start, limit, *args, **kwargs):
        calls.append(limit)
        return real(start, limit, *args, **kwargs)

    monkeypatch.setattr(app.recorder, "select_notifications", counted)
    rows = audit.export_events(app, page_size=25)
    assert next(rows)["type"] == "Opened" and calls == [25]  # lazy: one page read for the first row
    assert sum(1 for _ in rows) + 1 == 304
    assert calls == [25] * 13  # ceil(304 / 25) pages, never more than 25 events at once

    calls.clear()
    report = audit.verify(app, ProjectedVersions(services.engine), page_size=25)
    assert report.ok and report.checked_events == 304
    assert calls == [25] * 13
