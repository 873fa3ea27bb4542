"""500s and leaks found with hostile input (issue 16, "Staying up"): instants far in the
future, the sandbox clock moved to the year 9999, a payment reference holding a phone
number, a collector asking for another collector's worklist, a 405 naming one method of
several. Each test is the one that would have caught it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from collections_es.application.clock import ClockError, SandboxClock

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice

PHONE = "13912345678"  # not the customer's number on file: found by its shape


def _sandbox(url: str) -> Api:
    services = make_services(url, SandboxClock(START), COLLECTIONS_CLOCK="sandbox")
    api = Api(services)
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-1")).status_code == 201
    return api


@pytest.fixture
def sandbox_api(sqlite_url: str) -> Iterator[Api]:
    """One receivable, on a sandbox clock, for tests that change things."""
    api = _sandbox(sqlite_url)
    yield api
    api.services.close()


@pytest.fixture(scope="module")
def reads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The same, shared by the tests that only read (or are refused)."""
    api = _sandbox(f"sqlite:///{tmp_path_factory.mktemp('reads')}/collections.db")
    yield api
    api.services.close()


def test_a_receivable_as_of_an_instant_outside_1970_to_2199_is_422_naming_as_of(reads: Api) -> None:
    for instant in ("9999-12-31T16:00:00Z", "2200-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2199-12-31T23:59:59-08:00"):
        response = reads.as_("auditor").get("/receivables/INV-1", params={"as_of": instant})
        assert response.status_code == 422, (instant, response.text)
        assert response.json()["field"] == "as_of"
        assert "2199-12-31" in response.json()["detail"]
    last = reads.as_("auditor").get("/receivables/INV-1", params={"as_of": "2199-12-31T23:59:59Z"})
    assert last.status_code == 200, last.text


def test_instants_in_bodies_and_queries_are_bounded_like_dates(reads: Api) -> None:
    check = reads.as_("collector").get(
        "/receivables/INV-1/contact-check", params={"channel": "phone", "at": "9999-12-31T16:00:00Z"}
    )
    assert check.status_code == 422 and check.json()["field"] == "at"
    export = reads.as_("auditor").get("/audit/export", params={"to": "9999-12-31T23:00:00Z"})
    assert export.status_code == 422 and export.json()["field"] == "to"


def test_the_sandbox_clock_refuses_the_year_9999_and_everything_keeps_answering(sandbox_api: Api) -> None:
    supervisor = sandbox_api.as_("supervisor")
    moved = supervisor.post("/sandbox/clock/advance", json={"to": "9999-12-31T23:59:59Z"})
    assert moved.status_code == 422 and moved.json()["field"] == "to"
    assert supervisor.get("/sandbox/clock").json()["now"] == "2026-03-02T01:00:00Z"  # not moved
    with pytest.raises(ClockError):  # the console and tools move the clock directly
        sandbox_api.services.sandbox.advance(START.replace(year=2200))
    # As far as the bound allows: every view and the tick still answer.
    assert supervisor.post("/sandbox/clock/advance", json={"to": "2199-12-31T23:59:59Z"}).status_code == 200
    for path in ("/worklist", "/receivables", "/receivables/INV-1", "/receivables/INV-1/history",
                 "/receivables/INV-1/letters/dunning", "/reports/aging", "/notifications"):
        assert supervisor.get(path).status_code == 200, path
    assert supervisor.post("/admin/tick").status_code == 200
    paid = sandbox_api.as_("collector").post(
        "/receivables/INV-1/record-payment",
        json={"amount": "1.00", "method": "bank_transfer", "paid_on": "2199-12-31", "reference": "R-2199"},
    )
    assert paid.status_code == 200, paid.text


def _history_texts(api: Api, who: str) -> list[str]:
    history = api.as_(who).get("/receivables/INV-1/history")
    assert history.status_code == 200
    return [json.dumps(entry["data"], ensure_ascii=False) for entry in history.json()]


def test_a_payment_reference_holding_a_phone_number_is_masked_for_auditors_and_sales(sandbox_api: Api) -> None:
    reference = f"转账 {PHONE} 王先生"
    long_number = "20260302123456789012"  # a bank's transaction number: no phone number has 20 digits
    for number, ref in (("1.00", reference), ("2.00", long_number)):
        paid = sandbox_api.as_("collector").post(
            "/receivables/INV-1/record-payment",
            json={"amount": number, "method": "bank_transfer", "paid_on": "2026-03-02", "reference": ref},
        )
        assert paid.status_code == 200, paid.text
    for who in ("auditor", "sales"):
        texts = " ".join(_history_texts(sandbox_api, who))
        assert PHONE not in texts and "139****5678" in texts, who
        assert long_number in texts  # kept whole
    jsonl = sandbox_api.as_("auditor").get("/audit/export", params={"format": "jsonl"}).text
    rows = [json.loads(line) for line in jsonl.splitlines()]
    references = [row["data"]["reference"] for row in rows if row["type"] == "PaymentRecorded"]
    assert references == ["转账 139****5678 王先生", long_number]
    exported_csv = sandbox_api.as_("auditor").get("/audit/export", params={"format": "csv"}).text
    assert PHONE not in exported_csv
    assert any("139****5678" in row["data"] for row in csv.DictReader(io.StringIO(exported_csv)))
    # Those with need see it whole.
    assert PHONE in " ".join(_history_texts(sandbox_api, "collector"))
    assert PHONE in sandbox_api.as_("supervisor").get("/audit/export").text


def test_a_collector_cannot_read_another_collectors_worklist(reads: Api) -> None:
    collector = reads.as_("collector")  # collector-1
    other = collector.get("/worklist", params={"collector": "collector-2"})
    assert other.status_code == 422 and other.json()["field"] == "collector"
    assert collector.get("/worklist", params={"collector": "collector-1"}).json()["collector"] == "collector-1"
    assert collector.get("/worklist").json()["collector"] == "collector-1"
    assert reads.as_("supervisor").get("/worklist", params={"collector": "collector-2"}).status_code == 200


def test_a_405_allow_header_lists_every_method_of_the_path(reads: Api) -> None:
    for method, path, allow in (
        ("PUT", "/receivables", "GET, POST"),
        ("DELETE", "/receivables/INV-1", "GET"),
        ("DELETE", "/customers/C-SH-1", "GET, PATCH"),
        ("POST", "/policy", "GET, PUT"),
        ("GET", "/receivables/INV-1/record-payment", "POST"),
    ):
        response = reads.client.request(method, path, headers=reads.headers("supervisor"))
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allow, (method, path)
        assert response.headers["content-type"].startswith("application/problem+json")
