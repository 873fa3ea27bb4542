"""HTTP command throughput: record-payment (load + decide + append) against the
do-nothing endpoint of the same server, on SQLite and on PostgreSQL.

    .venv/bin/python bench/http_commands.py                       # both databases, 5 s per phase
    .venv/bin/python bench/http_commands.py --db postgres --duration 10 --connections 8
    .venv/bin/python bench/http_commands.py --launcher direct     # uvicorn.run(...), access log off
    .venv/bin/python bench/http_commands.py --launcher direct --no-projections   # no follower thread

For each database it
  1. makes a throwaway store (a temp SQLite file, or a temp PostgreSQL schema via
     DATABASE_URL's ?schema=, dropped afterwards),
  2. creates an API key with the CLI (`collections-es keys add --actor bench --role service`),
  3. starts the real server (`collections-es serve`, i.e. uvicorn with the
     projection follower in-process) on a free loopback port, in a subprocess,
  4. registers a customer and --receivables receivables of a large amount,
  5. drives --connections concurrent keep-alive connections (one thread and one
     httpx.Client each) for --duration
     seconds at (a) GET /healthz and (b) POST /receivables/{id}/record-payment
     (amount 0.01, a unique reference each, receivables picked at random with a
     fixed seed so that concurrent payments rarely hit the same receivable),
  6. prints requests/s, p50/p99/mean latency, the server's CPU time per request,
     the client's and the machine's CPU use, the ratio record-payment rate /
     healthz rate, how far the in-process projections lag when the payments stop
     (and how long they take to catch up), and the server log's exceptions,
  7. checks that every acknowledged (200) payment is recorded exactly once: the
     sum over receivables of (version - 1) and of paid / 0.01, read back through
     GET /receivables/{id}, must both equal the number of 200 responses.

The issue's target (PostgreSQL, 8 connections): ratio >= 0.5 and p99 <= 50 ms.
Everything runs on one machine: the client, the server and the database share
its cores; the script prints the client's own CPU use so that can be judged.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `projections` package, not bench/projections.py

import _common as c  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")

# `collections-es serve` minus what a benchmark may want to switch off: argv = port, follow (0/1), access log (0/1).
DIRECT_LAUNCHER = """
import sys, uvicorn
from collections_es.api.app import create_app
from collections_es.bootstrap import build
from collections_es.config import Settings
port, follow, access_log = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1"
services = build(Settings())
uvicorn.run(create_app(services, follow=follow), host="127.0.0.1", port=port,
            log_level="info" if access_log else "warning", access_log=access_log)
"""


# ---------------------------------------------------------------------------- process helpers


EXTRA_PYTHONPATH: list[str] = []  # --pythonpath: benchmark another checkout's src/ with this venv


def clean_env(database_url: str) -> dict[str, str]:
    """os.environ without any collections-es setting, plus DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("COLLECTIONS_") or k == "DATABASE_URL")}
    env["DATABASE_URL"] = database_url
    # Benchmarks measure the service, not its per-key rate limit (ADR 0031): it is off here,
    # and the report says so.
    env["COLLECTIONS_RATE_LIMIT_BURST"] = "0"
    env["COLLECTIONS_AUTH_FAILURE_BURST"] = "0"
    if EXTRA_PYTHONPATH:
        env["PYTHONPATH"] = os.pathsep.join([*EXTRA_PYTHONPATH, *filter(None, [env.get("PYTHONPATH")])])
    return env


def proc_rss_mb(pid: int | None) -> float:
    """Resident memory of a process, MB (nan when gone)."""
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def create_key(database_url: str, workdir: Path) -> str:
    """An API key through the CLI, as an operator would make one."""
    out = subprocess.run(
        [str(c.VENV_BIN / "collections-es"), "keys", "add", "--actor", "bench", "--role", "service"],
        env=clean_env(database_url),
        cwd=workdir,  # Settings reads ./.env: keep the repository's out of it
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise SystemExit(f"`collections-es keys add` failed ({out.returncode}): {out.stderr.strip()}")
    token = out.stdout.strip().splitlines()[-1]
    if not token.startswith("ces_"):
        raise SystemExit(f"unexpected output from `collections-es keys add`: {out.stdout!r}")
    return token


@dataclass
class Server:
    proc: subprocess.Popen
    base_url: str
    log_path: Path
    worker: subprocess.Popen | None = None  # `collections-es project`, with --scaled-out

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGINT)
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.worker.kill()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(database_url: str, workdir: Path, args: argparse.Namespace) -> Server:
    launcher = args.launcher
    port = c.free_port()
    log_path = workdir / "server.log"
    if launcher == "cli":
        argv = [str(c.VENV_BIN / "collections-es"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        argv = [str(c.VENV_BIN / "python"), "-c", DIRECT_LAUNCHER, str(port),
                "0" if args.no_projections else "1", "1" if args.access_log else "0"]
    env = clean_env(database_url)
    worker = None
    if args.scaled_out:
        # Issue 16's P1 set-up: the API with external projections, plus one projection worker.
        env["COLLECTIONS_PROJECTIONS"] = "external"
        worker_log = open(workdir / "project.log", "wb")  # noqa: SIM115 - closed with the process
        worker = subprocess.Popen([str(c.VENV_BIN / "collections-es"), "project"], env=env, cwd=workdir,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        worker_log.close()
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; log:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return Server(proc, base, log_path, worker)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not answer /healthz within 60 s; log in {log_path}")


# ---------------------------------------------------------------------------- load


@dataclass
class PhaseResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_busy: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def stats(self) -> dict[str, float]:
        return c.summarize(self.latencies, self.elapsed)


def run_phase(
    name: str,
    base_url: str,
    headers: dict[str, str],
    make_request: Any,
    *,
    connections: int,
    duration: float,
    server_pid: int,
    timeout: float,
) -> PhaseResult:
    """`connections` threads, each with its own keep-alive connection (httpx.Client),
    sending one request at a time until the deadline. (Threads, not httpx.AsyncClient:
    the async client measured 2-3 ms of client CPU per request here against ~0.9 ms
    for the sync one, and on 2 cores the client's CPU is taken from the server.)"""
    result = PhaseResult(name)
    lock = threading.Lock()
    barrier = threading.Barrier(connections + 1)
    deadline = 0.0

    def worker(w: int) -> None:
        lat: list[float] = []
        statuses: dict[int, int] = {}
        errors: dict[str, int] = {}
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
            client.get("/healthz")  # open the connection before the clock starts
            barrier.wait()
            k = 0
            while time.perf_counter() < deadline:
                method, url, body = make_request(w, k)
                k += 1
                t0 = time.perf_counter()
                try:
                    r = client.request(method, url, json=body)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                dt = time.perf_counter() - t0
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    lat.append(dt)
                elif sum(statuses.values()) - statuses.get(200, 0) <= 2:
                    print(f"    {name}: HTTP {r.status_code}: {r.text[:300]}", file=sys.stderr)
        with lock:
            result.latencies.extend(lat)
            for key, v in statuses.items():
                result.statuses[key] = result.statuses.get(key, 0) + v
            for key, v in errors.items():
                result.errors[key] = result.errors.get(key, 0) + v

    threads = [threading.Thread(target=worker, args=(w,), name=f"client-{w}") for w in range(connections)]
    for t in threads:
        t.start()
    s_cpu0, c_cpu0, (m_busy0, m_total0) = proc_cpu_seconds(server_pid), time.process_time(), machine_cpu()
    t0 = time.perf_counter()
    deadline = t0 + duration
    barrier.wait()
    for t in threads:
        t.join()
    result.elapsed = time.perf_counter() - t0
    m_busy1, m_total1 = machine_cpu()
    result.server_cpu = proc_cpu_seconds(server_pid) - s_cpu0
    result.client_cpu = time.process_time() - c_cpu0
    result.machine_busy = (m_busy1 - m_busy0) / (m_total1 - m_total0) if m_total1 > m_total0 else float("nan")
    return result


def projection_lag(client: httpx.Client) -> dict[str, int]:
    """Each projection's lag behind the event log, from /readyz ({} if it does not say)."""
    try:
        r = client.get("/readyz")
        return {name: int(v["lag"]) for name, v in (r.json().get("projections") or {}).items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}


@dataclass
class DbResult:
    db: str
    health: PhaseResult
    pay: PhaseResult
    acknowledged: int
    versions_recorded: int
    paid_recorded: int
    loadavg: tuple[float, float, float]
    lag_at_end: dict[str, int]
    drain_seconds: float
    hot: PhaseResult | None = None
    memory: list[tuple[str, float, float]] = field(default_factory=list)  # (moment, server MB, worker MB)

    @property
    def ratio(self) -> float:
        h, p = self.health.stats()["rps"], self.pay.stats()["rps"]
        return p / h if h else float("nan")


def bench_db(db: str, database_url: str, workdir: Path, args: argparse.Namespace) -> DbResult:
    print(f"\n== {db}: creating an API key with the CLI, starting the server ({args.launcher}) ...", flush=True)
    token = create_key(database_url, workdir)
    server = start_server(database_url, workdir, args)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        pool = ThreadPoolExecutor(max_workers=args.connections)
        local = threading.local()
        clients: list[httpx.Client] = []

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=server.base_url, headers=headers, timeout=args.timeout)
                clients.append(local.client)
            return local.client

        r = client().post(
            "/customers", json={"customer_id": "C-BENCH", "name": "Bench Trading Co", "timezone": "Asia/Shanghai"}
        )
        if r.status_code != 201:
            raise SystemExit(f"register customer: HTTP {r.status_code}: {r.text}")

        def issue(i: int) -> str:
            number = f"INV-BENCH-{i:06d}"
            for _attempt in range(3):
                r = client().post(
                    "/receivables",
                    json={
                        "invoice_number": number,
                        "customer_id": "C-BENCH",
                        "amount": c.LARGE_AMOUNT,
                        "currency": "CNY",
                        "issued_on": c.ISSUED_ON,
                        "due_on": c.DUE_ON,
                    },
                )
                if r.status_code == 201:
                    return r.json()["id"]
                if r.status_code == 409:  # an earlier attempt answered 5xx but was saved
                    return client().get(f"/receivables/{number}").json()["id"]
                print(f"   issuing {number}: HTTP {r.status_code}, retrying", file=sys.stderr)
            raise SystemExit(f"issue receivable: HTTP {r.status_code}: {r.text}")

        # One at a time: set-up is not measured, and must not trip over what the measurement is for.
        ids = [issue(i) for i in range(args.receivables)]
        print(f"   server {server.base_url} (pid {server.proc.pid}); {len(ids)} receivables issued", flush=True)

        rngs = [random.Random(args.seed * 1000 + w) for w in range(args.connections)]

        def health_request(w: int, k: int) -> tuple[str, str, None]:
            return "GET", "/healthz", None

        def pay_request_for(tag: str) -> Any:
            def make(w: int, k: int) -> tuple[str, str, dict[str, str]]:
                rid = ids[rngs[w].randrange(len(ids))]
                body = {"amount": "0.01", "method": "bank_transfer", "paid_on": c.PAID_ON, "reference": f"{tag}-{w}-{k}"}
                return "POST", f"/receivables/{rid}/record-payment", body

            return make

        common = {"connections": args.connections, "server_pid": server.proc.pid, "timeout": args.timeout}
        run_phase("warm-up healthz", server.base_url, headers, health_request, duration=args.warmup, **common)
        warm_p = run_phase("warm-up payment", server.base_url, headers, pay_request_for("W"), duration=args.warmup, **common)
        # let the projections catch up with the set-up and warm-up before measuring
        follow = args.launcher == "cli" or not args.no_projections
        if follow:
            wait_for_projections(client(), args.drain_timeout)
        loadavg = os.getloadavg()
        worker_pid = server.worker.pid if server.worker is not None else None
        memory = [("before the phases", proc_rss_mb(server.proc.pid), proc_rss_mb(worker_pid))]
        health = run_phase("GET /healthz", server.base_url, headers, health_request, duration=args.duration, **common)
        pay = run_phase("record-payment", server.base_url, headers, pay_request_for("P"), duration=args.duration, **common)
        memory.append(("after the payments", proc_rss_mb(server.proc.pid), proc_rss_mb(worker_pid)))
        acknowledged = warm_p.ok + pay.ok
        hot = None
        if args.hot:
            # Issue 16's hot receivable: `--hot` writers, each with its own connection, all on one receivable.
            def hot_request(w: int, k: int) -> tuple[str, str, dict[str, str]]:
                body = {"amount": "0.01", "method": "bank_transfer", "paid_on": c.PAID_ON, "reference": f"H-{w}-{k}"}
                return "POST", f"/receivables/{ids[0]}/record-payment", body

            hot = run_phase("hot receivable", server.base_url, headers, hot_request, duration=args.duration,
                            **{**common, "connections": args.hot})
            acknowledged += hot.ok
            memory.append(("after the hot receivable", proc_rss_mb(server.proc.pid), proc_rss_mb(worker_pid)))

        # The projections follow in the server process: how far behind are they, and how long to catch up?
        lag_at_end = projection_lag(client()) if follow else {}
        drain_s = wait_for_projections(client(), args.drain_timeout) if follow else float("nan")

        # Read back: every acknowledged payment is one PaymentRecorded event and 0.01 paid.
        def read(rid: str) -> tuple[int, Decimal]:
            r = client().get(f"/receivables/{rid}")
            r.raise_for_status()
            data = r.json()
            return data["version"] - 1, Decimal(data["paid"])  # version 1 is Issued; every later event is a payment

        rows = list(pool.map(read, ids))
        pool.shutdown()
        for cl in clients:
            cl.close()
        versions = sum(v for v, _ in rows)
        paid = sum((p for _, p in rows), Decimal(0))
        memory.append(("after the read-back", proc_rss_mb(server.proc.pid), proc_rss_mb(worker_pid)))
        return DbResult(
            db, health, pay, acknowledged, versions, int(paid / Decimal("0.01")), loadavg, lag_at_end, drain_s,
            hot, memory,
        )
    finally:
        server.stop()
        errors = server_errors(server.log_path)
        if errors:
            print("   exceptions in the server log (count, last line of each traceback):")
            for line, count in errors.most_common(8):
                print(f"     {count:5d}  {line[:200]}")
        if args.show_log:
            print(server.log_path.read_text(errors="replace")[-4000:])


def server_errors(log_path: Path) -> Counter[str]:
    """The final 'SomeError: message' line of each traceback in the server log."""
    found: Counter[str] = Counter()
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return found
    pattern = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exhausted|Timeout)\w*: ")
    for line in lines:
        if pattern.match(line):
            found[line.strip()] += 1
    return found


def wait_for_projections(client: httpx.Client, timeout: float) -> float:
    """Seconds until every projection's lag is 0 (nan if not within `timeout`; 0 if /readyz says nothing)."""
    t0 = time.perf_counter()
    while True:
        lag = projection_lag(client)
        if not lag or max(lag.values()) == 0:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            return float("nan")
        time.sleep(0.1)


# ---------------------------------------------------------------------------- report


def report(res: DbResult, args: argparse.Namespace) -> None:
    print(f"\n-- {res.db}: {args.connections} connections, {args.duration:g} s per phase, "
          f"{args.receivables} receivables, load average before: {res.loadavg[0]:.2f}")
    print(f"   {'endpoint':16s} {'ok':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s}"
          f" {'srv cpu ms/req':>15s} {'client cpu':>10s} {'machine':>8s}  other")
    for ph in (res.health, res.pay, *([res.hot] if res.hot else [])):
        s = ph.stats()
        n = max(1, s["n"])
        other = {**{f"HTTP {k}": v for k, v in ph.statuses.items() if k != 200}, **ph.errors}
        print(
            f"   {ph.name:16s} {s['n']:7d} {s['rps']:8.1f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['mean_ms']:8.2f}"
            f" {ph.server_cpu / n * 1000:15.2f} {ph.client_cpu / ph.elapsed:10.0%} {ph.machine_busy:8.0%}  {other or ''}"
        )
    print(f"   ratio record-payment / healthz: {res.ratio:.3f}")
    if res.lag_at_end:
        drained = "not caught up" if res.drain_seconds != res.drain_seconds else f"caught up {res.drain_seconds:.1f} s later"
        print(f"   projection lag when the payments stopped: {res.lag_at_end} ({drained})")
    match = res.acknowledged == res.versions_recorded == res.paid_recorded
    print(
        f"   payments acknowledged (200, incl. warm-up): {res.acknowledged}; PaymentRecorded events "
        f"(sum of version-1): {res.versions_recorded}; sum paid / 0.01: {res.paid_recorded} -> "
        f"{'MATCH' if match else 'MISMATCH'}"
    )
    if not match:
        lost = res.acknowledged - min(res.versions_recorded, res.paid_recorded)
        if lost > 0:
            print(f"   !! {lost} acknowledged payment(s) are not recorded")
        extra = max(res.versions_recorded, res.paid_recorded) - res.acknowledged
        if extra > 0:
            print(f"   !! {extra} payment(s) recorded but not acknowledged with 200 (answered 5xx or timed out after saving)")
    for moment, server_mb, worker_mb in res.memory:
        worker = f", projection worker {worker_mb:.0f} MB" if worker_mb == worker_mb else ""
        print(f"   resident memory {moment}: server {server_mb:.0f} MB{worker}")
    if res.db == "postgres":
        p99 = res.pay.stats()["p99_ms"]
        verdict = "PASS" if res.ratio >= 0.5 and p99 <= 50 else "FAIL"
        print(f"   issue target (ratio >= 0.5 and p99 <= 50 ms): ratio {res.ratio:.3f}, p99 {p99:.1f} ms -> {verdict}")
        drained = res.drain_seconds == res.drain_seconds and res.drain_seconds <= 2
        print(f"   issue target (projections back to lag 0 within 2 s of the load stopping): "
              f"{'PASS' if drained else 'FAIL'} ({res.drain_seconds:.1f} s)")
        if res.hot is not None:
            h = res.hot.stats()
            verdict = "PASS" if h["rps"] >= 300 and h["p99_ms"] <= 100 else "FAIL"
            print(f"   issue target, hot receivable ({args.hot} writers >= 300/s, p99 <= 100 ms, none lost): "
                  f"{h['rps']:.0f}/s, p99 {h['p99_ms']:.1f} ms -> {verdict}")


def run_all(args: argparse.Namespace) -> int:
    results: list[DbResult] = []
    failed: list[str] = []
    for db in args.db:
        with tempfile.TemporaryDirectory(prefix=f"bench-http-{db}-") as tmp:
            workdir = Path(tmp)
            try:
                if db == "sqlite":
                    res = bench_db(db, f"sqlite:///{workdir}/collections.db", workdir, args)
                else:
                    reason = c.postgres_reason(args.pg_url)
                    if reason:
                        print(f"\n== postgres: skipped, PostgreSQL unavailable: {reason}")
                        continue
                    with c.pg_schema(args.pg_url, "benchhttp") as schema:
                        res = bench_db(db, f"{args.pg_url}?schema={schema}", workdir, args)
            except SystemExit as exc:
                print(f"\n== {db}: FAILED: {exc}")
                failed.append(db)
                continue
        results.append(res)
        report(res, args)
    print(f"\n==== summary ({time.strftime('%Y-%m-%d %H:%M %Z')}; {c.machine()}; launcher {args.launcher}; seed {args.seed}; "
          "rate limits off: COLLECTIONS_RATE_LIMIT_BURST=0, COLLECTIONS_AUTH_FAILURE_BURST=0)")
    for res in results:
        h, pay = res.health.stats(), res.pay.stats()
        print(
            f"   {res.db:9s} healthz {h['rps']:7.1f}/s  record-payment {pay['rps']:6.1f}/s "
            f"(p50 {pay['p50_ms']:.1f} ms, p99 {pay['p99_ms']:.1f} ms)  ratio {res.ratio:.3f}  "
            f"acknowledged {res.acknowledged} = recorded {res.versions_recorded}/{res.paid_recorded}"
        )
    if failed:
        print(f"   failed: {', '.join(failed)}")
        return 1
    bad = [r.db for r in results if not (r.acknowledged == r.versions_recorded == r.paid_recorded)]
    if bad:
        print(f"\nERROR: acknowledged payments and recorded payments differ on {', '.join(bad)}")
        return 1
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured phase (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per endpoint (default 1)")
    p.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    p.add_argument("--receivables", type=int, default=200, help="receivables the payments spread over (default 200)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--launcher", choices=["cli", "direct"], default="cli",
                   help="cli (default): `collections-es serve` (uvicorn, access log on, projections followed "
                        "in-process); direct: the same app via uvicorn.run, access log off unless --access-log")
    p.add_argument("--no-projections", action="store_true",
                   help="with --launcher direct: do not follow the projections in the server process")
    p.add_argument("--access-log", action="store_true", help="with --launcher direct: keep uvicorn's access log")
    p.add_argument("--pg-url", default=c.DEFAULT_PG_URL, help="PostgreSQL database (a temp schema is made in it)")
    p.add_argument("--show-log", action="store_true", help="print the tail of the server log")
    p.add_argument("--scaled-out", action="store_true",
                   help="COLLECTIONS_PROJECTIONS=external for the server, plus a `collections-es project` worker")
    p.add_argument("--hot", type=int, default=16, metavar="N",
                   help="then N writers on one receivable (default 16; 0 to skip)")
    p.add_argument("--drain-timeout", type=float, default=60.0,
                   help="seconds to wait for the projections to catch up after the payments (default 60)")
    p.add_argument("--pythonpath", action="append", default=[], metavar="DIR",
                   help="prepend DIR to the server's and CLI's PYTHONPATH (e.g. the src/ and root of an exported "
                        "commit, to compare before/after with the same venv); repeatable")
    args = p.parse_args()
    if args.launcher == "cli" and (args.no_projections or args.access_log):
        p.error("--no-projections and --access-log need --launcher direct")
    EXTRA_PYTHONPATH.extend(str(Path(d).resolve()) for d in args.pythonpath)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
