"""A worker process's heartbeat: a small JSON file its loop rewrites each round (ADR 0062).

The worker processes (`project`, `scheduler`, `notify`, `deliver`) serve no HTTP, so their
health is this file: the role, what the process is doing (`leader`, `standby`, `running`, or
`cut off` when a scheduler cannot reach the database), its pid and when its loop last came
round. `collections-es health ROLE` (the containers' healthcheck) reads it: healthy when the
beat is recent, the state one of a live loop's and the process lives. A loop that hangs, a
process that died, a scheduler neither leading nor waiting for the lock: all are unhealthy.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# What a live loop may be doing: leading, standing by for the lock, or running (senders). Anything
# else (`cut off`: the scheduler cannot reach the database, so it neither leads nor waits) is not healthy.
HEALTHY = frozenset({"leader", "standby", "running"})


def default_path(role: str) -> Path:
    return Path(tempfile.gettempdir()) / f"collections-es-{role}.health"


class Heartbeat:
    def __init__(self, role: str, path: Path | None = None, *, wall_clock: Any = time.time) -> None:
        self.role = role
        self.path = path or default_path(role)
        self.wall_clock = wall_clock  # a transport fact, like a lease: the real time even in sandbox mode

    def beat(self, state: str) -> None:
        """Write the beat atomically (a reader never sees half a file)."""
        record = {"role": self.role, "state": state, "pid": os.getpid(), "at": self.wall_clock()}
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        partial.write_text(json.dumps(record), encoding="utf-8")
        os.replace(partial, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Health:
    ok: bool
    text: str


def check(role: str, path: Path | None = None, *, max_age: float, wall_clock: Any = time.time) -> Health:
    """Healthy when `role`'s beat is at most `max_age` seconds old and its process is alive."""
    path = path or default_path(role)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Health(False, f"{role}: no heartbeat at {path}")
    if record.get("role") != role:
        return Health(False, f"{role}: {path} is the heartbeat of {record.get('role')!r}")
    age = wall_clock() - float(record.get("at", 0))
    pid = int(record.get("pid", 0))
    if not _alive(pid):
        return Health(False, f"{role}: process {pid} is gone (last state {record.get('state')})")
    if record.get("state") not in HEALTHY:
        return Health(False, f"{role}: {record.get('state')} (pid {pid})")
    if age > max_age:
        return Health(False, f"{role}: {record.get('state')} (pid {pid}), but its loop last came round {age:.0f} s ago")
    return Health(True, f"{role}: {record.get('state')} (pid {pid}), loop alive {max(age, 0):.1f} s ago")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
