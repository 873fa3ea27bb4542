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
    uvicorn.run(create_app(services, follow=True, schedule=True, notify=True), host=host, port=port, log_level="info")


@app.command()
def project(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to run (default: all)")] = None,
    once: Annotated[bool, typer.Option(help="Catch up once and exit")] = False,
) -> None:
    """Run the projections as a separate process, following the event log."""
    services = _services()
    unknown = set(names or []) - set(services.projections.projections)
    if unknown:
        typer.echo(f"error: unknown projection(s) {', '.join(sorted(unknown))}", err=True)
        raise typer.Exit(2)
    while True:
        done = services.projections.catch_up(names or None)
        if once:
            typer.echo(f"processed {done} notifications")
            return
        time.sleep(services.settings.projection_poll_seconds)


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
def notify(
    once: Annotated[bool, typer.Option(help="One pass over the due messages, then exit")] = False,
) -> None:
    """Run the notification sender: follow the outbox, send due messages, retry with backoff."""
    services = _services()
    while True:
        for attempt in services.notifier.run_once():
            typer.echo(f"{attempt.id}\t{attempt.status}" + (f"\t{attempt.error}" if attempt.error else ""))
        if once:
            return
        time.sleep(services.settings.notify_interval_seconds)


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
