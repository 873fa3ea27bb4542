"""PII never written to logs (issue 5, confidentiality): a whole scenario (customers with
known contact details, contacts recorded with notes that quote them, messages rendered
and sent to servers that refuse them quoting the address back, a request refused for
bad input) runs with every logger at DEBUG, SQLAlchemy's and the HTTP client's included;
no contact detail appears in any log record, nor on stdout/stderr. Without the cipher
key, the harder case: the read models hold the contact details in clear."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from collections_es import logs

from ..conftest import make_services
from . import pii_scenario as scenario
from .conftest import Api

# The test's own SMTP server (aiosmtpd) logs the SMTP dialogue it receives: it stands for
# the remote mail server, which is told the address by design. Everything else is ours.
REMOTE_PARTY_LOGGERS = ("mail.log",)
LOUD = ("", "collections_es", "projections", "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "httpx",
        "httpcore", "psycopg", "psycopg.pool", "eventsourcing", "uvicorn", "uvicorn.error", "uvicorn.access",
        "fastapi", "starlette", "smtplib")


@pytest.fixture
def everything_at_debug() -> Iterator[list[logging.LogRecord]]:
    """Every record of every logger at DEBUG (a handler on the root logger; levels restored after)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not record.name.startswith(REMOTE_PARTY_LOGGERS):
                records.append(record)

    handler = Keep(level=logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in LOUD}
    root = logging.getLogger()
    root.addHandler(handler)
    for name in LOUD:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def text_of(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text + " " + repr(record.args)


def test_no_contact_detail_reaches_a_log_or_the_console(database_url, clock, everything_at_debug, capfd) -> None:
    with scenario.RefusingMailServer() as mail, scenario.FailingGateway() as gateway:
        services = make_services(database_url, clock, **scenario.transports(mail, gateway))
        try:
            api = Api(services)
            scenario.run(api)
            # Failures again, later: retries of every message, and a stale one expired.
            services.clock.at = services.clock.now().replace(hour=6)
            assert services.notifier.run_once()
            # A refused request that carried contact details (422 answers with the field, logs nothing).
            bad = scenario.CUSTOMERS[0] | {"customer_id": "C-PII-8", "contacts": {"email": "li.na@pii-one.example",
                                                                                 "phone": "not a phone 13900001111"}}
            assert api.as_("supervisor").post("/customers", json=bad).status_code == 422
            for who in ("collector", "auditor"):
                assert api.as_(who).get("/customers/C-PII-1/contacts-log").status_code == 200
            services.projections.rebuild(["contacts_log"])
        finally:
            services.close()
        assert mail.refused and gateway.received  # the servers were really talked to, and refused

    records = everything_at_debug
    assert any(r.name.startswith("collections_es.application.notifier") for r in records)  # failures were logged
    assert any(r.name.startswith(("sqlalchemy", "httpx", "httpcore")) for r in records)  # the libraries too
    logged = "\n".join(text_of(r) for r in records)
    console = "".join(capfd.readouterr())
    leaks = {value: where for value in scenario.pii_strings()
             if (where := [name for name, blob in (("log", logged), ("console", console)) if value in blob])}
    assert leaks == {}


class TracedApi(Api):
    """The API with an X-Correlation-ID of the test's own on every request, remembered in order."""

    def __init__(self, services) -> None:  # noqa: ANN001
        super().__init__(services)
        self.sent: list[str] = []

    def headers(self, who: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        self.sent.append(f"test-{len(self.sent) + 1:04d}")
        return {**super().headers(who, extra), "X-Correlation-ID": self.sent[-1]}


def test_log_lines_are_json_each_with_its_requests_correlation_id_and_no_contact_detail(
    database_url, clock, everything_at_debug
) -> None:
    """The one log configuration (collections_es.logs, JSON lines) over the same scenario, every
    logger at DEBUG: every line parses as JSON; each request's line carries the id it was sent with,
    every line written while serving a request carries one of those ids, a scheduler tick's lines its
    run's id; no contact detail of the scenario in any line."""
    stream = io.StringIO()
    handler = logs.configure("DEBUG", "json", stream)
    try:
        with scenario.RefusingMailServer() as mail, scenario.FailingGateway() as gateway:
            services = make_services(database_url, clock, **scenario.transports(mail, gateway))
            try:
                api = TracedApi(services)
                scenario.run(api)
                bad = scenario.CUSTOMERS[0] | {"customer_id": "C-PII-8", "contacts": {"email": "li.na@pii-one.example",
                                                                                     "phone": "not a phone 13900001111"}}
                assert api.as_("supervisor").post("/customers", json=bad).status_code == 422
                for who in ("collector", "auditor"):
                    assert api.as_(who).get("/customers/C-PII-1/contacts-log").status_code == 200
                services.clock.at = services.clock.now().replace(month=5)
                assert services.scheduler.tick()  # timers due: fired in one run
            finally:
                services.close()
    finally:
        logs.unconfigure(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
    assert {"event", "level", "logger", "timestamp"} <= set(lines[0])
    requests = [line for line in lines if line["event"] == "request" and line["logger"] == "collections_es.http"]
    assert [line["correlation_id"] for line in requests] == api.sent
    assert all({"method", "path", "status", "duration_ms"} <= set(line) for line in requests)
    commands = [line for line in lines if line["event"] == "command"]
    assert commands and all(line["correlation_id"] in api.sent for line in commands if "scheduler_run" not in line)
    assert {"command", "outcome", "duration_ms"} <= set(commands[0])
    ticks = [line for line in lines if line.get("scheduler_run")]
    assert any(line["event"] == "scheduler tick" for line in ticks)
    assert len({line["scheduler_run"] for line in ticks}) == 1 and all("correlation_id" not in line for line in ticks)
    assert any(line["logger"].startswith("collections_es.application.notifier") for line in lines)
    assert any(line["logger"].startswith("sqlalchemy") for line in lines)
    text = stream.getvalue()
    assert [value for value in scenario.pii_strings() if value in text or json.dumps(value)[1:-1] in text] == []
