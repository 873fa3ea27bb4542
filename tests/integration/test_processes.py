"""The service scaled out on PostgreSQL, each piece its own process, while one of each kind dies
(ADR 0062, ADR 0063; issue 16, "Processes").

Real `collections-es` processes share one PostgreSQL schema and one domain time (a sandbox clock
frozen at START in every process): two APIs (`serve` with external projections; the second with
`--workers 2`), one projection worker, two schedulers and two message senders, each sender talking
to its own port of one real SMTP server (aiosmtpd) that counts what it accepts. Client threads send
commands across both APIs, each with an Idempotency-Key and a correlation id, retrying on the other
API until answered. Mid-way, each kind loses one process to SIGKILL: the first API, the projection
worker (then started again), the scheduler that leads, and a sender caught in the middle of an SMTP
conversation (the server holds its message unanswered until it is dead; the other sender is paused
with SIGSTOP until then, so the next message is surely the first sender's). Then:

- every acknowledged command is in the log once (its correlation id on exactly one event);
- every timer due fired once (one event per firing noted, none due left), the standby scheduler
  having taken over within seconds;
- every message was accepted by the SMTP server once, its delivery recorded once;
- the read models equal a rebuild from the log.

Bounded and deterministic: a fixed seed chooses the invoices and payments, the kills happen at
fixed shares of the acknowledged commands, and the domain time never moves.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from collections_es.application.clock import FixedClock
from projections.outbox import messages
from projections.timers import SqlTimerStore, firings

from ..conftest import START, make_services
from .projection_history import describe_differences, projection_tables, table_contents
from .test_projection_crash import copy_of

pytestmark = pytest.mark.postgres

CLI = Path(sys.executable).with_name("collections-es")
SEED = 1616
CLIENTS = 4
INVOICES_PER_CLIENT = 4
PAYMENTS_PER_INVOICE = 2
# Commands each client sends: a customer, its invoice, the payments.
COMMANDS = CLIENTS * INVOICES_PER_CLIENT * (2 + PAYMENTS_PER_INVOICE)
DEADLINE = 120.0  # seconds for any one wait (nine processes starting on a busy machine); the whole test takes far less
TAKEOVER = 10.0  # seconds a standby may take to lead once the leader is dead (one poll, 0.25 s, when the machine is not swamped; bench/takeover.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, condition: Any, timeout: float = DEADLINE, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


class MailServer:
    """One SMTP server on several loopback ports (one per sender), counting what it accepts by
    the outbox message id in the Message-ID. `trap(port)`: the next message on that port gets
    no answer until `release()`, then a 451 (not accepted): its sender is killed meanwhile."""

    def __init__(self, ports: int) -> None:
        self.accepted: Counter[str] = Counter()
        self.ports = [free_port() for _ in range(ports)]
        self.controllers = [Controller(self._handler(port), hostname="127.0.0.1", port=port) for port in self.ports]
        self._lock = threading.Lock()
        self._trap_port: int | None = None
        self.trapped: str | None = None
        self.caught = threading.Event()
        self._released = threading.Event()

    def _handler(self, port: int) -> Any:
        server = self

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
                mail = message_from_bytes(envelope.content, policy=policy.default)
                message_id = str(mail["Message-ID"]).strip("<>").split("@")[0].rsplit(".", 1)[1]
                with server._lock:
                    trapped = server._trap_port == port and server.trapped is None
                    if trapped:
                        server.trapped = message_id
                if trapped:
                    server.caught.set()
                    while not server._released.is_set():
                        await asyncio.sleep(0.02)
                    return "451 4.3.0 not accepted: the sender was gone before the answer"
                with server._lock:
                    server.accepted[message_id] += 1
                return "250 OK"

        return Handler()

    def trap(self, port: int) -> None:
        with self._lock:
            self._trap_port = port

    def release(self) -> None:
        self._released.set()

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    def stop(self) -> None:
        self.release()
        for controller in self.controllers:
            controller.stop()


class Process:
    """One `collections-es` process, its output in a log file."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path, *command: str) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self.health_file = cwd / f"{name}.health"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed when it ends
        # A session of its own: SIGKILL reaches `serve --workers`' worker processes too (killpg).
        self.proc = subprocess.Popen(
            [str(CLI), *command], env={**env, "COLLECTIONS_HEALTH_FILE": str(self.health_file)}, cwd=cwd,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def state(self) -> str | None:
        """What its heartbeat says (leader, standby, running), or None."""
        try:
            return json.loads(self.health_file.read_text())["state"]
        except (OSError, ValueError, KeyError):
            return None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
                return -9
        return self.proc.returncode

    def close(self) -> None:
        self.kill()  # the process and any it started
        self._log.close()

    def text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


class Client(threading.Thread):
    """Sends its commands in order, each with its own Idempotency-Key and correlation id, to one
    API and, when that one fails to answer, to the next, until it is answered."""

    def __init__(self, number: int, apis: list[str], token: str, rng: random.Random, acked: list[dict]) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.apis = apis
        self.token = token
        self.commands = list(self._commands(rng))
        self.acked = acked
        self.error: str | None = None
        self._api = number % len(apis)

    def _commands(self, rng: random.Random) -> Any:
        today = START.date()
        for n in range(INVOICES_PER_CLIENT):
            customer = f"C-P{self.number}-{n}"
            yield "customer", "/customers", {
                "customer_id": customer, "name": f"示例客户 {self.number}-{n}", "timezone": "Asia/Shanghai", "tier": "B",
                "preferred_channel": "email", "contacts": {"email": f"ap.{self.number}.{n}@example.com"},
            }
            # Due a few days ahead (a reminder is owed now) or weeks ago (fallen due, followed up).
            due = today + timedelta(days=rng.choice([1, 2, 3, -10, -20, -40]))
            issued = min(due - timedelta(days=30), today)
            number = f"INV-P{self.number}-{n}"
            yield "issue", "/receivables", {
                "invoice_number": number, "customer_id": customer, "amount": f"{rng.randint(5_000, 90_000)}.00",
                "currency": "CNY", "issued_on": issued.isoformat(), "due_on": due.isoformat(), "collector": "collector-1",
            }
            for p in range(PAYMENTS_PER_INVOICE):
                yield "record_payment", number, {
                    "amount": f"{rng.randint(10, 900)}.00", "method": "bank_transfer",
                    "paid_on": (today - timedelta(days=p)).isoformat(), "reference": f"BANK-{self.number}-{n}-{p}",
                }

    def run(self) -> None:
        receivables: dict[str, str] = {}
        clients = [httpx.Client(base_url=api, timeout=15.0) for api in self.apis]
        try:
            for kind, target, body in self.commands:
                path = f"/receivables/{receivables[target]}/record-payment" if kind == "record_payment" else target
                key = f"{self.name}:{len(self.acked)}:{uuid.uuid4()}"
                answer = self._send(clients, path, body, key)
                if kind == "issue":
                    receivables[body["invoice_number"]] = answer["id"]
                self.acked.append({"kind": kind, "correlation_id": key, "path": path})
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            for client in clients:
                client.close()

    def _send(self, clients: list[httpx.Client], path: str, body: dict, key: str) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key, "X-Correlation-ID": key}
        deadline = time.monotonic() + DEADLINE
        while True:
            assert time.monotonic() < deadline, f"{path} was never answered"
            try:
                response = clients[self._api].post(path, json=body, headers=headers)
            except httpx.TransportError:
                self._api = (self._api + 1) % len(clients)  # that API is gone: the same request to the next
                continue
            if response.status_code >= 500:
                self._api = (self._api + 1) % len(clients)
                time.sleep(0.05)
                continue
            assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
            return response.json()


def test_the_pieces_in_processes_of_their_own_keep_their_promises_while_one_of_each_kind_is_killed(pg_url, tmp_path):
    rng = random.Random(SEED)
    services = make_services(pg_url, FixedClock(START))
    token = services.keys.add("service-1", "service", START)
    mail = MailServer(ports=2)
    mail.start()
    api_ports = [free_port(), free_port()]
    base = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "COLLECTIONS_CLOCK": "sandbox",
        "COLLECTIONS_SANDBOX_START": START.isoformat(),
        "COLLECTIONS_PROJECTIONS": "external",
        "COLLECTIONS_PROJECTION_POLL_SECONDS": "0.1",
        "COLLECTIONS_LEADER_POLL_SECONDS": "0.25",
        "COLLECTIONS_NOTIFY_INTERVAL_SECONDS": "0.3",
        "COLLECTIONS_READ_WAIT_SECONDS": "10",
        "COLLECTIONS_RATE_LIMIT_BURST": "1000000",
        "COLLECTIONS_AUTH_FAILURE_BURST": "1000000",
        "COLLECTIONS_SMTP_HOST": "127.0.0.1",
        "COLLECTIONS_SMTP_SECURITY": "none",
        "COLLECTIONS_SMTP_TIMEOUT_SECONDS": "30",
        "COLLECTIONS_LOG_LEVEL": "INFO",
        "COLLECTIONS_LOG_FORMAT": "console",
    }
    processes: list[Process] = []

    def start(name: str, *command: str, **env: str) -> Process:
        process = Process(name, {**base, **env}, tmp_path, *command)
        processes.append(process)
        return process

    try:
        api_1 = start("api-1", "serve", "--port", str(api_ports[0]))
        api_2 = start("api-2", "serve", "--port", str(api_ports[1]), "--workers", "2")
        projector = start("project-1", "project")
        schedulers = [start(f"scheduler-{n}", "scheduler", "--interval", "0.5") for n in (1, 2)]
        senders = [start(f"notify-{n}", "notify", COLLECTIONS_SMTP_PORT=str(port)) for n, port in zip((1, 2), mail.ports)]
        apis = [f"http://127.0.0.1:{port}" for port in api_ports]

        # Each piece says what it is: /readyz names the API's role, the workers' heartbeats theirs.
        for url in apis:
            ready = wait_for(f"{url}/readyz", lambda url=url: _ready(url))
            assert (ready["role"], ready["runs"]) == ("api", ["api"])
        leader = wait_for("a leading scheduler", lambda: [s for s in schedulers if s.state() == "leader"])
        assert len(leader) == 1, [s.state() for s in schedulers]
        assert wait_for("the standby", lambda: [s for s in schedulers if s.state() == "standby"])
        assert wait_for("the senders", lambda: all(s.state() == "running" for s in senders))
        assert "role: api in 2 worker processes" in api_2.text()
        assert "role: scheduler (elected by an advisory lock)" in schedulers[0].text()

        acked: list[dict] = []
        clients = [Client(n, apis, token, rng, acked) for n in range(CLIENTS)]
        for client in clients:
            client.start()

        # Mid-way, one of each kind dies.
        wait_for("a quarter of the commands", lambda: len(acked) >= COMMANDS // 4)
        api_1.kill()
        # The next message notify-1 sends is held unanswered; notify-2 pauses meanwhile, so that
        # next message surely comes (every invoice issued from here on owes one).
        senders[1].pause()
        mail.trap(mail.ports[0])
        wait_for("a third of the commands", lambda: len(acked) >= COMMANDS // 3)
        projector.kill()
        projector = start("project-2", "project")
        wait_for("half the commands", lambda: len(acked) >= COMMANDS // 2)
        leading = next(s for s in schedulers if s.state() == "leader")
        standby = next(s for s in schedulers if s is not leading)
        leading.kill()
        killed_at = time.monotonic()
        wait_for("the standby to lead", lambda: standby.state() == "leader", timeout=TAKEOVER * 4)
        takeover = time.monotonic() - killed_at
        assert mail.caught.wait(DEADLINE), "no message reached the first sender"
        senders[0].kill()  # mid-send: the server has its message and has not answered
        senders[1].resume()
        mail.release()

        for client in clients:
            client.join(DEADLINE)
            assert not client.is_alive(), f"{client.name} did not finish"
            assert client.error is None, f"{client.name}: {client.error}"
        assert len(acked) == COMMANDS

        # Quiet: the read models at the head, nothing due, every message out.
        store = SqlTimerStore(services.engine)

        def settled() -> bool:
            head = services.projections.head()
            lag = max(services.projections.lag().values())
            with services.engine.connect() as conn:
                open_messages = conn.execute(
                    sa.select(sa.func.count()).select_from(messages).where(messages.c.status.in_(("pending", "sending")))
                ).scalar()
            return lag == 0 and store.count_due(START) == 0 and open_messages == 0 and head == services.projections.head()

        wait_for("the processes to settle", settled, step=0.2)
        time.sleep(1.0)  # a last round of each loop: nothing more may happen
        assert settled()
        for process in processes:
            if process.alive():
                process.stop()
        failed = [p.name for p in processes if "Traceback" in p.text()]
        assert not failed, f"errors in {failed}: see {tmp_path}"

        events = _events(services)
        # Every acknowledged command is in the log once.
        by_correlation = Counter(getattr(e, "correlation_id", None) for e in events)
        assert {a["correlation_id"]: by_correlation[a["correlation_id"]] for a in acked} == {
            a["correlation_id"]: 1 for a in acked
        }

        # Every due timer fired once: one event per firing (timer and instant), none due left. Each
        # firing noted fired has its event; the leader killed mid-way may have died between its
        # command and the note: that one timer has its event (the truth) and no note (ADR 0062).
        with services.engine.connect() as conn:
            noted = [r for r in conn.execute(sa.select(firings)) if r.outcome == "fired"]
        fired = {(r.receivable_id, r.at.replace(tzinfo=UTC)) for r in noted}
        scheduled = Counter(
            (str(e.originator_id), e.scheduled_for, type(e).__name__)
            for e in events if getattr(e, "actor_id", None) == "system:scheduler"
        )
        assert fired and set(scheduled.values()) == {1}, [k for k, n in scheduled.items() if n > 1]
        by_instant = Counter((rid, at) for rid, at, _ in scheduled)
        assert all(by_instant[key] >= 1 for key in fired), fired - set(by_instant)
        assert 0 <= sum(scheduled.values()) - len(noted) <= 1, (len(noted), sum(scheduled.values()))
        assert store.count_due(START) == 0
        assert takeover < TAKEOVER, f"the standby scheduler took {takeover:.1f} s to lead"

        # Every message accepted once, its delivery recorded once; the trapped one sent by the other sender.
        with services.engine.connect() as conn:
            sent = set(conn.execute(sa.select(messages.c.id).where(messages.c.status == "sent")).scalars())
            statuses = Counter(conn.execute(sa.select(messages.c.status)).scalars())
        assert sent and statuses == Counter({"sent": len(sent)}), statuses
        assert mail.accepted == Counter(dict.fromkeys(sent, 1)), {k: n for k, n in mail.accepted.items() if n != 1}
        assert mail.trapped in sent
        recorded = Counter(e.message_id for e in events if type(e).__name__ == "DeliveryRecorded")
        assert recorded == Counter(dict.fromkeys(sent, 1))

        # The read models equal a rebuild from the log.
        tables = projection_tables(services.projections)
        live = table_contents(services.engine, tables)
        with copy_of(pg_url, tmp_path) as copy_url:
            copy = make_services(copy_url, FixedClock(START))
            try:
                copy.projections.rebuild()
                rebuilt = table_contents(copy.engine, tables)
            finally:
                copy.close()
        assert live == rebuilt, describe_differences(rebuilt, live)
    finally:
        for process in processes:
            process.close()
        mail.stop()
        services.close()


def _ready(url: str) -> dict | None:
    try:
        response = httpx.get(f"{url}/readyz", timeout=2.0)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def _events(services: Any) -> list[Any]:
    """Every event of the log, decoded."""
    out: list[Any] = []
    start = 0
    while True:
        batch = services.app.recorder.select_notifications(start=start, limit=1000, inclusive_of_start=False)
        if not batch:
            return out
        out += [services.app.mapper.to_domain_event(n) for n in batch]
        start = batch[-1].id
