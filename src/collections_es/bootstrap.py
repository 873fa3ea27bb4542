"""The composition root: settings in, a wired service out. Tests wire through here too."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from projections.base import ProjectionRunner
from projections.receivables import ReceivablesList

from .adapters.api_keys import ApiKeyStore
from .adapters.persistence import Database
from .adapters.policy_file import load_policy
from .application.access import ROLES
from .application.clock import Clock, SandboxClock, SystemClock
from .application.service import Collections
from .config import Settings
from .domain.policy import CollectionPolicy


@dataclass
class PolicyHolder:
    """The policy in force; replaced whole, read lock-free."""

    current: CollectionPolicy

    def __call__(self) -> CollectionPolicy:
        return self.current


@dataclass
class Services:
    settings: Settings
    database: Database
    engine: sa.Engine
    app: Collections
    clock: Clock
    policy: PolicyHolder
    projections: ProjectionRunner
    keys: ApiKeyStore
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def sandbox(self) -> SandboxClock | None:
        return self.clock if isinstance(self.clock, SandboxClock) else None

    def close(self) -> None:
        self.stop.set()
        self.app.close()
        self.engine.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    database = Database.parse(settings.database_url)
    engine = database.make_engine()
    if clock is None:
        clock = SandboxClock(SystemClock().now()) if settings.clock == "sandbox" else SystemClock()
    policy = PolicyHolder(load_policy(settings.policy_file))
    app = Collections(
        database.event_store_env(), clock=clock, policy=policy, snapshot_interval=settings.snapshot_interval
    )
    runner = ProjectionRunner(app, engine, [ReceivablesList()])
    keys = ApiKeyStore(engine, ROLES, settings.api_keys_file)
    return Services(settings, database, engine, app, clock, policy, runner, keys)


def follow_projections(services: Services) -> threading.Thread:
    """Keep the read models following the log until `services.stop` is set."""

    def loop() -> None:
        while not services.stop.is_set():
            try:
                services.projections.catch_up()
            except Exception:  # a transient database error: log and try again
                import logging

                logging.getLogger(__name__).exception("projection catch-up failed; retrying")
            services.stop.wait(services.settings.projection_poll_seconds)

    thread = threading.Thread(target=loop, name="projections", daemon=True)
    thread.start()
    return thread


def utcnow(services: Services) -> datetime:
    return services.clock.now()
