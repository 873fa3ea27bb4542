"""`collections-es rebuild` and `collections-es project` against a real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from collections_es.cli import app
from collections_es.config import get_settings
from projections.base import metadata

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice


@pytest.fixture
def cli(database_url, monkeypatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def read_models(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(map(str, row)) for row in conn.execute(sa.select(t)))
            for t in metadata.sorted_tables
            if t.name.startswith("rm_")
        }


def test_rebuild_replays_the_log_into_every_read_model_and_reports_its_rate(database_url, cli):
    from collections_es.application.clock import FixedClock

    services = make_services(database_url, FixedClock(START))
    try:
        api = Api(services)
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        for i in range(5):
            assert api.as_("service").post("/receivables", json=invoice(f"INV-CLI-{i}")).status_code == 201
        body = {"amount": "100.00", "method": "cash", "paid_on": "2026-03-02", "reference": "R-1"}
        assert api.as_("service").post("/receivables/INV-CLI-0/record-payment", json=body).status_code == 200
        services.projections.catch_up()
        live = read_models(services.engine)
        assert all(live[name] for name in ("rm_receivables", "rm_aging_totals", "rm_worklist", "rm_kpi_facts"))

        result = cli.invoke(app, ["rebuild"])
        assert result.exit_code == 0, result.output
        everything = ", ".join(services.projections.projections)
        assert f"rebuilt {everything}: " in result.output and "notifications in" in result.output
        assert read_models(services.engine) == live
        assert set(services.projections.lag().values()) == {0}

        one = cli.invoke(app, ["rebuild", "aging", "--batch-size", "2"])
        assert one.exit_code == 0 and "rebuilt aging: " in one.output
        assert read_models(services.engine) == live
    finally:
        services.close()


def test_an_unknown_projection_name_is_refused_naming_the_known_ones(database_url, cli):
    for command in (["rebuild", "agin"], ["project", "--once", "agin"]):
        result = cli.invoke(app, command)
        assert result.exit_code == 2
        assert "unknown projection(s) agin" in result.output and "aging" in result.output


def test_project_once_catches_every_projection_up(database_url, cli):
    from collections_es.application.clock import FixedClock

    services = make_services(database_url, FixedClock(START))
    try:
        api = Api(services)
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        assert api.as_("service").post("/receivables", json=invoice("INV-ONCE")).status_code == 201
        assert max(services.projections.lag().values()) > 0
        result = cli.invoke(app, ["project", "--once"])
        assert result.exit_code == 0, result.output
        assert set(services.projections.lag().values()) == {0}
    finally:
        services.close()
