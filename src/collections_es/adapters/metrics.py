"""Prometheus metrics through prometheus-client, in a registry of their own (ADR 0047).

One `Metrics` per wired service (so per app: tests with several apps never share
counters, and nothing lands in the library's global registry). Commands are counted
as they run; the rest is read at scrape time:

- `collections_commands_total{command, outcome}` and
  `collections_command_duration_seconds{command}` (a histogram);
- `collections_projection_lag_events{projection}`: notifications each read model is behind;
- `collections_projection_stuck{projection}`: 1 while a read model is stuck on an event it
  failed to apply (ADR 0060), else 0; `collections_projection_failures_total`: failed
  attempts in this process;
- `collections_timers_due`: timers due now and not fired;
- `collections_outbox_messages{status}`: the notification outbox by status;
- `collections_webhook_deliveries{status}`: the webhook outbox by status (left out when
  no source is wired).

Labels are names of commands, read models and statuses only: no ids, no personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Commands take milliseconds to a few seconds (a lost race retried, a slow database).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's metrics and its registry; `exposition()` is the `/metrics` body."""

    def __init__(
        self,
        *,
        lag: Callable[[], Mapping[str, int]],
        timers_due: Callable[[], int],
        outbox: Callable[[], Mapping[str, int]],
        webhooks: Callable[[], Mapping[str, int] | None] = lambda: None,
        stuck: Callable[[], Mapping[str, int]] = lambda: {},
        failures: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "collections_commands", "Commands run, by name and outcome (ok, refused, not_allowed, error)",
            ["command", "outcome"], registry=self.registry,
        )
        self.latency = Histogram(
            "collections_command_duration_seconds", "How long commands take, by name",
            ["command"], buckets=BUCKETS, registry=self.registry,
        )
        self.registry.register(_ReadAtScrape(lag, timers_due, outbox, webhooks))
        self.registry.register(_StuckAtScrape(stuck, failures))

    def observe_command(self, command: str, outcome: str, seconds: float) -> None:
        self.commands.labels(command, outcome).inc()
        self.latency.labels(command).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ReadAtScrape:
    """Gauges read from the runner and the read models when Prometheus scrapes; a source that
    fails (the database is away) is left out of that scrape and logged."""

    def __init__(self, lag, timers_due, outbox, webhooks) -> None:  # noqa: ANN001
        self.lag, self.timers_due, self.outbox, self.webhooks = lag, timers_due, outbox, webhooks

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only

    def collect(self) -> Iterator[Metric]:
        lag = _read("projection lag", self.lag)
        if lag is not None:
            family = GaugeMetricFamily(
                "collections_projection_lag_events", "Notifications each read model is behind the event log",
                labels=["projection"],
            )
            for name, value in sorted(lag.items()):
                family.add_metric([name], value)
            yield family
        due = _read("timers due", self.timers_due)
        if due is not None:
            yield GaugeMetricFamily("collections_timers_due", "Timers due now that have not fired", value=due)
        for name, text, source in (
            ("collections_outbox_messages", "Notification outbox messages by status", self.outbox),
            ("collections_webhook_deliveries", "Webhook deliveries by status", self.webhooks),
        ):
            counts = _read(name, source)
            if counts is None:
                continue
            family = GaugeMetricFamily(name, text, labels=["status"])
            for status, value in sorted(counts.items()):
                family.add_metric([status], value)
            yield family


class _StuckAtScrape:
    """Read models stuck on an event they failed to apply, read when Prometheus scrapes."""

    def __init__(self, stuck: Callable[[], Mapping[str, int]], failures: Callable[[], int]) -> None:
        self.stuck, self.failures = stuck, failures

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stuck = _read("stuck projections", self.stuck)
        if stuck is not None:
            family = GaugeMetricFamily(
                "collections_projection_stuck", "1 while a read model is stuck on an event it failed to apply",
                labels=["projection"],
            )
            for name, value in sorted(stuck.items()):
                family.add_metric([name], value)
            yield family
        failed = _read("projection failures", self.failures)
        if failed is not None:
            yield CounterMetricFamily(
                "collections_projection_failures", "Attempts at an event a read model failed to apply, in this process",
                value=failed,
            )


def _read(what: str, source: Callable[[], object]):  # noqa: ANN202
    try:
        return source()
    except Exception:  # noqa: BLE001 - a scrape never fails for one source
        log.warning("metrics: cannot read %s", what, exc_info=True)
        return None


def status_counts(engine: sa.Engine, table: sa.Table) -> dict[str, int]:
    with engine.execution_options(read_only=True).connect() as conn:
        rows = conn.execute(sa.select(table.c.status, sa.func.count()).group_by(table.c.status))
        return {str(status): int(count) for status, count in rows}


def outbox_counts(engine: sa.Engine, table: sa.Table, statuses: tuple[str, ...]) -> dict[str, int]:
    """An outbox table's rows by status: every status named (0 when none), plus any other found."""
    return dict.fromkeys(statuses, 0) | status_counts(engine, table)
