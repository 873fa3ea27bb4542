"""Profile `POST /receivables/{id}/record-payment` in-process, in one thread, with cProfile.

    .venv/bin/python bench/profile_record_payment.py --db postgres --requests 300
    .venv/bin/python bench/profile_record_payment.py --db sqlite --sort cumulative --top 40

No server and no TestClient: the real FastAPI app (middleware, dependencies,
routes) is called as an ASGI callable from one asyncio loop, and FastAPI's
"run sync code in a worker thread" is replaced by a direct call for the
duration of the script, so cProfile sees the whole request (authentication,
load, decide, save, response) in the main thread. Prints the mean wall time
of GET /healthz and of record-payment with and without the profiler, the time each projection
takes per payment event when it catches up on them (the server does that in
a follower thread of the same process), a breakdown by project-relevant
function, and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `projections` package, not bench/projections.py

import _common as c  # noqa: E402


def _inline_threadpool() -> None:
    """Run FastAPI's sync endpoints and dependencies inline (profiling only)."""
    import fastapi.dependencies.utils as dep_utils
    import fastapi.routing as routing

    async def run_inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    routing.run_in_threadpool = run_inline
    dep_utils.run_in_threadpool = run_inline


class AsgiCaller:
    """The smallest HTTP/1.1-shaped ASGI client: one request at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        raw = b"" if body is None else json.dumps(body).encode()
        hdrs = [(b"host", b"bench"), (b"content-length", str(len(raw)).encode())]
        if body is not None:
            hdrs.append((b"content-type", b"application/json"))
        for k, v in (headers or {}).items():
            hdrs.append((k.lower().encode(), v.encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": hdrs, "client": ("127.0.0.1", 1), "server": ("bench", 80),
        }
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return {"type": "http.disconnect"}

        status = 0
        chunks: list[bytes] = []

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def run(args: argparse.Namespace, url: str) -> None:
    from collections_es.api.app import create_app
    from collections_es.bootstrap import build
    from collections_es.config import Settings

    services = build(Settings(DATABASE_URL=url, COLLECTIONS_RATE_LIMIT_BURST=0))
    app = AsgiCaller(create_app(services))
    token = services.keys.add("bench", "service", services.clock.now())
    h = {"Authorization": f"Bearer {token}"}
    status, body = await app.request(
        "POST", "/customers", {"customer_id": "C-BENCH", "name": "Bench Co", "timezone": "Asia/Shanghai"}, h
    )
    assert status == 201, body
    ids = []
    for i in range(args.receivables):
        status, body = await app.request(
            "POST",
            "/receivables",
            {"invoice_number": f"INV-PROF-{i:05d}", "customer_id": "C-BENCH", "amount": c.LARGE_AMOUNT,
             "currency": "CNY", "issued_on": c.ISSUED_ON, "due_on": c.DUE_ON},
            h,
        )
        assert status == 201, body
        ids.append(json.loads(body)["id"])
    seq = 0

    async def pay() -> None:
        nonlocal seq
        rid = ids[seq % len(ids)]
        seq += 1
        status, body = await app.request(
            "POST",
            f"/receivables/{rid}/record-payment",
            {"amount": "0.01", "method": "bank_transfer", "paid_on": c.PAID_ON, "reference": f"PROF-{seq}"},
            h,
        )
        assert status == 200, body

    async def healthz() -> None:
        status, _ = await app.request("GET", "/healthz")
        assert status == 200

    for _ in range(args.warmup):
        await pay()
        await healthz()
    services.projections.catch_up()  # the projections start level with the log
    head0 = services.projections.head()
    n = args.requests
    t0 = time.perf_counter()
    for _ in range(n):
        await healthz()
    t_health = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        await pay()
    t_plain = (time.perf_counter() - t0) / n
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(n):
        await pay()
    prof.disable()
    t_prof = (time.perf_counter() - t0) / n
    comp = components(services, token, ids, n)
    # The same payments through each projection (what the server's follower thread does after them).
    events = services.projections.head() - head0
    proj_times = {}
    for name in services.projections.projections:
        t0 = time.perf_counter()
        services.projections.catch_up([name])
        proj_times[name] = (time.perf_counter() - t0) / max(1, events)
    services.close()

    print(f"database: {args.db}   machine: {c.machine()}")
    print(f"GET /healthz (ASGI in-process, one thread):    {t_health * 1000:7.3f} ms/request")
    print(f"record-payment (ASGI in-process, one thread):  {t_plain * 1000:7.3f} ms/request  -> {1 / t_plain:7.0f}/s max on one core")
    print(f"record-payment under cProfile:                 {t_prof * 1000:7.3f} ms/request")
    if comp:
        print("\nthe steps of one record-payment timed one by one, without the profiler (ms per request):")
        print(f"  {'step':46s} {'wall':>7s} {'cpu':>7s}")
        for label, (wall, cpu) in comp.items():
            print(f"  {label:46s} {wall / n * 1000:7.3f} {cpu / n * 1000:7.3f}")
        total = sum(w for w, _ in comp.values()) / n
        print(f"  {'sum of the steps':46s} {total * 1000:7.3f}")
        print(f"  {'rest of the HTTP request (ASGI, FastAPI, ...)':46s} {(t_plain - total) * 1000:7.3f}  (wall, by difference)")
    print()
    for name, per_event in proj_times.items():
        print(f"projection {name!r} catching up on those payments:   {per_event * 1000:7.3f} ms/event")
    stats = pstats.Stats(prof)
    # Cumulative time of the functions that matter, as a share of the profiled total.
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    wanted = [
        ("deps.py", "current_actor", "authenticate (API key, remembered)"),
        ("service.py", "execute", "Collections.execute (load+decide+save)"),
        ("service.py", "get_receivable", "  load: repository.get"),
        ("application.py", "save", "  save: Application.save"),
        ("application.py", "take_snapshot", "  snapshot (every N versions)"),
        ("receivable.py", "record_payment", "  decide: Receivable.record_payment"),
        ("service.py", "_context", "  _context (clock, policy)"),
        ("present.py", "receivable", "present.receivable (response model)"),
        ("routing.py", "serialize_response", "FastAPI serialize_response"),
        ("utils.py", "request_body_to_args", "FastAPI body validation"),
    ]
    per_req = {}
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for fname, fn, label in wanted:
            if filename.endswith("/" + fname) and func == fn:
                per_req[label] = per_req.get(label, 0.0) + ct
    waits = sum(nc for (filename, _l, func), (_cc, nc, *_rest) in stats.stats.items()  # type: ignore[attr-defined]
                if func == "wait" and "psycopg" in filename)
    if waits:
        print(f"\nnetwork waits per record-payment (psycopg Connection.wait, under the profiler): {waits / n:.1f}")
    print("\nwhere one request goes (cumulative, under the profiler, ms per request):")
    for _f, _fn, label in wanted:
        if label in per_req:
            print(f"  {label:45s} {per_req[label] / n * 1000:7.3f}")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


def components(services: Any, token: str, ids: list[str], n: int) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of each step of the use case, called directly (n payments)."""
    import uuid
    from datetime import date

    try:
        from collections_es.application.service import Request
    except ImportError as exc:  # the tree moved on: skip this part, keep the rest
        print(f"(step timing skipped: {exc})")
        return {}
    steps = {
        "authenticate (API key; remembered 2 s)": [0.0, 0.0],
        "load (repository.get; cache or store)": [0.0, 0.0],
        "decide (Receivable.record_payment)": [0.0, 0.0],
        "save (Application.save: insert [+ snapshot])": [0.0, 0.0],
    }
    names = list(steps)

    def step(k: int, fn: Any) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        acc = steps[names[k]]
        acc[0] += time.perf_counter() - w0
        acc[1] += time.process_time() - c0
        return out

    paid_on = date.fromisoformat(c.PAID_ON)
    try:
        for i in range(n):
            rid = uuid.UUID(ids[i % len(ids)])
            actor = step(0, lambda: services.keys.authenticate(token))
            agg = step(1, lambda: services.app.get_receivable(rid))
            ctx = services.app._context(Request(actor))
            step(2, lambda: agg.record_payment(ctx, amount="0.01", method="bank_transfer", paid_on=paid_on, reference=f"STEP-{i}"))
            step(3, lambda: services.app.save(agg))
    except Exception as exc:  # noqa: BLE001 - internal APIs may change under us
        print(f"(step timing skipped: {type(exc).__name__}: {exc})")
        return {}
    return {k: (v[0], v[1]) for k, v in steps.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--requests", type=int, default=300, help="timed and profiled requests each (default 300)")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--receivables", type=int, default=200,
                   help="payments rotate over these (default 200, as bench/http_commands.py; fewer receivables "
                        "means longer histories, so more events replayed per load between snapshots)")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    p.add_argument("--pg-url", default=c.DEFAULT_PG_URL)
    args = p.parse_args()
    _inline_threadpool()
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        if args.db == "sqlite":
            asyncio.run(run(args, f"sqlite:///{tmp}/collections.db"))
            return 0
        reason = c.postgres_reason(args.pg_url)
        if reason:
            print(f"PostgreSQL unavailable: {reason}")
            return 2
        with c.pg_schema(args.pg_url, "benchprof") as schema:
            asyncio.run(run(args, f"{args.pg_url}?schema={schema}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
