"""`collections-es demo` and `collections_es.demo.build`: a living history through the sandbox clock."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from collections_es import demo
from collections_es.application import audit
from collections_es.application.clock import SandboxClock, SystemClock
from collections_es.cli import app as cli_app
from collections_es.config import get_settings
from collections_es.domain.receivable import PAYMENT_METHODS, Receivable
from projections.compliance import list_findings
from projections.receivables import ProjectedVersions, list_receivables

from ..conftest import make_services


def built(url: str, seed: int = 7):  # noqa: ANN201
    start = demo.start_for(SystemClock().now(), 120)
    services = make_services(url, SandboxClock(start))
    return services, demo.build(services, customers=12, days=120, seed=seed)


def event_types(services) -> Counter[str]:  # noqa: ANN001
    services.projections.catch_up()
    with services.engine.connect() as conn:
        rows = list_receivables(conn, limit=1000)
    found: Counter[str] = Counter()
    for row in rows:
        for event in services.app.events.get(uuid.UUID(row["id"])):
            found[type(event).__name__] += 1
            if isinstance(event, Receivable.PaymentRecorded):
                found[f"method:{event.method}"] += 1
    return found


def test_the_demo_on_an_empty_database_builds_a_living_history_whose_audit_verifies(sqlite_url):
    services, result = built(sqlite_url)
    try:
        assert result.skipped == [], result.skipped
        assert len(result.states) >= 6, result.states
        assert {"settled", "overdue_escalated", "legal", "written_off"} <= set(result.states)
        types = event_types(services)
        assert types["PromiseMade"] and types["PromiseBroken"] and types["PaymentRecorded"]
        assert types["PromiseKept"], "promises kept as well as broken"
        for name in ("DisputeRaised", "DisputeResolved", "InstallmentPlanAgreed", "Escalated", "LegalReferralApproved",
                     "ReferredToLegal", "WriteOffRequested", "WriteOffApproved", "ContactRecorded", "ReminderSent", "FellDue"):
            assert types[name], name
        assert all(types[f"method:{m}"] for m in PAYMENT_METHODS), "payments by every method"
        with services.engine.connect() as conn:
            findings = list_findings(conn, limit=1000, now=services.clock.now())
        assert {f["rule_id"] for f in findings} >= {"contact.outside_window"}, {f["rule_id"] for f in findings}
        report = audit.verify(services.app, ProjectedVersions(services.engine))
        assert report.ok and report.checked_events > 200
        assert services.clock.now() >= result.end and result.end - result.start == timedelta(days=120)
    finally:
        services.close()


def test_the_same_seed_builds_the_same_history(tmp_path):
    first, a = built(f"sqlite:///{tmp_path}/a.db", seed=3)
    second, b = built(f"sqlite:///{tmp_path}/b.db", seed=3)
    try:
        assert (a.states, a.stories, a.commands, a.fired) == (b.states, b.stories, b.commands, b.fired)
        assert event_types(first) == event_types(second)
    finally:
        first.close()
        second.close()


@pytest.fixture
def cli(sqlite_url, monkeypatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_a_second_demo_without_force_refuses_and_with_force_adds_another_history(cli):
    first = cli.invoke(cli_app, ["demo", "--customers", "4", "--days", "60", "--seed", "5"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("demo: 4 customers, ")
    again = cli.invoke(cli_app, ["demo", "--customers", "4", "--days", "60", "--seed", "5"])
    assert again.exit_code == 1
    assert "holds receivables already" in again.output and "--force" in again.output
    forced = cli.invoke(cli_app, ["demo", "--customers", "4", "--days", "60", "--seed", "5", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "demo: 0 customers, " in forced.output, "the customers are there already; new invoices are added"
