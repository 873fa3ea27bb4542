"""How fast does a standby scheduler lead once the leader is killed? (issue 16, "Processes"; ADR 0062)

    .venv/bin/python bench/takeover.py                       # 5 kills, leader poll 1 s (the default setting)
    .venv/bin/python bench/takeover.py --kills 10 --poll 0.25

Starts two `collections-es scheduler` processes on a throwaway PostgreSQL schema, waits until
one leads (its heartbeat file says `leader`) and the other stands by, kills the leader with
SIGKILL and times how long until the standby's heartbeat says `leader`; then starts a new
standby and does it again, `--kills` times. Prints min / median / max beside the goal: within
seconds (about one `COLLECTIONS_LEADER_POLL_SECONDS`). Wall-clock figures on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_PG_URL, machine, pg_schema, postgres_reason  # noqa: E402

CLI = Path(sys.executable).with_name("collections-es")


def state(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["state"]
    except (OSError, ValueError, KeyError):
        return None


def wait(what: str, condition, timeout: float = 120.0, step: float = 0.01) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--poll", type=float, default=1.0, help="COLLECTIONS_LEADER_POLL_SECONDS")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    reason = postgres_reason(args.pg_url)
    if reason:
        raise SystemExit(f"PostgreSQL unavailable: {reason}")
    print(f"# scheduler takeover, {machine()}, leader poll {args.poll} s")
    with pg_schema(args.pg_url, "takeover") as schema, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"{args.pg_url}?schema={schema}", "COLLECTIONS_LOG_LEVEL": "WARNING",
               "COLLECTIONS_LEADER_POLL_SECONDS": str(args.poll)}
        subprocess.run([str(CLI), "keys", "list"], env=env, check=True, capture_output=True)  # creates the tables
        procs: dict[Path, subprocess.Popen] = {}

        def start(n: int) -> Path:
            path = Path(tmp) / f"scheduler-{n}.health"
            procs[path] = subprocess.Popen([str(CLI), "scheduler"], env={**env, "COLLECTIONS_HEALTH_FILE": str(path)},
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return path

        takeovers: list[float] = []
        try:
            standing = [start(0), start(1)]
            for n in range(args.kills):
                wait("a leader and a standby", lambda: sorted(state(p) or "" for p in standing) == ["leader", "standby"])
                leader = next(p for p in standing if state(p) == "leader")
                standby = next(p for p in standing if p is not leader)
                procs[leader].send_signal(signal.SIGKILL)
                killed = time.monotonic()
                procs[leader].wait()
                wait("the standby to lead", lambda: state(standby) == "leader")
                takeovers.append(time.monotonic() - killed)
                print(f"kill {n + 1}: the standby led after {takeovers[-1]:.2f} s")
                standing = [standby, start(n + 2)]
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=20)
    print(f"takeover: min {min(takeovers):.2f} s, median {statistics.median(takeovers):.2f} s, "
          f"max {max(takeovers):.2f} s (goal: within seconds, about one poll of {args.poll} s)")


if __name__ == "__main__":
    main()
