"""PII never written to logs (issue 5, confidentiality): a whole scenario (customers with
known contact details, contacts recorded with notes that quote them, messages rendered
and sent to servers that refuse them quoting the address back, a request refused for
bad input) runs with every logger at DEBUG, SQLAlchemy's and the HTTP client's included;
no contact detail appears in any log record, nor on stdout/stderr. Without the cipher
key, the harder case: the read models hold the contact details in clear."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

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
