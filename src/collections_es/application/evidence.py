"""Evidence bundles: one receivable's whole record in a zip a third party can check
offline (ADR 0046; docs/evidence.md).

`build` writes, in this order: `manifest.json` (each other file's name, size and
SHA-256, the export instant, the receivable, the chain's verification, the software),
`manifest.sig` (Ed25519 over the manifest's bytes, with a signing key),
`history.jsonl`, `limitation.json`, `policies.json`, `contacts.jsonl`,
`messages.jsonl`, then `letters/*` by name. Entries carry a fixed date and mode,
so the same record exported at the same instant gives the same bytes.

`check` is the offline check: every file against the manifest, the chain in
`history.jsonl` recomputed from each row's `hashed` text, the signature.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .. import __version__
from ..adapters import signing
from ..domain import limitation
from ..domain.policy_book import POLICY_BOOK_ID, PolicyBook
from ..domain.receivable import Receivable
from ..domain.trail import GENESIS_HASH, payload_hash
from ..letters import KINDS as LETTER_KINDS
from ..letters import STAGES, LetterError, Letters
from ..letters.figures import figures
from . import audit
from .service import Collections

FORMAT = "collections-es evidence bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
HISTORY = "history.jsonl"
HISTORY_COLUMNS: tuple[str, ...] = (*audit.EXPORT_COLUMNS, "hashed")
# A fixed entry date (zip's earliest), so the bytes depend on the record alone.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
MEDIA_TYPE = "application/zip"


class Signer(Protocol):
    algorithm: str
    public_pem: str
    fingerprint: str

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Sources:
    """Where a bundle's parts come from (bootstrap wires the read models)."""

    app: Collections
    letters: Letters
    messages: Callable[[str], list[dict[str, Any]]]  # the outbox's messages of a receivable, oldest first
    contacts: Callable[[str], list[dict[str, Any]]]  # the contact log of a receivable, oldest first


@dataclass(frozen=True)
class Bundle:
    content: bytes
    filename: str
    manifest: dict[str, Any]


# ---- building ---------------------------------------------------------------------------


def build(sources: Sources, rid: uuid.UUID, now: datetime, *, signer: Signer | None = None) -> Bundle:
    """The evidence bundle of one receivable as of `now` (NotFoundError when there is none)."""
    app = sources.app
    r = app.get_receivable(rid)
    events = list(app.events.get(rid))
    rows = list(audit.aggregate_rows(app, rid))
    chain = audit.verify_aggregate(app, rid)
    files: dict[str, bytes] = {
        HISTORY: _jsonl({c: row.get(c) for c in HISTORY_COLUMNS} for row in rows),
        "limitation.json": _json_file(limitation_record(app, r, events)),
        "policies.json": _json_file(policies_in_force(app, events)),
        "contacts.jsonl": _jsonl(_plain_rows(sources.contacts(str(rid)))),
        "messages.jsonl": _jsonl(_plain_rows(sources.messages(str(rid)))),
    }
    letters, letter_notes = render_letters(sources, r, events, now)
    files |= letters
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "software": {"name": "collections-es", "version": __version__},
        "exported_at": _plain(now),
        "receivable": {
            "id": str(rid),
            "invoice_number": r.invoice_number,
            "customer_id": r.customer_id,
            "version": r.version,
            "state": r.state,
        },
        "chain": {
            "ok": chain.ok,
            "checked_events": chain.checked_events,
            "head_version": rows[-1]["version"] if rows else 0,
            "head_hash": rows[-1]["hash"] if rows else None,
            "break_count": chain.break_count,
            "breaks": [b.as_dict() for b in chain.breaks],
        },
        "letters": letter_notes,
        "files": [
            {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in _ordered(files)
        ],
        "signature": None
        if signer is None
        else {"algorithm": signer.algorithm, "file": SIGNATURE, "public_key": signer.public_pem,
              "public_key_sha256": signer.fingerprint},
    }
    manifest_bytes = _json_file(manifest)
    entries = [(MANIFEST, manifest_bytes)]
    if signer is not None:
        entries.append((SIGNATURE, signer.sign(manifest_bytes)))
    entries += _ordered(files)
    filename = f"evidence-{r.invoice_number}.zip".replace("/", "_").replace("\\", "_")
    return Bundle(_zip(entries), filename, manifest)


def _ordered(files: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """The fixed order: the record files as listed, then the letters by name."""
    fixed = [name for name in files if "/" not in name]
    return [(name, files[name]) for name in fixed] + [(name, files[name]) for name in sorted(set(files) - set(fixed))]


def _zip(entries: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, data)
    return buffer.getvalue()


def render_letters(
    sources: Sources, r: Receivable, events: Sequence[Any], now: datetime
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """Each letter the receivable reached, as it would have been sent then: rendered from the
    receivable at the first event after which its stage admitted the letter (or, never reached
    by an event but admitted now, as of now), in the customer's language; HTML, and PDF when
    the font is installed."""
    app, letters = sources.app, sources.letters
    files: dict[str, bytes] = {}
    notes: list[dict[str, Any]] = []
    for kind in LETTER_KINDS:
        stage = STAGES[kind]
        reached = next(
            (e for e in events if stage.admits(getattr(e, "state_after", None) or "", r.days_past_due(e.timestamp))),
            None,
        )
        if reached is not None:
            at, receivable = reached.timestamp, app.get_receivable(r.id, version=reached.originator_version)
        elif stage.admits(r.state, r.days_past_due(now)):
            at, receivable = now, r
        else:
            continue
        customer = app.get_customer_as_of(r.customer_id, at)
        lang = customer.language if customer is not None and customer.language in letters.envs else "zh-CN"
        data = figures(receivable, customer, at, kind, letters.company)
        note: dict[str, Any] = {"kind": kind, "as_of": _plain(at), "version": receivable.version, "language": lang,
                                "files": []}
        name = f"letters/{kind}.{lang}"
        files[f"{name}.html"] = letters.html(kind, lang, data).encode("utf-8")
        note["files"].append(f"{name}.html")
        try:
            files[f"{name}.pdf"] = letters.pdf(kind, lang, data)
            note["files"].append(f"{name}.pdf")
        except LetterError as exc:
            note["pdf_missing"] = str(exc)
        notes.append(note)
    return files, notes


def policies_in_force(app: Collections, events: Iterable[Any]) -> list[dict[str, Any]]:
    """Each policy version the receivable's events name, in the order first named, with its
    document and who adopted it when (from the policy book)."""
    named: list[str] = []
    for event in events:
        version = getattr(event, "policy_version", None)
        if version and version not in named:
            named.append(version)
    adopted = {
        e.version: e for e in app.events.get(POLICY_BOOK_ID) if isinstance(e, PolicyBook.Adopted)
    }
    out = []
    for version in named:
        event = adopted.get(version)
        if event is None:
            out.append({"version": version, "error": "not in the policy book"})
            continue
        out.append({
            "version": version,
            "adopted_at": _plain(event.timestamp),
            "adopted_by": event.actor_id,
            "role": event.actor_role,
            "policy_book_version": event.originator_version,
            "hash": event.hash,
            "document": event.document,
        })
    return out


def limitation_record(app: Collections, r: Receivable, events: Sequence[Any]) -> dict[str, Any]:
    """The limitation computation over the history (domain/limitation.py `periods`): each period
    and the event that started it (its type, instant, actor and hash)."""
    years = app.policy().limitation_period_years
    by_version = {e.originator_version: e for e in events}
    folded = [
        (type(e).__name__, limitation.data_of(type(e).__name__, e), e.timestamp, e.originator_version)
        for e in events
        if type(e).__name__ in limitation.FIELDS
    ]
    periods = []
    for period, version in limitation.periods(r.due_on, r.timezone, folded):
        started_by = None
        if version is not None:
            event = by_version[version]
            started_by = {
                **_plain(dict(period.last_interruption or {})),
                "type": type(event).__name__,
                "occurred_at": _plain(event.timestamp),
                "actor": event.actor_id,
                "hash": event.hash,
            }
        periods.append({
            "started_on": _plain(period.started_on),
            "lapses_on": _plain(period.lapses_on(years)),
            "started_by": started_by,
        })
    current = r.limitation_period
    return {
        "due_on": _plain(r.due_on),
        "timezone": r.timezone,
        "limitation_period_years": years,
        "started_on": _plain(current.started_on),
        "lapses_on": _plain(current.lapses_on(years)),
        "interruptions": [p["started_by"] for p in periods if p["started_by"] is not None],
        "periods": periods,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:  # read models keep naive UTC
        value = value.replace(tzinfo=UTC)
    return audit._plain(value)  # noqa: SLF001 - the export's one conversion to JSON values


def _plain_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items() if k not in ("lease_until", "next_attempt_at")} for row in rows]


def _json_file(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode("utf-8")


# ---- checking, offline ------------------------------------------------------------------


@dataclass
class CheckReport:
    """What the offline check found: `problems` empty when the bundle is sound."""

    problems: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(bundle: bytes, public_key_pem: bytes | None = None) -> CheckReport:
    """Check a bundle with nothing but itself (and, to prove who signed it, the publisher's
    public key): every file's size and SHA-256 against the manifest, no file unlisted, the
    hash chain in history.jsonl recomputed, the manifest's signature."""
    report = CheckReport()
    try:
        archive = zipfile.ZipFile(io.BytesIO(bundle))
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.problems.append(f"not a readable zip file: {exc}")
        return report
    if MANIFEST not in contents:
        report.problems.append(f"{MANIFEST} is missing")
        return report
    try:
        manifest = json.loads(contents[MANIFEST].decode("utf-8"))
        listed = {f["name"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"{MANIFEST} is not a manifest: {type(exc).__name__}: {exc}")
        return report
    _check_signature(report, manifest, contents, public_key_pem)
    for name, entry in listed.items():
        data = contents.get(name)
        if data is None:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            report.problems.append(f"{name}: its SHA-256 or size differs from the manifest (altered)")
    for name in sorted(set(contents) - set(listed) - {MANIFEST, SIGNATURE}):
        report.problems.append(f"{name}: not listed in the manifest")
    report.summary.append(f"files: {len(listed)} listed, {sum(1 for n in listed if n in contents)} present")
    if HISTORY in contents:
        _check_chain(report, manifest, contents[HISTORY])
    else:
        report.problems.append(f"{HISTORY} is missing")
    chain = manifest.get("chain") or {}
    if chain.get("ok") is not True:
        report.problems.append(
            f"the store's chain was reported broken when the bundle was made ({chain.get('break_count')} break(s))"
        )
    return report


def _check_signature(report: CheckReport, manifest: dict[str, Any], contents: dict[str, bytes],
                     public_key_pem: bytes | None) -> None:
    signature = contents.get(SIGNATURE)
    declared = manifest.get("signature")
    if signature is None:
        if declared is not None:
            report.problems.append(f"{SIGNATURE} is missing though the manifest says it is signed")
        elif public_key_pem is not None:
            report.problems.append("the bundle is not signed, so the public key given cannot be checked")
        else:
            report.summary.append("signature: none (the bundle is not signed)")
        return
    try:
        if public_key_pem is not None:
            key, source = signing.load_public_pem(public_key_pem), "the public key given"
        elif declared and declared.get("public_key"):
            key, source = signing.load_public_pem(declared["public_key"]), "the key named in the bundle itself"
        else:
            report.problems.append(f"{SIGNATURE} is present but no public key is given or named")
            return
    except ValueError as exc:
        report.problems.append(f"the public key cannot be read: {exc}")
        return
    if not signing.is_valid(key, signature, contents[MANIFEST]):
        report.problems.append(f"the signature does not verify with {source}: the manifest was altered, "
                               "or it was signed with another key")
        return
    note = "" if public_key_pem is not None else " (proves integrity, not who signed: give --public-key)"
    report.summary.append(f"signature: Ed25519, valid with {source}, key {signing.fingerprint(key)[:16]}…{note}")


def _check_chain(report: CheckReport, manifest: dict[str, Any], history: bytes) -> None:
    """Recompute every row's hash from its `hashed` text and follow the links from genesis."""
    receivable = str((manifest.get("receivable") or {}).get("id"))
    previous, expected_version, problems = GENESIS_HASH, 1, []
    try:
        lines = history.decode("utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except ValueError as exc:
        report.problems.append(f"{HISTORY} is not JSON lines: {exc}")
        return
    for row in rows:
        where = f"{HISTORY} version {row.get('version')}"
        hashed = row.get("hashed")
        if not isinstance(hashed, str):
            problems.append(f"{where}: no hashed content ({row.get('error') or 'missing'})")
            previous = None
            expected_version = (row.get("version") or expected_version) + 1
            continue
        try:
            content = json.loads(hashed)["content"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"{where}: its hashed content is not the JSON of an event")
            continue
        if payload_hash(hashed) != row.get("hash"):
            problems.append(f"{where}: the hash does not recompute from its content")
        if content.get("prev_hash") != row.get("prev_hash") or content.get("originator_version") != row.get("version"):
            problems.append(f"{where}: the row's version or prev_hash differs from its hashed content")
        if str(content.get("originator_id")) != row.get("aggregate_id") or row.get("aggregate_id") != receivable:
            problems.append(f"{where}: belongs to another aggregate than the manifest's receivable")
        if row.get("version") != expected_version:
            problems.append(f"{where}: expected version {expected_version} (a version missing or out of order)")
        elif previous is not None and row.get("prev_hash") != previous:
            problems.append(f"{where}: prev_hash is not the previous event's hash (the chain is broken)")
        previous, expected_version = row.get("hash"), (row.get("version") or 0) + 1
    chain = manifest.get("chain") or {}
    if rows and (chain.get("head_hash") != previous or chain.get("head_version") != rows[-1].get("version")):
        problems.append(f"{HISTORY}: its last event is not the chain head the manifest names")
    report.problems += problems
    report.summary.append(
        f"chain: {len(rows)} events recomputed, head {str(previous)[:16]}… at version {len(rows)}"
        + ("" if not problems else f", {len(problems)} problem(s)")
    )

