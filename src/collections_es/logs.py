"""Logs: one configuration, structlog over the standard library's logging (ADR 0047).

`configure` is called once by every command of the CLI (`serve` included) with the
settings' COLLECTIONS_LOG_LEVEL and COLLECTIONS_LOG_FORMAT: `json` writes one JSON
object a line, `console` a readable line; by default json unless stderr is a terminal.
Every record, ours (`logging.getLogger(__name__)`, `extra={...}` fields kept) and the
libraries' (uvicorn, SQLAlchemy, eventsourcing), goes through the same processors:

- the context bound for this request or run (`bound`): `correlation_id` per HTTP request
  (`api.app.CorrelationId`), `scheduler_run` per scheduler tick or sandbox advance;
- level, logger name, an ISO 8601 UTC timestamp;
- a last redaction of every free-text value with `application.pii.Redactor` (e-mail
  addresses and phone numbers by their shape), after exceptions are formatted.

What is logged is chosen so that it carries no personal data in the first place:
commands by name, outcome and aggregate id; requests by method, route path, status and
time; never a request body, a query string or a field value.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import structlog

from .application.pii import Redactor

FORMATS = ("json", "console")
# Values we write that are never free text: ids, names of things, numbers, instants.
SAFE_KEYS = frozenset(
    {"timestamp", "level", "logger", "correlation_id", "scheduler_run", "method", "path", "status",
     "duration_ms", "command", "outcome", "aggregate_id", "rule_id", "fired", "skipped"}
)
_OURS = "_collections_es_handler"


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (a test runner may swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Every free-text value with e-mail addresses and phone numbers masked (and no colour codes)."""
    event_dict.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
    redactor = Redactor()
    for key, value in event_dict.items():
        if isinstance(value, str) and key not in SAFE_KEYS:
            event_dict[key] = redactor.text(value)
    return event_dict


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure(level: str = "INFO", fmt: str | None = None, stream: IO[str] | None = None) -> logging.Handler:
    """Route every log record to `stream` (default: stderr) as JSON lines or console lines.
    Calling it again replaces the handler it installed before. Returns that handler."""
    if fmt is None:
        target = stream or sys.stderr
        fmt = "console" if getattr(target, "isatty", lambda: False)() else "json"
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(formatter)
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def unconfigure(handler: logging.Handler) -> None:
    """Take a handler `configure` installed off the root logger (tests)."""
    logging.getLogger().removeHandler(handler)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Carry `values` (a correlation id, a scheduler run's id) on every log line in this context."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def get(name: str) -> Any:
    """A structlog logger writing through the standard library (so through `configure`)."""
    return structlog.stdlib.get_logger(name)
