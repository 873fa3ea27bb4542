"""The composition root: settings in, a wired service out. Tests wire through here too."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from dataclasses import dataclass, field

import sqlalchemy as sa

from projections.aftercare import Aftercare
from projections.aging import Aging
from projections.base import ProjectionRunner
from projections.kpis import Kpis
from projections.compliance import Compliance
from projections.contacts import ContactsLog, read_contacts, recent_contacts
from projections.credit import CreditRecords
from projections.customers import CustomersList
from projections.outbox import Outbox, SqlOutbox, list_messages, messages as outbox_messages
from projections.receivables import ReceivablesList, receivables as receivables_table
from projections.timers import SqlTimerStore, Timers
from projections.webhooks import EVENT_TYPES, SqlDeliveries, WebhookDeliveries
from projections.webhooks import deliveries as webhook_deliveries
from projections.worklist import Worklist

from .adapters.api_keys import ApiKeyStore
from .adapters.checkpoints import CheckpointTaken, SqlCheckpoints
from .adapters.cipher import check_event_store
from .adapters.heartbeat import Heartbeat
from .adapters.leader import creating_tables, leadership
from .adapters.metrics import Metrics, outbox_counts
from .adapters.persistence import Database
from .adapters.policy_file import load_policy
from .adapters.signing import Signer
from .adapters.sms_webhook import SmsWebhookTransport
from .adapters.smtp import SmtpTransport
from .application.access import ROLES
from .application import evidence
from .application.checkpoints import Checkpoints
from .application.clock import Clock, SandboxClock, SystemClock
from .application.notifier import Delivery, NotConfigured, Notifier, RecordDelivery, Transport
from .application.scheduler import Scheduler
from .application.service import Collections, Request
from .application.webhooks import WebhookSender, Webhooks
from .config import Settings
from .domain.calendar import check_timezone
from .domain.lifecycle import CLOSED_STATES
from .domain.compliance import ContactAttempt
from .domain.errors import CollectionsError, RuleViolationError
from .domain.trail import Actor
from .letters import Letters, load_company
from .portal.links import PortalLinks, message_link


@dataclass
class Services:
    settings: Settings
    database: Database
    engine: sa.Engine
    app: Collections
    clock: Clock
    projections: ProjectionRunner
    scheduler: Scheduler
    keys: ApiKeyStore
    letters: Letters
    notifier: Notifier
    webhooks: Webhooks
    metrics: Metrics
    signer: Signer | None = None
    checkpoints: Checkpoints | None = None
    portal: PortalLinks | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    # What this process is (ADR 0062): `embedded` (serve doing everything), `api`, `project`,
    # `scheduler`, `notify`, `deliver`, or `cli` for one-shot commands; `runs` the loops it runs.
    role: str = "cli"
    runs: tuple[str, ...] = ()

    def portal_url(self, customer_id: str, now: datetime) -> str | None:
        """The portal link a letter rendered now carries, under the policy in force (docs/portal.md)."""
        if self.portal is None:
            return None
        return message_link(self.portal, self.settings.public_url, customer_id, now, self.app.policy())

    @property
    def sandbox(self) -> SandboxClock | None:
        return self.clock if isinstance(self.clock, SandboxClock) else None

    def read_models(self, *names: str) -> int:
        """Read-your-writes: the named projections reach the log's head as of now
        (applied here when embedded, awaited when external workers apply them).
        Returns the lag left after `read_wait_seconds` (0 when current)."""
        return self.projections.wait_until_current(
            names, apply=self.settings.projections == "embedded", timeout=self.settings.read_wait_seconds
        )

    def snapshot(self) -> sa.Connection:
        """A read-only connection whose queries all see one state of the read models
        (a report made of several queries never mixes two batches)."""
        options: dict[str, object] = {"read_only": True}
        if self.database.is_postgres:
            options["isolation_level"] = "REPEATABLE READ"
        # SQLite: a deferred BEGIN reads one snapshot until the transaction ends (WAL).
        return self.engine.execution_options(**options).connect()

    def evidence_sources(self) -> evidence.Sources:
        """What an evidence bundle is made of: the store, the letters, the outbox and contact log."""

        def messages(rid: str) -> list[dict]:
            with self.snapshot() as conn:
                return list_messages(conn, receivable_id=rid, limit=1_000_000)

        def contacts(rid: str) -> list[dict]:
            with self.snapshot() as conn:
                return read_contacts(conn, receivable_id=rid, limit=1_000_000)

        return evidence.Sources(self.app, self.letters, messages, contacts)

    def close(self) -> None:
        self.stop.set()
        self.projections.close()
        self.app.close()
        self.engine.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    """The wired services. Processes starting together on an empty database take turns at
    creating its tables (`creating_tables`)."""
    with creating_tables(Database.parse(settings.database_url)):
        return _build(settings, clock=clock)


def _build(settings: Settings, *, clock: Clock | None = None) -> Services:
    try:
        check_timezone(settings.report_timezone)
    except RuleViolationError as exc:
        raise CollectionsError(f"COLLECTIONS_TIMEZONE: {exc}") from None
    database = Database.parse(settings.database_url)
    if clock is None:
        start = settings.sandbox_start or SystemClock().now()
        clock = SandboxClock(start) if settings.clock == "sandbox" else SystemClock()
    policy = load_policy(settings.policy_file)
    engine = database.make_engine(settings.cipher_key, settings.db_pool_size)
    app = Collections(
        database.event_store_env(settings.cipher_key, settings.db_pool_size, settings.aggregate_cache_size),
        clock=clock,
        snapshot_interval=settings.snapshot_interval,
    )
    try:
        # Before anything reads the log: a key that does not fit the database stops us here (ADR 0030).
        check_event_store(app)
    except CollectionsError:
        app.close()
        engine.dispose()
        raise
    adopted = app.install_policy(policy)
    letters = Letters(load_company(settings.company_file), templates_dir=settings.templates_dir, font=settings.pdf_font)
    portal = PortalLinks(engine, settings.portal_secret)

    def portal_url(customer_id: str, now: datetime, policy_version: str) -> str | None:
        """The portal link a message carries under the policy `policy_version` (docs/portal.md)."""
        return message_link(portal, settings.public_url, customer_id, now, app.policy_version(policy_version))

    runner = ProjectionRunner(
        app,
        engine,
        [
            ReceivablesList(),
            Timers(load=lambda rid, version: app.get_receivable(rid, version=version), policy=app.policy_version),
            Aging(),
            Worklist(),
            Kpis(timezone=settings.report_timezone),
            CustomersList(),
            CreditRecords(hold_days=settings.credit_hold_write_off_days),
            ContactsLog(),
            Compliance(),
            Aftercare(),
            Outbox(
                load_receivable=lambda rid, version: app.get_receivable(rid, version=version),
                load_customer_as_of=app.get_customer_as_of,
                earlier_events=lambda rid, version: list(app.events.get(rid, lte=version - 1)),
                letters=letters,
                engine=engine,
                portal_url=portal_url,
            ),
            WebhookDeliveries(),
        ],
        scope=database.schema or "",
    )
    scheduler = Scheduler(app, SqlTimerStore(engine), catch_up=lambda: runner.catch_up(["timers"]))
    keys = ApiKeyStore(engine, ROLES, settings.api_keys_file, cache_seconds=settings.api_key_cache_seconds)
    notifier = Notifier(
        SqlOutbox(engine),
        clock,
        transports(settings),
        catch_up=lambda: runner.catch_up(["outbox"]),
        max_attempts=settings.notify_max_attempts,
        backoff_seconds=settings.notify_backoff_seconds,
        backoff_max_seconds=settings.notify_backoff_max_seconds,
        max_age=timedelta(hours=settings.notify_max_age_hours),
        record_delivery=delivery_recorder(app),
        is_held=lambda rid, at: app.get_receivable(uuid.UUID(rid)).is_held(at),
    )
    deliveries = SqlDeliveries(engine)

    def deliveries_current() -> None:
        """The webhook deliveries, hold changes included, up to the log's head."""
        runner.catch_up(["credit_records", "webhooks"])
        deliveries.collect_hold_changes(runner.position("credit_records"))

    sender = WebhookSender(
        deliveries,
        clock,
        catch_up=deliveries_current,
        allow_private=settings.webhooks_allow_private,
        max_attempts=settings.webhooks_max_attempts,
        backoff_seconds=settings.webhooks_backoff_seconds,
        backoff_max_seconds=settings.webhooks_backoff_max_seconds,
        lease_seconds=settings.webhooks_lease_seconds,
        timeout_seconds=settings.webhooks_timeout_seconds,
    )
    timer_store = SqlTimerStore(engine)
    metrics = Metrics(
        lag=runner.lag,
        timers_due=lambda: timer_store.count_due(clock.now()),
        outbox=lambda: outbox_counts(engine, outbox_messages, OUTBOX_STATUSES),
        webhooks=lambda: outbox_counts(engine, webhook_deliveries, WEBHOOK_STATUSES),
        stuck=lambda: dict.fromkeys(runner.projections, 0) | dict.fromkeys(runner.stuck(), 1),
        failures=lambda: runner.failed_batches,
    )
    app.observe_command = metrics.observe_command
    services = Services(
        settings=settings,
        database=database,
        engine=engine,
        app=app,
        clock=clock,
        projections=runner,
        scheduler=scheduler,
        keys=keys,
        letters=letters,
        notifier=notifier,
        webhooks=Webhooks(deliveries, sender, clock, event_types=EVENT_TYPES, head=runner.head,
                          refresh=lambda: _refresh_deliveries(services, deliveries)),
        metrics=metrics,
        signer=Signer.from_setting(settings.signing_key),
        portal=portal,
    )
    interval = settings.checkpoint_interval_seconds
    services.checkpoints = Checkpoints(
        app, SqlCheckpoints(engine), clock, services.signer,
        interval=timedelta(seconds=interval) if interval > 0 else None,
    )

    def customer_contacts(customer_id: str, since: datetime) -> list[ContactAttempt]:
        services.read_models("contacts_log")
        with engine.connect() as conn:
            return recent_contacts(conn, customer_id, since)

    app.customer_contacts = customer_contacts

    def open_receivables(customer_id: str | None) -> list[uuid.UUID]:
        services.read_models("receivables")
        query = sa.select(receivables_table.c.id).where(receivables_table.c.state.not_in(sorted(CLOSED_STATES)))
        if customer_id is not None:
            query = query.where(receivables_table.c.customer_id == customer_id)
        with engine.connect() as conn:
            return [uuid.UUID(row.id) for row in conn.execute(query.order_by(receivables_table.c.id))]

    app.open_receivables = open_receivables
    if adopted:
        # A new policy file: the open receivables follow it from now (ADR 0050).
        app.replan_open(Request(Actor("system:startup", "supervisor")), reason=f"policy {policy.version} adopted")
    return services


def _refresh_deliveries(services: Services, deliveries: SqlDeliveries) -> None:
    """Read-your-writes for the delivery log: its projections as any view's, then the hold changes."""
    services.read_models("credit_records", "webhooks")
    deliveries.collect_hold_changes(services.projections.position("credit_records"))


NOTIFIER = Actor("system:notifier", "service")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "expired", "withheld")
WEBHOOK_STATUSES = ("pending", "sending", "delivered", "failed", "cancelled")


def delivery_recorder(app: Collections) -> RecordDelivery:
    """What the notifier calls once a transport accepted a message: the receivable records
    the delivery (a demand, for the limitation period; ADR 0036)."""

    def record(delivery: Delivery) -> None:
        app.execute(
            Request(NOTIFIER, correlation_id=f"notifier:{delivery.message_id}"),
            uuid.UUID(delivery.receivable_id),
            "record_delivery",
            message_id=delivery.message_id,
            channel=delivery.channel,
            template=delivery.template,
            delivered_at=delivery.delivered_at,
        )

    return record


def transports(settings: Settings) -> dict[str, Transport]:
    """The message channels the settings configure; an unconfigured one fails each attempt saying so."""
    email: Transport = NotConfigured("e-mail is not configured (COLLECTIONS_SMTP_HOST)")
    if settings.smtp_host:
        email = SmtpTransport(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            from_address=settings.smtp_from,
            from_name=settings.smtp_from_name,
            timeout=settings.smtp_timeout_seconds,
        )
    sms: Transport = NotConfigured("SMS is not configured (COLLECTIONS_SMS_WEBHOOK_URL)")
    if settings.sms_webhook_url:
        sms = SmsWebhookTransport(url=settings.sms_webhook_url, token=settings.sms_webhook_token)
    return {"email": email, "sms": sms}


def follow_projections(services: Services) -> threading.Thread:
    """Keep the read models following the log until `services.stop` is set."""

    def loop() -> None:
        services.projections.follow(services.stop, poll=services.settings.projection_poll_seconds)

    thread = threading.Thread(target=loop, name="projections", daemon=True)
    thread.start()
    return thread


def _every(services: Services, interval: float, name: str, work: Callable[[], object]) -> threading.Thread:
    """Run `work` every `interval` seconds in a daemon thread until `services.stop` is set;
    a failure (a transient database error, say) is logged and the next round tries again."""

    def loop() -> None:
        while not services.stop.is_set():
            try:
                work()
            except Exception:
                logging.getLogger(__name__).exception("%s failed; retrying", name)
            services.stop.wait(interval)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def run_scheduler(services: Services, interval: float) -> threading.Thread:
    """Tick the scheduler every `interval` seconds until `services.stop` is set (system clock),
    while this process leads the schedulers (ADR 0062: one ticks at a time on PostgreSQL)."""
    thread = threading.Thread(
        target=elected_loop, args=(services, "scheduler", services.scheduler.tick),
        kwargs={"interval": interval, "stop": services.stop}, name="scheduler", daemon=True,
    )
    thread.start()
    return thread


def elected_loop(
    services: Services,
    name: str,
    work: Callable[[], object],
    *,
    interval: float,
    stop: threading.Event,
    heartbeat: Heartbeat | None = None,
) -> None:
    """Do `work` every `interval` seconds while this process leads `name`, until `stop` (ADR 0062).

    Every `COLLECTIONS_LEADER_POLL_SECONDS` a standby tries the lock and the leader checks it still
    holds it; a new leader works at once. A failing round is logged and the next one tries again.
    Each round beats the heartbeat (`leader`, `standby`, or `cut off` when the database cannot be
    reached), so a health check sees the loop alive and what it is doing."""
    log = logging.getLogger(__name__)
    lock = leadership(services.database, name)
    poll = services.settings.leader_poll_seconds
    leading: bool | None = None
    due = 0.0
    try:
        while not stop.is_set():
            held = lock.hold()
            state = "leader" if held else "standby" if lock.connected else "cut off"
            if held != leading:
                log.info("%s: %s", name, "leading" if held else "standing by (another process leads)",
                         extra={"role": name, "state": state})
                leading, due = held, 0.0
            if heartbeat is not None:
                heartbeat.beat(state)
            if held and time.monotonic() >= due:
                try:
                    work()
                except Exception:
                    log.exception("%s failed; retrying", name)
                due = time.monotonic() + interval
                if heartbeat is not None:
                    heartbeat.beat("leader")
            stop.wait(max(0.0, min(poll, due - time.monotonic())) if held else poll)
    finally:
        lock.release()


def run_checkpoints(services: Services, interval: float) -> threading.Thread:
    """Take a signed checkpoint whenever one is due (ADR 0061), looking every `interval` seconds,
    where the scheduler runs. Two takers at once store one: the second finds its number taken."""

    def take() -> None:
        try:
            services.checkpoints.take_if_due()
        except CheckpointTaken:
            pass

    return _every(services, interval, "checkpoints", take)


def run_notifier(services: Services, interval: float) -> threading.Thread:
    """Send due outbox messages every `interval` seconds until `services.stop` is set."""
    return _every(services, interval, "notifier", services.notifier.run_once)


def run_webhooks(services: Services, interval: float) -> threading.Thread:
    """Deliver due webhooks every `interval` seconds until `services.stop` is set."""
    return _every(services, interval, "webhooks", services.webhooks.sender.run_once)
