"""Crash safety of the projection worker (docs/design.md section 3: "a crash never
applies an event twice or skips one").

A history of ten thousand events or more is written first, with no projection
caught up, and copied to a second store (a SQLite file, or a PostgreSQL schema).
`collections-es project` then follows the first as a separate process and is
killed with SIGKILL at seeded random moments (each after the positions moved a
random amount past where that run started, plus a random delay, so the kill
lands anywhere in a batch), and restarted each time. After the last restart it
runs to the head and is stopped with SIGTERM. Meanwhile `collections-es rebuild`
builds every read model from scratch in the copy. Every read model of the first
store must then equal the copy's, and every position the last notification id.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from collections_es.adapters.persistence import Database
from collections_es.application.clock import FixedClock

from ..conftest import PG_URL, START, make_services
from .projection_history import (
    describe_differences,
    generate,
    projection_tables,
    table_contents,
)

# The console script of the interpreter running the tests (the project's venv).
CLI = Path(sys.executable).with_name("collections-es")
SEED = 4242
KILLS = 10
# About 7.2 events a receivable: 1,000 gives over 7,000 events (ten kills land among them,
# each mid-way). PostgreSQL writes and projects at about half SQLite's rate here, so it gets
# half the history. The suite runs this size (kept small: the suite's budget is 10 minutes); COLLECTIONS_CRASH_SCALE multiplies it for the long version
# (`COLLECTIONS_CRASH_SCALE=4 .venv/bin/pytest tests/integration/test_projection_crash.py`,
# bench/README.md).
SCALE = float(os.environ.get("COLLECTIONS_CRASH_SCALE", "1"))
RECEIVABLES = {"sqlite": round(1_000 * SCALE), "postgresql": round(500 * SCALE)}
MIN_EVENTS = {"sqlite": round(7_000 * SCALE), "postgresql": round(3_500 * SCALE)}
STEP = (0.03, 0.08)  # each killed run advances the sum of positions by this share of the whole work
POLL = 0.005
RUN_DEADLINE = 60.0  # seconds a killed run may take to reach its kill threshold
LAST_RUN_DEADLINE = 240.0  # seconds the last run (and the rebuild in the copy) may take to reach the head


class Worker:
    """One `collections-es` process (`project` by default), its output in a log file."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str, *command: str) -> None:
        self.log_path = cwd / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed when it ends
        self.proc = subprocess.Popen(
            [str(CLI), *(command or ("project",))], env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self._log.close()
        return code

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def tail(self, lines: int = 15) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def copy_of(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL for a copy of the store as it is now (events and all), removed afterwards."""
    database = Database.parse(database_url)
    if database.is_sqlite:
        target = tmp_path / "copy.db"
        with sqlite3.connect(database.url.database) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        yield f"sqlite:///{target}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            tables = conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = 'BASE TABLE'"),
                {"s": database.schema},
            ).scalars().all()
            for table in tables:
                conn.execute(sa.text(f'CREATE TABLE "{schema}"."{table}" (LIKE "{database.schema}"."{table}" INCLUDING ALL)'))
                conn.execute(sa.text(f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{database.schema}"."{table}"'))
        yield f"{PG_URL}?schema={schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def test_a_projection_worker_killed_at_random_moments_and_restarted_ends_equal_to_a_rebuild(database_url, tmp_path):
    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    rng = random.Random(SEED)
    services = make_services(database_url, FixedClock(START))
    workers: list[Worker] = []
    try:
        runner = services.projections
        names = list(runner.projections)
        stats = generate(services.app, RECEIVABLES[kind], seed=SEED, save_every=1_000)
        head = runner.head()
        assert stats.events >= MIN_EVENTS[kind] and head >= stats.events, (stats.events, head)
        assert set(runner.positions().values()) == {0}, "the history is written with no projection caught up"
        with copy_of(database_url, tmp_path) as copy_url:
            env = {**os.environ, "COLLECTIONS_PROJECTION_POLL_SECONDS": "0.05"}
            rebuild = Worker({**env, "DATABASE_URL": copy_url}, tmp_path, "rebuild-in-copy", "rebuild")
            workers.append(rebuild)
            kills = kill_and_restart(runner, {**env, "DATABASE_URL": database_url}, tmp_path, rng, workers)

            # The kills happened mid-way, each after its run had done some work.
            whole = head * len(names)
            assert all(any(0 < p < head for p in after.values()) for _, after in kills), kills
            assert all(sum(after.values()) > sum(before.values()) for before, after in kills), kills
            assert max(sum(after.values()) for _, after in kills) < whole, "a kill came after all the work was done"
            failed = [w.log_path.name for w in workers if "Traceback" in w.log_path.read_text(errors="replace")]
            assert not failed, f"errors in {failed}: see {tmp_path}"
            assert runner.positions() == {name: services.app.recorder.max_notification_id() for name in names}

            assert rebuild.wait(timeout=LAST_RUN_DEADLINE) == 0, f"the rebuild in the copy failed:\n{rebuild.tail()}"
            tables = projection_tables(runner)  # the rm_* read models and any other projection's tables
            copy = Database.parse(copy_url).make_engine()
            try:
                rebuilt = table_contents(copy, tables)
            finally:
                copy.dispose()
        assert all(rebuilt[t.name] for t in tables if t.name.startswith("rm_")), {n: len(r) for n, r in rebuilt.items()}
        survived = table_contents(services.engine, tables)
        assert survived == rebuilt, describe_differences(rebuilt, survived)
    finally:
        for worker in workers:
            if worker.alive():
                worker.kill()
        services.close()


def kill_and_restart(runner, env: dict[str, str], tmp_path: Path, rng: random.Random,
                     workers: list[Worker]) -> list[tuple[dict[str, int], dict[str, int]]]:
    """KILLS runs each killed mid-way, then one run to the head, stopped with SIGTERM.
    Returns the positions when each killed run started and right after its kill."""
    head = runner.head()
    whole = head * len(runner.projections)  # the sum of positions when every projection is at the head
    kills = []
    for number in range(KILLS):
        started = runner.positions()
        target = sum(started.values()) + int(whole * rng.uniform(*STEP))
        worker = Worker(env, tmp_path, f"worker-{number}")
        workers.append(worker)
        deadline = time.monotonic() + RUN_DEADLINE
        while sum(runner.positions().values()) < target:
            assert worker.alive(), f"worker {number} exited by itself:\n{worker.tail()}"
            assert time.monotonic() < deadline, (
                f"worker {number} did not move the positions from {started} past {target} in {RUN_DEADLINE} s; "
                f"now {runner.positions()}:\n{worker.tail()}"
            )
            time.sleep(POLL)
        time.sleep(rng.uniform(0, 0.1))  # anywhere in the batch being applied
        worker.kill()
        kills.append((started, runner.positions()))

    last = Worker(env, tmp_path, "worker-last")
    workers.append(last)
    deadline = time.monotonic() + LAST_RUN_DEADLINE
    while (positions := runner.positions()) != dict.fromkeys(runner.projections, head):
        assert last.alive(), f"the last worker exited by itself:\n{last.tail()}"
        assert time.monotonic() < deadline, (
            f"the last worker did not bring every projection to the head {head} in {LAST_RUN_DEADLINE} s: "
            f"{positions}:\n{last.tail()}"
        )
        time.sleep(0.02)
    assert last.stop() == 0, f"the worker did not stop cleanly on SIGTERM:\n{last.tail()}"
    return kills
