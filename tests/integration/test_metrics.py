"""GET /metrics (issue 14, ADR 0047): Prometheus text read back with prometheus-client's own
parser — commands by name and outcome with a latency histogram, lag per read model, timers
due, the outbox by status; a registry per app; public; no personal data."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice


def scrape(api: Api) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Family name → {(sample name, sorted labels): value}."""
    response = api.client.get("/metrics")  # no credentials: public, as /healthz
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(response.text)
    }


def test_metrics_count_commands_by_name_and_outcome_with_latency_and_read_lag_timers_and_outbox(api):
    ok = api.as_("supervisor").post("/customers", json=CUSTOMER)
    assert ok.status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-M-1")).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-M-2")).status_code == 201
    api.services.clock.at = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)
    assert api.as_("service").post("/receivables/INV-M-1/send-reminder", json={"channel": "email"}).status_code == 200
    # Not allowed in this state (reminded, not due), then refused by a rule (a payment over the balance).
    assert api.as_("service").post("/receivables/INV-M-1/escalate", json={"reason": "x"}).status_code == 409
    too_much = {"amount": "99999.00", "method": "bank_transfer", "paid_on": "2026-03-25", "reference": "P-1"}
    assert api.as_("service").post("/receivables/INV-M-1/record-payment", json=too_much).status_code == 422
    api.services.read_models(*api.services.projections.projections)
    api.services.clock.at = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)  # timers due by now, not fired

    metrics = scrape(api)
    commands = metrics["collections_commands"]
    count = {dict(labels)["command"] + ":" + dict(labels)["outcome"]: v
             for (name, labels), v in commands.items() if name == "collections_commands_total"}
    assert count["issue:ok"] == 2 and count["register_customer:ok"] == 1 and count["send_reminder:ok"] == 1
    assert count["escalate:not_allowed"] == 1 and count["record_payment:refused"] == 1
    latency = metrics["collections_command_duration_seconds"]
    assert latency[("collections_command_duration_seconds_count", (("command", "issue"),))] == 2
    assert any(name == "collections_command_duration_seconds_bucket" for name, _ in latency)
    lag = {dict(labels)["projection"]: v for (_, labels), v in metrics["collections_projection_lag_events"].items()}
    assert set(lag) == set(api.services.projections.projections) and set(lag.values()) == {0}
    assert metrics["collections_timers_due"][("collections_timers_due", ())] >= 1
    outbox = {dict(labels)["status"]: v for (_, labels), v in metrics["collections_outbox_messages"].items()}
    assert outbox["pending"] == 1 and outbox["failed"] == 0
    webhooks = {dict(labels)["status"]: v for (_, labels), v in metrics["collections_webhook_deliveries"].items()}
    assert webhooks == {"pending": 0, "sending": 0, "delivered": 0, "failed": 0, "cancelled": 0}


def test_each_app_reads_its_services_registry_and_webhook_deliveries_are_counted_by_status(database_url, clock):
    services = make_services(database_url, clock, COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE="true")
    try:
        api, other = Api(services), Api(services)  # two apps over the same services: the same counters
        assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        assert scrape(other)["collections_commands"] == scrape(api)["collections_commands"]
        hook = {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}
        assert api.as_("supervisor").post("/webhooks", json=hook).status_code == 201
        assert api.as_("service").post("/receivables", json=invoice("INV-M-4")).status_code == 201
        services.read_models(*services.projections.projections)
        webhooks = scrape(api)["collections_webhook_deliveries"]
        counts = {dict(labels)["status"]: v for (_, labels), v in webhooks.items()}
        assert counts["pending"] >= 1 and counts["delivered"] == 0
    finally:
        services.close()


def test_metrics_carry_no_personal_data_nor_ids(api):
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-M-3")).status_code == 201
    text = api.client.get("/metrics").text
    for value in (*CUSTOMER["contacts"].values(), CUSTOMER["customer_id"], CUSTOMER["name"], "INV-M-3"):
        assert value not in text


def test_two_service_instances_never_share_counters(clock, tmp_path):
    one = make_services(f"sqlite:///{tmp_path}/one.db", clock)
    two = make_services(f"sqlite:///{tmp_path}/two.db", clock)
    try:
        first, second = Api(one), Api(two)
        assert first.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
        assert "collections_commands_total" not in second.client.get("/metrics").text.replace(
            "# HELP collections_commands_total", "").replace("# TYPE collections_commands_total", "")
        assert 'collections_commands_total{command="register_customer",outcome="ok"} 1.0' in first.client.get("/metrics").text
    finally:
        one.close()
        two.close()
