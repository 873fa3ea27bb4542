"""The audit: verify every hash chain in the stored log, and export the log.

Both read the application sequence (the notification log) in bounded pages, so
memory grows with the number of aggregates at most (verify keeps one small
record per aggregate: its last version and hash), never with the number of
events. A stored event that cannot be read is reported, never raised.

What verify checks, per event of every hash-chained aggregate (receivables,
customers, the policy book; idempotency records carry no trail and are skipped):

- the stored bytes decode (JSON, cipher, known topic, fields of its type);
- the hash recomputed over its type and fields equals its stored `hash`;
- its `prev_hash` equals the previous version's hash (the genesis hash for
  version 1);
- versions run 1, 2, 3, ... in log order with nothing missing;
- and, after the walk, no receivable's read-model row (`rm_receivables.version`)
  is ahead of its last stored version (the last events were removed).

See docs/audit.md for what each kind of break means and what cannot be seen.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.utils import resolve_topic

from ..domain.aggregate import TrailedAggregate
from ..domain.trail import GENESIS_HASH, TRAIL_FIELDS, event_hash, hashed_fields, stored_event_hash, stored_event_payload

PAGE_SIZE = 1000
MAX_BREAKS = 100
# A content whose hash does not match at its stored version is tried at the
# aggregate's other versions (and this many past the highest seen so far), to
# tell an event moved to another version (reordered) from an edited one.
REORDER_WINDOW = 64

EDITED = "edited"
DELETED = "deleted"
REORDERED = "reordered"
UNDECODABLE = "undecodable"
BROKEN_LINK = "broken_link"
# Against the latest signed checkpoint (ADR 0061): what changed since it was taken.
REHASHED = "rehashed"  # the event at the checkpointed head has another hash: the tail was rewritten
TRUNCATED = "truncated"  # the chain ends before the checkpointed head: its last events were deleted
CHAIN_DELETED = "chain_deleted"  # no event is left of a checkpointed chain
CHECKPOINT = "checkpoint"  # a checkpoint itself does not check (signature, root, sequence)
KINDS = (EDITED, DELETED, REORDERED, UNDECODABLE, BROKEN_LINK, REHASHED, TRUNCATED, CHAIN_DELETED, CHECKPOINT)



# ---- verify -------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """One place where the stored log differs from what was recorded."""

    kind: str
    aggregate_id: str
    aggregate_type: str | None
    version: int
    notification_id: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "receivable_id": self.aggregate_id if self.aggregate_type == "Receivable" else None,
            "version": self.version,
            "notification_id": self.notification_id,
            "detail": self.detail,
        }


@dataclass
class VerifyReport:
    """What verify found. `breaks` is capped; `break_count` counts them all."""

    checked_events: int = 0
    checked_aggregates: int = 0
    skipped_events: int = 0
    up_to: int = 0
    read_model_compared: bool = False
    breaks: list[Break] = field(default_factory=list)
    break_count: int = 0
    checkpoint: dict[str, Any] | None = None  # the checkpoint compared with, and whether it checked

    @property
    def ok(self) -> bool:
        return self.break_count == 0

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked_events": self.checked_events,
            "checked_aggregates": self.checked_aggregates,
            "skipped_events": self.skipped_events,
            "up_to": self.up_to,
            "read_model_compared": self.read_model_compared,
            "first_break": self.first_break.as_dict() if self.first_break else None,
            "break_count": self.break_count,
            "breaks": [b.as_dict() for b in self.breaks],
            "checkpoint": self.checkpoint,
        }


class _Chain:
    """What verify remembers of one aggregate: little, whatever its length."""

    __slots__ = ("type", "version", "last_hash", "gaps")

    def __init__(self, type_: str | None) -> None:
        self.type = type_
        self.version = 0  # the highest version seen so far
        self.last_hash: str | None = GENESIS_HASH  # None: unknown (the last event was broken)
        self.gaps: list[list[int]] | None = None  # [first missing, last missing, notification seen at]


class ReadModelVersions(Protocol):
    """The receivables read model as the audit compares it (bootstrap, the CLI and the API wire
    `projections.receivables.ProjectedVersions`)."""

    def exists(self) -> bool:
        """Whether the read model has been created at all."""

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        """(receivable id, version seen, log position) of every receivable in the read model."""


def verify(
    app: Application,
    read_model: ReadModelVersions | None = None,
    *,
    page_size: int = PAGE_SIZE,
    max_breaks: int = MAX_BREAKS,
    checkpoint: Any | None = None,
    checkpoint_problems: Iterable[str] = (),
    signature_checked: bool = True,
) -> VerifyReport:
    """Walk every hash chain in the stored log (up to its head as of now) and report the breaks.

    `read_model`, when given, is compared with the store: that is how removing the last
    events of a receivable is seen. `checkpoint` (the latest signed one, `checkpoints.Checkpoint`)
    is compared too, unless `checkpoint_problems` says it cannot be trusted (each is a break;
    `signature_checked` False when no public key was at hand to check its signature):
    each chain it names must still hold its head, so a re-hashed tail, deleted last events
    and a deleted chain are seen (ADR 0061).
    """
    verifier = _Verifier(app, max_breaks)
    problems = list(checkpoint_problems)
    for problem in problems:
        verifier.add(CHECKPOINT, "checkpoints", None, 0, None, problem)
    trusted = checkpoint is not None and checkpoint.heads is not None and not problems
    if trusted:
        verifier.expect({uuid.UUID(h.aggregate_id): h for h in checkpoint.heads})
    report = verifier.run(read_model, page_size)
    if checkpoint is not None:
        report.checkpoint = {"number": checkpoint.number, "taken_at": checkpoint.taken_at, "up_to": checkpoint.up_to,
                             "chains": checkpoint.chains, "root": checkpoint.root, "compared": trusted,
                             "signature_checked": signature_checked}
    return report


def walk_heads(
    app: Application, *, start: int = 0, seed: Iterable[tuple[uuid.UUID, str | None, int, str]] = (),
    page_size: int = PAGE_SIZE,
) -> tuple[VerifyReport, list[tuple[uuid.UUID, str | None, int, str]]]:
    """Check the log after position `start` as `verify` does, continuing from the chains'
    heads at `start` (`seed`: the last checkpoint's); the report and every chain's head
    (aggregate id, type, version, hash) at the log's head as of now. A checkpoint is this."""
    verifier = _Verifier(app, MAX_BREAKS)
    for aggregate_id, aggregate_type, version, hash_ in seed:
        chain = verifier.chain(aggregate_id, aggregate_type)
        chain.version, chain.last_hash = version, hash_
    head = app.recorder.max_notification_id() or 0
    verifier.report.up_to = max(head, start)
    for notification in _pages(app, page_size, stop=head, start=start):
        verifier.check(notification)
    report = verifier.finish(None)
    heads = [(a, c.type, c.version, c.last_hash or "") for a, c in verifier.chains.items() if c.version > 0]
    return report, heads


class _Verifier:
    def __init__(self, app: Application, max_breaks: int) -> None:
        self.app = app
        self.max_breaks = max_breaks
        self.report = VerifyReport()
        self.chains: dict[uuid.UUID | str, _Chain] = {}
        self.found: list[Break] = []
        self.expected: dict[Any, Any] = {}  # aggregate id → its head in the checkpoint compared with
        self.at_checkpoint: dict[Any, tuple[str | None, int | None]] = {}  # → (stored hash there, position)

    def expect(self, heads: dict[Any, Any]) -> None:
        self.expected = heads

    def run(self, read_model: ReadModelVersions | None, page_size: int) -> VerifyReport:
        head = self.app.recorder.max_notification_id() or 0
        self.report.up_to = head
        for notification in _pages(self.app, page_size, stop=head):
            self.check(notification)
        return self.finish(read_model)

    def finish(self, read_model: ReadModelVersions | None) -> VerifyReport:
        """After the walk: the gaps left, the read model compared, the breaks kept in log order."""
        report = self.report
        for aggregate_id, chain in self.chains.items():
            for first, last, seen_at in chain.gaps or ():
                versions = f"version {first}" if first == last else f"versions {first} to {last}"
                self.add(DELETED, aggregate_id, chain.type, first, seen_at,
                         f"{versions} missing from the store (the chain goes on at version {last + 1})")
        if read_model is not None:
            report.read_model_compared = self.compare_read_model(read_model)
        if self.expected:
            self.compare_checkpoint()
        report.checked_aggregates = len(self.chains)
        self._trim()
        report.breaks = self.found
        return report

    def add(self, kind: str, aggregate_id: Any, aggregate_type: str | None, version: int,
            notification_id: int | None, detail: str) -> None:
        self.report.break_count += 1
        self.found.append(Break(kind, str(aggregate_id), aggregate_type, version, notification_id, detail))
        if len(self.found) >= 2 * self.max_breaks:
            self._trim()

    def _trim(self) -> None:
        """Keep the first `max_breaks` breaks in log order (gaps and read-model
        breaks are found after the walk, but may lie earlier in the log)."""
        self.found.sort(key=lambda b: (b.notification_id is None, b.notification_id or 0))
        del self.found[self.max_breaks :]

    # -- one stored event ---------------------------------------------------------

    def check(self, n: Notification) -> None:
        event_class = _event_class(n.topic)
        trailed = event_class is not None and issubclass(event_class, TrailedAggregate.Event)
        aggregate_type = _aggregate_type(n.topic)
        try:
            event = self.app.mapper.to_domain_event(n)
            if trailed:
                stored_hash, prev_hash = event.hash, event.prev_hash
                recomputed = stored_event_hash(event)
                unknown = set(vars(event)) - {f.name for f in dataclasses.fields(event)}
        except Exception as exc:  # noqa: BLE001 - whatever the store holds, it is reported
            self.report.checked_events += 1
            if event_class is not None and not trailed:  # not in any chain, but still unreadable
                self.add(UNDECODABLE, n.originator_id, aggregate_type, n.originator_version, n.id, _reason(exc))
                return
            chain = self.chain(n.originator_id, aggregate_type)
            self.add(UNDECODABLE, n.originator_id, chain.type, n.originator_version, n.id, _reason(exc))
            self.advance(chain, n, None)
            return
        if not trailed:
            if "hash" in vars(event) and "prev_hash" in vars(event):  # a chained event stored under another type
                self.report.checked_events += 1
                chain = self.chain(n.originator_id, None)
                self.add(EDITED, n.originator_id, chain.type, n.originator_version, n.id,
                         f"a chained event is stored under the type {n.topic}")
                self.advance(chain, n, None)
                return
            self.report.skipped_events += 1
            return
        self.report.checked_events += 1
        chain = self.chain(n.originator_id, aggregate_type)
        version = n.originator_version
        problem: tuple[str, str] | None = None
        late = version <= chain.version
        if unknown:
            problem = (EDITED, f"the stored event has fields its type does not: {', '.join(sorted(unknown))}")
        elif recomputed != stored_hash:
            moved_from = None
            if self.report.break_count < self.max_breaks:  # bounded work on a badly damaged log
                moved_from = _version_matching(event, stored_hash, version, max(version, chain.version))
            if moved_from is not None:
                problem = (REORDERED, f"the content of version {moved_from} is stored at version {version}")
            else:
                problem = (EDITED, "the stored content does not match its hash")
        elif late:
            problem = (REORDERED, f"version {version} is stored after version {chain.version}")
        elif version == chain.version + 1 and chain.last_hash is not None and prev_hash != chain.last_hash:
            previous = "the genesis hash" if version == 1 else f"the hash of version {chain.version}"
            problem = (BROKEN_LINK, f"prev_hash is not {previous}: one of them was rewritten and re-hashed")
        if problem is not None:
            self.add(problem[0], n.originator_id, aggregate_type, version, n.id, problem[1])
        expected = self.expected.get(n.originator_id)
        if expected is not None and expected.version == version:
            self.at_checkpoint[n.originator_id] = (stored_hash, n.id)
        if late:
            _fill(chain, version)
        else:
            self.advance(chain, n, stored_hash if problem is None else None)

    def chain(self, aggregate_id: Any, aggregate_type: str | None) -> _Chain:
        chain = self.chains.get(aggregate_id)
        if chain is None:
            chain = self.chains[aggregate_id] = _Chain(aggregate_type)
        elif chain.type is None:
            chain.type = aggregate_type
        return chain

    def advance(self, chain: _Chain, n: Notification, stored_hash: str | None) -> None:
        """Move the chain to this event (its hash None when it could not be trusted)."""
        version = n.originator_version
        if version <= chain.version:
            _fill(chain, version)
            return
        if version > chain.version + 1:
            chain.gaps = [*(chain.gaps or []), [chain.version + 1, version - 1, n.id]]
        chain.version = version
        chain.last_hash = stored_hash

    # -- the checkpoint -------------------------------------------------------------

    def compare_checkpoint(self) -> None:
        """Each chain's head in the checkpoint must still be in the store, with its hash."""
        for aggregate_id, head in self.expected.items():
            chain = self.chains.get(aggregate_id)
            kind = head.aggregate_type
            if chain is None:
                self.add(CHAIN_DELETED, aggregate_id, kind, 1, None,
                         f"no event is left of this chain; the checkpoint recorded it at version {head.version}")
            elif aggregate_id in self.at_checkpoint:
                stored_hash, position = self.at_checkpoint[aggregate_id]
                if stored_hash != head.hash:
                    self.add(REHASHED, aggregate_id, kind, head.version, position,
                             f"version {head.version} has another hash than the checkpoint recorded: "
                             "the chain was rewritten up to here and re-hashed")
            elif chain.version < head.version:
                first = chain.version + 1
                versions = f"version {first}" if first == head.version else f"versions {first} to {head.version}"
                self.add(TRUNCATED, aggregate_id, kind, first, None,
                         f"{versions} deleted: the chain ends at version {chain.version}, "
                         f"the checkpoint recorded version {head.version}")
            # else: the checkpointed version is in a gap, reported as `deleted` already

    # -- the read model -----------------------------------------------------------

    def compare_read_model(self, read_model: ReadModelVersions) -> bool:
        """A receivable the read model has seen at a higher version than the store
        holds lost its last events (unless they were appended after the walk began)."""
        if not read_model.exists():
            return False
        for rid, projected, position in read_model:
            try:
                key = uuid.UUID(rid)
            except ValueError:
                continue
            chain = self.chains.get(key)
            stored = chain.version if chain is not None else 0
            if projected > stored and not self.app.recorder.select_events(key, gt=stored or None, limit=1):
                first = stored + 1
                versions = f"version {first}" if first == projected else f"versions {first} to {projected}"
                where = f"ends at version {stored}" if stored else "holds no event of it"
                self.add(DELETED, key, "Receivable", first, position,
                         f"{versions} missing: the read model saw version {projected}, the store {where}")
        return True


def verify_aggregate(app: Application, aggregate_id: uuid.UUID, *, max_breaks: int = MAX_BREAKS) -> VerifyReport:
    """The checks of `verify` on one aggregate's chain alone, read from its own sequence in
    version order (an evidence bundle's "chain"): every hash recomputed, every link, no version
    missing. Its events' log positions are not read (`notification_id` None in its breaks);
    that its last events were removed is seen only by `verify` against the read model."""
    verifier = _Verifier(app, max_breaks)
    for stored in app.recorder.select_events(aggregate_id):
        verifier.check(_unpositioned(stored))
    report = verifier.finish(None)
    report.up_to = 0
    return report


def _unpositioned(stored: StoredEvent) -> Notification:
    """A stored event read from its aggregate's sequence, as the verifier reads a notification."""
    return Notification(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
        id=None,  # type: ignore[arg-type]  # not read: the position in the log is unknown here
    )


def _fill(chain: _Chain, version: int) -> None:
    """A late version arrived: it is no longer missing."""
    remaining = []
    for first, last, seen_at in chain.gaps or ():
        if first <= version <= last:
            if first < version:
                remaining.append([first, version - 1, seen_at])
            if version < last:
                remaining.append([version + 1, last, seen_at])
        else:
            remaining.append([first, last, seen_at])
    chain.gaps = remaining or None


def _content(event: Any) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}


def _version_matching(event: Any, stored_hash: str, version: int, highest: int) -> int | None:
    """The other version of its aggregate (up to a little past the highest seen)
    at which this content matches its stored hash, if any."""
    # Exactly what the hash was taken over: optional fields holding their default stay out.
    content = hashed_fields(type(event), _content(event))
    name = type(event).__qualname__
    for candidate in range(1, highest + REORDER_WINDOW + 1):
        if candidate != version:
            content["originator_version"] = candidate
            if event_hash(name, hashed_fields(type(event), content)) == stored_hash:
                return candidate
    return None


def _reason(exc: Exception) -> str:
    """The root cause, briefly: `JSONDecodeError: Expecting value…`, `ValueError: Invalid cipher tag`."""
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
    cause = next((c for c in reversed(chain) if str(c)), chain[-1])
    return f"the stored event cannot be read: {type(cause).__name__}: {cause}"[:300]


# ---- one aggregate's chain ------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One event of one aggregate's chain, checked: its hash recomputed over its content
    matches the stored one (`hash_ok`), and it follows the event before it (`link_ok`:
    its version is the next, its `prev_hash` that event's hash, the genesis hash first)."""

    version: int
    hash_ok: bool
    link_ok: bool

    @property
    def ok(self) -> bool:
        return self.hash_ok and self.link_ok


def verify_chain(events: Iterable[Any]) -> list[Link]:
    """Check one aggregate's events (decoded, oldest first) as `verify` checks every chain,
    with the same functions of `domain.trail`: for a page that shows one receivable's trail."""
    links, previous, expected = [], GENESIS_HASH, 1
    for event in events:
        hash_ok = stored_event_hash(event) == event.hash
        link_ok = event.originator_version == expected and event.prev_hash == previous
        links.append(Link(event.originator_version, hash_ok, link_ok))
        previous, expected = event.hash, event.originator_version + 1
    return links


# ---- the log, page by page -------------------------------------------------------


def _pages(app: Application, page_size: int, *, stop: int | None = None, start: int = 0) -> Iterator[Notification]:
    """Every notification after `start` up to `stop` (default: the head as of the first call),
    read `page_size` at a time; only one page is held at once."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    head = (app.recorder.max_notification_id() or 0) if stop is None else stop
    while start < head:
        page = app.recorder.select_notifications(start, page_size, stop=head, inclusive_of_start=False)
        if not page:
            return
        yield from page
        start = page[-1].id


def _event_class(topic: str) -> type | None:
    try:
        found = resolve_topic(topic)
    except Exception:  # noqa: BLE001 - an unknown or malformed topic
        return None
    return found if isinstance(found, type) else None


def _aggregate_type(topic: str) -> str | None:
    """`collections_es.domain.receivable:Receivable.PaymentRecorded` → `Receivable`."""
    _, _, qualname = topic.partition(":")
    head, dot, _ = qualname.rpartition(".")
    return head if dot and head else None


# ---- export -------------------------------------------------------------------------

EXPORT_COLUMNS: tuple[str, ...] = (
    "position",
    "aggregate_id",
    "aggregate_type",
    "version",
    "type",
    "occurred_at",
    "actor",
    "role",
    "correlation_id",
    "policy_version",
    "strategy",
    "scheduled_for",
    "override",
    "reason",
    "state_after",
    "data",
    "prev_hash",
    "hash",
    "error",
)

# Masks an event's data for roles without need of contact details (`pii.Redactor.data`).
Masker = Callable[[dict[str, Any]], dict[str, Any]]


def export_events(
    app: Application,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = PAGE_SIZE,
    mask: Masker | None = None,
) -> Iterator[dict[str, Any]]:
    """Every event of the hash-chained aggregates in log order, as flat rows.

    `since` (included) and `until` (excluded) select by the instant the event
    occurred; both must carry a time zone. An event that cannot be read is
    still exported, as a row with only its position, ids, version and `error`,
    whatever the period asked. `mask(data)`, when given, masks customer contact
    details in each event's data (it sees every event in order, the skipped too).
    Reads `page_size` events at a time: memory stays flat.
    """
    for when in (since, until):
        if when is not None and when.tzinfo is None:
            raise ValueError("export bounds must be instants with a time zone")
    return _export(app, since, until, page_size, mask)


def _export(
    app: Application, since: datetime | None, until: datetime | None, page_size: int, mask: Masker | None
) -> Iterator[dict[str, Any]]:
    for n in _pages(app, page_size):
        event_class = _event_class(n.topic)
        trailed = event_class is not None and issubclass(event_class, TrailedAggregate.Event)
        try:
            event = app.mapper.to_domain_event(n)
            if not trailed and "hash" not in vars(event):
                continue  # idempotency records and the like: no trail to export
            row = _row(n, event, mask)
            occurred = event.timestamp
            wanted = (since is None or occurred >= since) and (until is None or occurred < until)
        except Exception as exc:  # noqa: BLE001 - exported as a row that says so
            yield _error_row(n, _reason(exc))
            continue
        if wanted:
            yield row


def aggregate_rows(app: Application, aggregate_id: uuid.UUID) -> Iterator[dict[str, Any]]:
    """Every event of one aggregate, in version order, as the export's rows plus `hashed`: the
    exact text its hash is taken over (`trail.hashed_payload`), so anyone can recompute the
    hash (SHA-256 of its UTF-8) and the links without this software. `position` is None: the
    aggregate's own sequence is read, not the log. Never masked (the hashes must recompute)."""
    for stored in app.recorder.select_events(aggregate_id):
        n = _unpositioned(stored)
        try:
            event = app.mapper.to_domain_event(n)
            row = _row(n, event, None)
            row["hashed"] = stored_event_payload(event)
        except Exception as exc:  # noqa: BLE001 - exported as a row that says so
            row = _error_row(n, _reason(exc))
            row["hashed"] = None
        yield row


def _row(n: Notification, event: Any, mask: Masker | None) -> dict[str, Any]:
    data = {
        f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event) if f.name not in TRAIL_FIELDS
    }
    override = _plain(event.override)
    if mask is not None:
        data = mask(data)
        override = mask(override) if isinstance(override, dict) else override
    reason = data.get("reason") or data.get("note") or data.get("resolution")
    return {
        "position": n.id,
        "aggregate_id": str(n.originator_id),
        "aggregate_type": _aggregate_type(n.topic),
        "version": n.originator_version,
        "type": type(event).__name__,
        "occurred_at": _plain(event.timestamp),
        "actor": event.actor_id,
        "role": event.actor_role,
        "correlation_id": event.correlation_id,
        "policy_version": event.policy_version,
        "strategy": getattr(event, "strategy", None),
        "scheduled_for": _plain(event.scheduled_for),
        "override": override,
        "reason": reason,
        "state_after": getattr(event, "state_after", None),
        "data": data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "error": None,
    }


def _error_row(n: Notification, error: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS)
    row |= {
        "position": n.id,
        "aggregate_id": str(n.originator_id),
        "aggregate_type": _aggregate_type(n.topic),
        "version": n.originator_version,
        "data": {},
        "error": error,
    }
    return row


def _plain(value: Any) -> Any:
    """JSON-ready: Decimal as its exact string (never a float), instants in UTC with Z."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per line, its keys in EXPORT_COLUMNS order."""
    for row in rows:
        yield _json({c: row.get(c) for c in EXPORT_COLUMNS}) + "\n"


def to_csv(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A header of EXPORT_COLUMNS, then one line per event; `data` and
    `override` as JSON text; empty cells for nulls."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(list(EXPORT_COLUMNS))
    for row in rows:
        values = []
        for column in EXPORT_COLUMNS:
            value = row.get(column)
            if column in ("data", "override") and value is not None:
                value = _json(value)
            values.append("" if value is None else value)
        yield line(values)


SERIALISERS: dict[str, Callable[[Iterable[dict[str, Any]]], Iterator[str]]] = {"jsonl": to_jsonl, "csv": to_csv}


def chunks(lines: Iterable[str], size: int = 256) -> Iterator[bytes]:
    """Lines joined `size` at a time, encoded: fewer, larger writes to the socket or file."""
    batch: list[str] = []
    for text in lines:
        batch.append(text)
        if len(batch) >= size:
            yield "".join(batch).encode("utf-8")
            batch.clear()
    if batch:
        yield "".join(batch).encode("utf-8")
