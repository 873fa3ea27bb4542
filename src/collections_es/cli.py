"""The command line: the same application service as the API."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from .config import Settings, get_settings
from .domain.errors import CollectionsError

app = typer.Typer(help="collections-es: event-sourced receivables collection.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: add, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _services(settings: Settings | None = None):  # noqa: ANN202 - lazy import keeps --help fast
    from .bootstrap import build

    try:
        return build(settings or get_settings())
    except CollectionsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Run the API with the projections in one process (the embedded default)."""
    import uvicorn

    from .api.app import create_app

    services = _services()
    typer.echo(f"collections-es on http://{host}:{port} ({services.database.url.get_backend_name()})", err=True)
    uvicorn.run(create_app(services, follow=services.settings.projections == "embedded", schedule=True), host=host, port=port, log_level="info")


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
        return
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"following the event log for: {', '.join(wanted)}", err=True)
    try:
        services.projections.follow(stop, wanted, poll=services.settings.projection_poll_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        services.close()


@app.command()
def rebuild(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild (default: all)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Notifications per transaction")] = 5000,
) -> None:
    """Empty projections and rebuild them together from the whole event log, with a progress bar."""
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
    finally:
        services.close()


@app.command()
def tick() -> None:
    """Fire every timer due now, once, and print what fired."""
    services = _services()
    for fired in services.scheduler.tick():
        typer.echo(f"{fired.scheduled_for.isoformat()}\t{fired.receivable_id}\t{fired.command}\t{fired.outcome}")


@app.command()
def scheduler(
    interval: Annotated[float, typer.Option(help="Seconds between ticks")] = 30.0,
) -> None:
    """Run the scheduler as a separate process: tick every INTERVAL seconds."""
    services = _services()
    while True:
        for fired in services.scheduler.tick():
            typer.echo(f"{fired.scheduled_for.isoformat()}\t{fired.receivable_id}\t{fired.command}\t{fired.outcome}")
        time.sleep(interval)


@app.command()
def docs(out: Annotated[Path, typer.Option(help="Docs folder")] = Path("docs")) -> None:
    """Regenerate docs/lifecycle.md and docs/access.md from the code."""
    from .application import access
    from .domain import lifecycle

    out.mkdir(parents=True, exist_ok=True)
    (out / "lifecycle.md").write_text(lifecycle.render_docs(), encoding="utf-8")
    (out / "access.md").write_text(access.render_docs(), encoding="utf-8")
    typer.echo(f"wrote {out / 'lifecycle.md'} and {out / 'access.md'}")


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
