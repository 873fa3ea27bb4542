"""The command line: the same application service as the API."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import Settings, get_settings
from .domain.errors import CollectionsError

app = typer.Typer(help="collections-es: event-sourced receivables collection.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys: add, list, revoke; a cipher key for encryption at rest; a signing key for evidence bundles.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
policy_app = typer.Typer(help="The collection policy: preview a policy file before adopting it.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def _settings() -> Settings:
    """The settings, or exit 2 naming each bad variable (never echoing its value: it may be a secret)."""
    from pydantic import ValidationError

    try:
        settings = get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"error: {name}: {message}" if not message.startswith(name) else f"error: {message}", err=True)
        raise typer.Exit(2) from None
    _configure_logs(settings, "WARNING")
    return settings


def _configure_logs(settings: Settings, default_level: str) -> None:
    """The one log configuration (ADR 0047): COLLECTIONS_LOG_LEVEL, else `default_level` (INFO for
    the long-running processes, WARNING for one-shot commands, whose output is their result)."""
    from . import logs

    logs.configure(settings.log_level or default_level, settings.log_format)


def _services(settings: Settings | None = None):  # noqa: ANN202 - lazy import keeps --help fast
    from .bootstrap import build

    try:
        return build(settings or _settings())
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API worker processes (PostgreSQL with "
                                         "COLLECTIONS_PROJECTIONS=external only)")] = 1,
) -> None:
    """Run the API. On SQLite, or with embedded projections, one process runs everything (API,
    projections, scheduler, senders); on PostgreSQL with COLLECTIONS_PROJECTIONS=external the API
    only, in WORKERS processes, beside `project`, `scheduler`, `notify` and `deliver` (ADR 0062)."""
    import uvicorn

    from .adapters.persistence import Database, DatabaseUrlError

    settings = _settings()
    _configure_logs(settings, "INFO")
    try:
        database = Database.parse(settings.database_url)
    except DatabaseUrlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    role, runs = _serve_role(settings, database)
    if workers > 1 and role != "api":
        typer.echo("error: --workers needs PostgreSQL and COLLECTIONS_PROJECTIONS=external (the projection loop, "
                   "scheduler and senders of an embedded server must run once)", err=True)
        raise typer.Exit(2)
    typer.echo(f"collections-es on http://{host}:{port} ({database.url.get_backend_name()})", err=True)
    _announce(role, runs, workers)
    typer.echo(
        f"console: http://{host}:{port}/console/ — sign in with an API key; make one with\n"
        "  collections-es keys add --actor NAME --role ROLE\n"
        "  (roles: collector, supervisor, legal, sales, customer_service, auditor, service)",
        err=True,
    )
    # Uvicorn's own logging set-up is left out (log_config=None): its records go through ours, and
    # its access log is replaced by the request lines of api.app.CorrelationId (no query strings).
    if workers > 1:
        # Each worker process builds its own services (api.app.api_worker); uvicorn restarts one that
        # dies. Building them takes a few seconds on a busy machine: uvicorn's 5 s start-up check is lengthened.
        uvicorn.run("collections_es.api.app:api_worker", factory=True, workers=workers, host=host, port=port,
                    log_config=None, access_log=False, timeout_worker_healthcheck=60)
        return
    from .api.app import create_app

    services = _services(settings)
    services.role, services.runs = role, runs
    embedded = role == "embedded"
    uvicorn.run(create_app(
        services, follow="projections" in services.runs, schedule=embedded, notify=embedded
    ), host=host, port=port, log_config=None, access_log=False)


def _serve_role(settings: Settings, database) -> tuple[str, tuple[str, ...]]:  # noqa: ANN001
    """What `serve` runs (ADR 0062): on PostgreSQL with external projections the API only (the
    projections, scheduler and senders are processes of their own); otherwise, and always on
    SQLite, everything in one process, the projection loop only when projections are embedded."""
    external = settings.projections == "external"
    if database.is_postgres and external:
        return "api", ("api",)
    loops = ("api", *(() if external else ("projections",)), "scheduler", "notify", "deliver")
    return "embedded", loops


def _role_line(role: str, runs: tuple[str, ...], workers: int = 1) -> str:
    """The line each long-running process starts with: what it is and what it runs (ADR 0062)."""
    if role == "api":
        many = f" in {workers} worker processes" if workers > 1 else ""
        return f"role: api{many} (projections, scheduler and senders run as processes of their own)"
    if role == "embedded":
        return f"role: embedded (one process runs {', '.join(runs)})"
    return f"role: {role} ({', '.join(runs)})"


def _announce(role: str, runs: tuple[str, ...], workers: int = 1) -> None:
    """Say what this process is: its first line on stderr, and a `process started` log record
    with its `role` (JSON logs carry it as a field)."""
    import logging

    line = _role_line(role, runs, workers)
    typer.echo(line, err=True)
    logging.getLogger("collections_es.process").info("process started: %s", line.removeprefix("role: "),
                                                     extra={"role": role})


def _stop_on_sigterm():  # noqa: ANN202
    """An event set by SIGTERM (and Ctrl-C): the worker loops end their round and let go."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _heartbeat(settings: Settings, role: str):  # noqa: ANN202
    from .adapters.heartbeat import Heartbeat

    return Heartbeat(role, settings.health_file)


def _projection_names(services, names: list[str] | None) -> list[str]:  # noqa: ANN001
    unknown = set(names or []) - set(services.projections.projections)
    if unknown:
        known = ", ".join(services.projections.projections)
        typer.echo(f"error: unknown projection(s) {', '.join(sorted(unknown))}; known: {known}", err=True)
        raise typer.Exit(2)
    return list(names or services.projections.projections)


@app.command()
def project(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to run (default: all)")] = None,
    once: Annotated[bool, typer.Option(help="Catch up once and exit")] = False,
) -> None:
    """Run the projections as a separate process, following the event log.

    On PostgreSQL one worker per projection is active at a time (an advisory
    lock elects it); others stand by and take over when it stops.
    """
    services = _services()
    wanted = _projection_names(services, names)
    if once:
        done = services.projections.catch_up(wanted)
        typer.echo(f"processed {done} notifications")
        _exit_if_stuck(services, wanted)
        return
    _configure_logs(services.settings, "INFO")
    stop = _stop_on_sigterm()
    services.role, services.runs = "project", tuple(wanted)
    heartbeat = _heartbeat(services.settings, "project")
    elects = "one leader per read model, elected by advisory locks" if services.database.is_postgres else "no election on SQLite"
    _announce("project", (elects,))
    typer.echo(f"following the event log for: {', '.join(wanted)}", err=True)

    def beat(mine: list[str]) -> None:
        heartbeat.beat("leader" if mine else "standby")

    try:
        services.projections.follow(stop, wanted, poll=services.settings.projection_poll_seconds, beat=beat)
    finally:
        heartbeat.clear()
        services.close()


@app.command()
def rebuild(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild (default: all)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Notifications per transaction")] = 5000,
) -> None:
    """Rebuild projections together from the whole event log, with a progress bar: built in shadow
    tables while the live views keep answering, swapped in when caught up (ADR 0065)."""
    services = _services()
    try:
        wanted = _projection_names(services, names)
        head = services.projections.head()
        started = time.perf_counter()
        with typer.progressbar(length=max(head, 1), label=", ".join(wanted), file=sys.stderr) as bar:
            reached = 0

            def progress(position: int, _head: int) -> None:
                nonlocal reached
                bar.update(max(0, min(position, head) - reached))
                reached = max(reached, min(position, head))

            done = services.projections.rebuild(wanted, batch_size=batch_size, progress=progress)
        seconds = time.perf_counter() - started
        rate = done / seconds if seconds else 0.0
        typer.echo(f"rebuilt {', '.join(wanted)}: {done} notifications in {seconds:.1f} s ({rate:,.0f}/s)")
        _exit_if_stuck(services, wanted)
    finally:
        services.close()


def _exit_if_stuck(services: Any, names: list[str]) -> None:
    """Name each read model stuck on an event it cannot apply (ADR 0060) and exit 1."""
    stuck = services.projections.stuck(names)
    for name, failure in sorted(stuck.items()):
        typer.echo(
            f"error: {name} is stuck at position {failure['position']} ({failure['event_type']} of "
            f"{failure['aggregate_id']}): {failure['error']}",
            err=True,
        )
    if stuck:
        raise typer.Exit(1)


@app.command()
def tick() -> None:
    """Fire every timer due now, once, and print what fired."""
    services = _services()
    for fired in services.scheduler.tick():
        typer.echo(f"{fired.scheduled_for.isoformat()}\t{fired.receivable_id}\t{fired.command}\t{fired.outcome}")


@app.command()
def scheduler(
    interval: Annotated[float | None, typer.Option(
        help="Seconds between ticks (default COLLECTIONS_SCHEDULER_INTERVAL_SECONDS)")] = None,
) -> None:
    """Run the scheduler as a separate process: tick every INTERVAL seconds while it leads.

    On PostgreSQL the schedulers elect one leader through an advisory lock; the others stand
    by and one takes over within COLLECTIONS_LEADER_POLL_SECONDS when it dies (ADR 0062).
    The leader also takes the periodic signed checkpoint when one is due (ADR 0061)."""
    from .adapters.checkpoints import CheckpointTaken
    from .application.checkpoints import CheckpointError
    from .bootstrap import elected_loop

    services = _services()
    _configure_logs(services.settings, "INFO")
    stop = _stop_on_sigterm()
    services.role, services.runs = "scheduler", ("scheduler",)
    heartbeat = _heartbeat(services.settings, "scheduler")
    elects = "elected by an advisory lock" if services.database.is_postgres else "no election on SQLite"
    _announce("scheduler", (elects,))

    def tick() -> None:
        for fired in services.scheduler.tick():
            typer.echo(f"{fired.scheduled_for.isoformat()}\t{fired.receivable_id}\t{fired.command}\t{fired.outcome}")
        try:  # the periodic signed checkpoint, when one is due (ADR 0061)
            services.checkpoints.take_if_due()
        except CheckpointTaken:
            pass
        except CheckpointError as exc:
            typer.echo(f"error: no checkpoint taken: {exc}", err=True)

    try:
        elected_loop(services, "scheduler", tick, interval=interval or services.settings.scheduler_interval_seconds,
                     stop=stop, heartbeat=heartbeat)
    finally:
        heartbeat.clear()
        services.close()


def _event_log(settings: Settings | None = None, *, check_key: bool = True):  # noqa: ANN202
    """The event store and the database engine, opened to read only: no policy
    installed, no projection run, so even a store whose events no longer decode
    can be verified and exported. Its settings must stay those `bootstrap.build` uses.
    `check_key`: first make sure COLLECTIONS_CIPHER_KEY fits the stored events (exit 2 if not)."""
    from .adapters.cipher import check_event_store
    from .adapters.persistence import Database
    from .application.clock import SystemClock
    from .application.service import Collections

    settings = settings or _settings()
    try:
        database = Database.parse(settings.database_url)
        engine = database.make_engine(settings.cipher_key, settings.db_pool_size)
        log = Collections(
            database.event_store_env(settings.cipher_key, settings.db_pool_size),
            clock=SystemClock(),
            snapshot_interval=settings.snapshot_interval,
        )
        if check_key:
            try:
                check_event_store(log)
            except CollectionsError:
                log.close()
                engine.dispose()
                raise
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - the database is unreachable or refuses us
        typer.echo(f"error: cannot open the event store: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    return log, engine


def _instant(value: str | None, option: str):  # noqa: ANN202
    from datetime import datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: {option} '{value}' is not an ISO 8601 instant (e.g. 2026-03-01T09:00:00Z)", err=True)
        raise typer.Exit(2) from None
    if parsed.tzinfo is None:
        typer.echo(f"error: {option} '{value}' needs a time zone (e.g. Z or +08:00)", err=True)
        raise typer.Exit(2)
    return parsed


@app.command()
def verify(
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Compare with this exported checkpoint (default: the latest stored one)")] = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="With --checkpoint: the public key (PEM) to check it with (default: its own)")] = None,
) -> None:
    """Walk every hash chain in the event log and compare it with the latest signed checkpoint;
    exit 1 and print the first break when one is found."""
    from projections.receivables import ProjectedVersions

    from .adapters.checkpoints import SqlCheckpoints
    from .adapters.signing import Signer
    from .application import audit
    from .application.checkpoints import Checkpoints, load_document

    settings = _settings()
    # No key check first: verify reports every event that does not decode (a damaged first
    # event must not hide the rest); when none decodes, the hint below names the key.
    log, engine = _event_log(settings, check_key=False)
    try:
        if checkpoint is not None:
            try:
                compared, key = load_document(checkpoint.read_bytes(),
                                              public_key.read_text(encoding="ascii") if public_key else None)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                typer.echo(f"error: {checkpoint} is not a checkpoint document: {type(exc).__name__}: {exc}", err=True)
                raise typer.Exit(2) from None
            problems = [f"checkpoint {compared.number} ({checkpoint.name}): {p}" for p in compared.problems(key)]
            key_known = key is not None
        else:
            signer = Signer.from_setting(settings.signing_key)
            kept = Checkpoints(log, SqlCheckpoints(engine, create=False), log.clock, signer)
            compared = kept.latest()
            problems = kept.sequence_problems(compared) if compared is not None else []
            key_known = signer is not None
        report = audit.verify(log, ProjectedVersions(engine), checkpoint=compared, checkpoint_problems=problems,
                              signature_checked=key_known)
    finally:
        log.close()
        engine.dispose()
    typer.echo(
        f"checked {report.checked_events} events of {report.checked_aggregates} aggregates "
        f"(log up to {report.up_to}; read model {'compared' if report.read_model_compared else 'not found'})"
    )
    if report.checkpoint is not None:
        typer.echo(f"checkpoint {report.checkpoint['number']} (log up to {report.checkpoint['up_to']}, "
                   f"{report.checkpoint['chains']} chains): {'compared' if report.checkpoint['compared'] else 'NOT trusted'}")
        if not key_known:
            typer.echo("note: no public key at hand (COLLECTIONS_SIGNING_KEY, or --public-key with --checkpoint): "
                       "the checkpoint's signature was not checked", err=True)
    else:
        typer.echo("no signed checkpoint yet: a re-hashed tail or deleted last events cannot be seen", err=True)
    if report.ok:
        typer.echo("ok: every hash chain is intact")
        if report.up_to == 0:
            typer.echo("note: the event log is empty; is DATABASE_URL the right database?", err=True)
        return
    first = report.first_break
    assert first is not None
    if report.checked_events and all(b.kind == audit.UNDECODABLE for b in report.breaks) and (
        report.break_count == report.checked_events
    ):
        typer.echo(
            "note: no stored event decodes; is COLLECTIONS_CIPHER_KEY the key they were written with "
            "(or set when the events are not encrypted)?",
            err=True,
        )
    typer.echo(f"BROKEN: {report.break_count} break(s); the first:", err=True)
    typer.echo(
        f"  {first.kind} at {first.aggregate_type or 'aggregate'} {first.aggregate_id} version {first.version}"
        f" (notification {first.notification_id}): {first.detail}",
        err=True,
    )
    raise typer.Exit(1)


@app.command()
def checkpoint(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the checkpoint document (JSON) here")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Export the latest checkpoint instead of taking one")] = False,
) -> None:
    """Take a signed checkpoint of every hash chain's head now (needs COLLECTIONS_SIGNING_KEY), or with
    --latest export the last one; keep the document where the database's writers cannot change it."""
    import json

    from .adapters.checkpoints import CheckpointTaken
    from .application.checkpoints import CheckpointError

    services = _services()
    try:
        if latest:
            taken = services.checkpoints.latest()
            if taken is None:
                typer.echo("error: no checkpoint has been taken yet", err=True)
                raise typer.Exit(1)
        else:
            try:
                taken = services.checkpoints.take()
            except (CheckpointError, CheckpointTaken) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
        typer.echo(f"checkpoint {taken.number}\t{taken.header()['taken_at']}\tlog up to {taken.up_to}\t"
                   f"{taken.chains} chains\troot {taken.root}")
        if out is not None:
            document = taken.document(services.checkpoints.public_key_pem)
            out.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    finally:
        services.close()


@app.command()
def export(
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout")],
    format: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",  # noqa: A002
    from_: Annotated[str | None, typer.Option("--from", help="Events at or after this instant (with a zone)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Events before this instant (with a zone)")] = None,
) -> None:
    """Write every event of the log, oldest first, as JSON lines or CSV (the same as GET /audit/export)."""
    from .application import audit

    if format not in audit.SERIALISERS:
        typer.echo(f"error: --format must be one of {', '.join(audit.SERIALISERS)}", err=True)
        raise typer.Exit(2)
    since, until = _instant(from_, "--from"), _instant(to, "--to")
    if since is not None and until is not None and since > until:
        typer.echo("error: --from must not be after --to", err=True)
        raise typer.Exit(2)
    log, engine = _event_log()
    try:
        chunks = audit.chunks(audit.SERIALISERS[format](audit.export_events(log, since=since, until=until)))
        if output == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        else:
            written = 0
            with open(output, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
                    written += len(chunk)
            typer.echo(f"wrote {written} bytes to {output}", err=True)
    except OSError as exc:
        typer.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        log.close()
        engine.dispose()


def _progress_bar():  # noqa: ANN202 - rich is imported only when a terminal shows it
    """A rich progress bar on stderr when it is a terminal; None otherwise (logs stay clean)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )


@app.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help="customers, receivables or payments")],
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row (UTF-8)", exists=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and say what would happen; write nothing")] = False,
) -> None:
    """Import customers, receivables or payments from a CSV file: every line is validated
    first, and one bad line imports nothing (exit 1). Importing a file again changes nothing."""
    from .domain.trail import Actor
    from .imports import KINDS, import_csv

    if kind not in KINDS:
        typer.echo(f"error: no import of '{kind}'; kinds: {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    settings = _settings()
    try:
        size = file.stat().st_size
        stream = open(file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    if size > settings.import_max_bytes:
        stream.close()
        typer.echo(f"error: {file} has {size} bytes; the limit is {settings.import_max_bytes} (COLLECTIONS_IMPORT_MAX_BYTES)", err=True)
        raise typer.Exit(2)
    services = _services(settings)
    bar = _progress_bar()
    tasks: dict[str, object] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if bar is None:
            return
        if phase not in tasks:
            tasks[phase] = bar.add_task("validating (bytes)" if phase == "validate" else "writing (lines)", total=total or None)
        bar.update(tasks[phase], completed=done, total=total or None)

    try:
        actor = Actor(f"import:{file.name}"[:128], "service")
        if bar is not None:
            bar.start()
        summary = import_csv(
            services.app, actor, kind, stream, dry_run=dry_run, max_lines=settings.import_max_lines, progress=progress, size=size
        )
    finally:
        if bar is not None:
            bar.stop()
        stream.close()
        services.close()
    for line in summary.text():
        typer.echo(line, err=line.startswith(("error:", "nothing imported", "...")))
    if not summary.ok:
        raise typer.Exit(1)


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=1, max=500, help="How many customers")] = 20,
    days: Annotated[int, typer.Option(min=30, max=730, help="How many days of history, ending now")] = 120,
    seed: Annotated[int, typer.Option(help="The same seed builds the same history")] = 14,
    force: Annotated[bool, typer.Option("--force", help="Run even when the database holds receivables")] = False,
) -> None:
    """Build a realistic history in the configured database through a sandbox clock, for a first look:
    customers in several tiers and time zones, payments, promises kept and broken, a dispute, an
    installment plan, escalations, a legal referral, a write-off. Refuses a database with receivables."""
    from . import demo as scenario
    from .application.clock import SandboxClock, SystemClock

    settings = _settings()
    now = SystemClock().now()
    start = scenario.start_for(now, days)
    services = _services_with_clock(settings, SandboxClock(start))
    bar = _progress_bar()
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if bar is None:
            return
        if task is None:
            task = bar.add_task("building the demo", total=total)
        bar.update(task, completed=done)

    try:
        if bar is not None:
            bar.start()
        try:
            result = scenario.build(services, customers=customers, days=days, seed=seed, force=force, progress=progress)
        except scenario.NotEmptyError as exc:
            if bar is not None:
                bar.stop()
                bar = None
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    finally:
        if bar is not None:
            bar.stop()
        services.close()
    for line in result.text():
        typer.echo(line)


def _services_with_clock(settings: Settings, clock):  # noqa: ANN001, ANN202
    from .bootstrap import build

    try:
        return build(settings, clock=clock)
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def evidence(
    receivable: Annotated[str | None, typer.Argument(help="The receivable: its id or invoice number")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The zip to write (default: evidence-<invoice>.zip)")] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Check this bundle offline instead")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="With --check: the publisher's public key (PEM)")] = None,
) -> None:
    """Write a receivable's evidence bundle (the same as GET /receivables/{id}/evidence), or check one
    offline with --check: every file against the manifest, the hash chain, the signature (exit 1 naming
    what fails)."""
    if check is not None:
        _check_bundle(check, public_key)
        return
    if receivable is None:
        typer.echo("error: name a receivable (id or invoice number), or --check BUNDLE", err=True)
        raise typer.Exit(2)
    import uuid as _uuid

    from .application import evidence as bundles
    from .domain.receivable import receivable_id

    try:
        rid = _uuid.UUID(receivable)
    except ValueError:
        rid = receivable_id(receivable)
    services = _services()
    try:
        services.read_models("contacts_log", "outbox")
        bundle = bundles.build(services.evidence_sources(), rid, services.clock.now(), signer=services.signer)
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        services.close()
    target = out or Path(bundle.filename)
    try:
        target.write_bytes(bundle.content)
    except OSError as exc:
        typer.echo(f"error: cannot write {target}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    chain = bundle.manifest["chain"]
    signed = "signed (Ed25519)" if bundle.manifest["signature"] else "not signed (COLLECTIONS_SIGNING_KEY unset)"
    typer.echo(f"wrote {target}: {len(bundle.manifest['files'])} files, chain "
               f"{'intact' if chain['ok'] else 'BROKEN'} over {chain['checked_events']} events, {signed}")


def _check_bundle(bundle: Path, public_key: Path | None) -> None:
    from .application import evidence as bundles

    try:
        data = bundle.read_bytes()
        key = public_key.read_bytes() if public_key is not None else None
    except OSError as exc:
        typer.echo(f"error: cannot read {exc.filename}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    report = bundles.check(data, key)
    for line in report.summary:
        typer.echo(line)
    if report.ok:
        typer.echo(f"ok: {bundle} is sound")
        return
    typer.echo(f"FAILED: {len(report.problems)} problem(s) in {bundle}:", err=True)
    for problem in report.problems:
        typer.echo(f"  {problem}", err=True)
    raise typer.Exit(1)


@app.command()
def notify(
    once: Annotated[bool, typer.Option(help="One pass over the due messages, then exit")] = False,
) -> None:
    """Run the notification sender: follow the outbox, send due messages, retry with backoff."""
    services = _services()
    if once:
        try:
            for attempt in services.notifier.run_once():
                typer.echo(f"{attempt.id}\t{attempt.status}" + (f"\t{attempt.error}" if attempt.error else ""))
        finally:
            services.close()
        return

    def send() -> None:
        for attempt in services.notifier.run_once():
            typer.echo(f"{attempt.id}\t{attempt.status}" + (f"\t{attempt.error}" if attempt.error else ""))

    _sender_loop(services, "notify", send, services.settings.notify_interval_seconds)


def _sender_loop(services, role: str, work, interval: float) -> None:  # noqa: ANN001
    """A sender process (`notify`, `deliver`): every INTERVAL seconds a pass over what is due,
    beside any number of others (rows are claimed FOR UPDATE SKIP LOCKED on PostgreSQL; ADR 0063);
    its heartbeat says `running` after each pass; SIGTERM ends it after the pass under way."""
    import logging

    _configure_logs(services.settings, "INFO")
    stop = _stop_on_sigterm()
    services.role, services.runs = role, (role,)
    heartbeat = _heartbeat(services.settings, role)
    claims = "rows claimed FOR UPDATE SKIP LOCKED" if services.database.is_postgres else "rows claimed with a lease"
    _announce(role, (claims,))
    try:
        while not stop.is_set():
            heartbeat.beat("running")
            try:
                work()
            except Exception:
                logging.getLogger(__name__).exception("%s pass failed; retrying", role)
            heartbeat.beat("running")
            stop.wait(interval)
    finally:
        heartbeat.clear()
        services.close()


@app.command()
def deliver(
    once: Annotated[bool, typer.Option(help="One pass over the due deliveries, then exit")] = False,
) -> None:
    """Run the webhook sender: follow the event log, deliver due webhooks, retry with backoff (ADR 0045)."""
    services = _services()

    def deliver_due() -> None:
        for attempt in services.webhooks.sender.run_once():
            extra = "".join(f"\t{v}" for v in (attempt.http_status, attempt.error) if v is not None)
            typer.echo(f"{attempt.id}\t{attempt.status}{extra}")

    if once:
        try:
            deliver_due()
        finally:
            services.close()
        return
    _sender_loop(services, "deliver", deliver_due, services.settings.webhooks_interval_seconds)


WORKER_ROLES = ("project", "scheduler", "notify", "deliver")


@app.command()
def health(
    role: Annotated[str, typer.Argument(help="project, scheduler, notify or deliver")],
    max_age: Annotated[float, typer.Option(help="Seconds a heartbeat may be old")] = 60.0,
) -> None:
    """A worker process's health check (the containers' healthcheck): exit 0 when its loop beat within
    MAX_AGE seconds and the process lives (a scheduler leading or standing by), else 1 saying why.
    Reads the heartbeat file only (COLLECTIONS_HEALTH_FILE): no database, no settings beyond it."""
    import os

    from .adapters import heartbeat

    if role not in WORKER_ROLES:
        typer.echo(f"error: no worker role '{role}'; roles: {', '.join(WORKER_ROLES)} (the API: GET /readyz)", err=True)
        raise typer.Exit(2)
    path = os.environ.get("COLLECTIONS_HEALTH_FILE")
    found = heartbeat.check(role, Path(path) if path else None, max_age=max_age)
    typer.echo(found.text, err=not found.ok)
    if not found.ok:
        raise typer.Exit(1)


@app.command()
def docs(out: Annotated[Path, typer.Option(help="Docs folder")] = Path("docs")) -> None:
    """Regenerate the docs made from the code: lifecycle, commands, access, compliance rules,
    and the route table of docs/api.md (the rest of that file is written by hand)."""
    from .api import api_docs, route_access
    from .application import commands
    from .domain import compliance, lifecycle

    out.mkdir(parents=True, exist_ok=True)
    generated = {
        "lifecycle.md": lifecycle.render_docs(),
        "commands.md": commands.render_docs(),
        "access.md": route_access.render_docs(),
        "compliance-rules.md": compliance.render_docs(),
    }
    for name, text in generated.items():
        (out / name).write_text(text, encoding="utf-8")
    written = [out / name for name in generated]
    contract = out / "api.md"
    if contract.is_file():
        contract.write_text(api_docs.with_routes(contract.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(contract)
    else:
        typer.echo(f"{contract} not found: its route table was not written", err=True)
    typer.echo("wrote " + ", ".join(str(path) for path in written))


@keys_app.command("cipher")
def keys_cipher() -> None:
    """Print a new AES-256 key for COLLECTIONS_CIPHER_KEY (encryption at rest; ADR 0030)."""
    from .adapters.cipher import new_key

    typer.echo(new_key())
    typer.echo(
        "Set it as COLLECTIONS_CIPHER_KEY for every process (serve, project, scheduler, notify, verify, export)\n"
        "before the database's first start, and keep it safe: the data cannot be read without it.\n"
        "It cannot be added to an existing unencrypted database, nor changed later (README, Operations).",
        err=True,
    )


@keys_app.command("signing")
def keys_signing() -> None:
    """Print a new Ed25519 private key for COLLECTIONS_SIGNING_KEY (signed evidence bundles; ADR 0046)."""
    from .adapters.signing import Signer, load_private_key, new_key

    key = new_key()
    typer.echo(key)
    typer.echo(
        "Set it as COLLECTIONS_SIGNING_KEY where bundles are made (serve, evidence) and keep it secret.\n"
        "Its public key, to hand to whoever checks bundles (also at GET /audit/public-key):\n"
        + Signer(load_private_key(key)).public_pem,
        err=True,
    )


@keys_app.command("add")
def keys_add(
    actor: Annotated[str, typer.Option(help="Who the key acts as")],
    role: Annotated[str, typer.Option(help="service, collector, supervisor, legal, sales, customer_service, auditor")],
) -> None:
    """Create an API key and print its token (shown once; only its hash is stored)."""
    services = _services()
    try:
        token = services.keys.add(actor, role, services.clock.now())
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their tokens)."""
    services = _services()
    for key in services.keys.list():
        state = f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{key.actor}\t{key.role}\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The id shown by `keys list`")]) -> None:
    """Revoke an API key; effective at once."""
    services = _services()
    try:
        services.keys.revoke(key_id, services.clock.now())
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"revoked {key_id}")




@policy_app.command("simulate")
def policy_simulate(
    file: Annotated[Path, typer.Argument(help="A policy file (TOML), not adopted")],
    customer: Annotated[str, typer.Option("--customer", help="The customer whose open receivables are planned")],
    horizon_days: Annotated[int, typer.Option(min=1, max=3660, help="How far ahead to plan, in days")] = 400,
    output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Show the dated plan each open receivable of CUSTOMER would follow under FILE, beside today's."""
    import json

    from .adapters.policy_file import load_policy
    from .api.present import simulation
    from .domain.trail import Actor

    if output not in ("text", "json"):
        typer.echo("error: --format is text or json", err=True)
        raise typer.Exit(2)
    try:
        candidate = load_policy(file)
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    services = _services()
    try:
        result = simulation(
            services.app.simulate_policy(Actor("cli", "supervisor"), candidate, customer, horizon_days=horizon_days)
        )
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        services.close()
    if output == "json":
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    typer.echo(f"customer {result.customer_id}: plans from {result.since.isoformat()} to {result.until.isoformat()}")
    if not result.receivables:
        typer.echo("no open receivables")
    for r in result.receivables:
        mark = "changed" if r.changed else "unchanged"
        typer.echo(f"\n{r.invoice_number} ({r.state}, balance {r.balance} {r.currency}, due {r.due_on}): {mark}")
        for label, plan in (("today", r.current), (str(file), r.candidate)):
            typer.echo(f"  {label}: policy {plan.policy_version}, strategy {plan.strategy or '(none)'}")
            for step in plan.steps:
                typer.echo(f"    {step.at.isoformat()}  {step.kind:<20} {step.command} -> {step.state_after}")
            if not plan.steps:
                typer.echo("    (nothing time-driven)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
