"""Bulk imports from CSV: customers, receivables and payments (issue 14; ADR 0043).

A file is read once, as a stream, and every line is validated before anything is
written: by the pydantic model of the matching POST body (columns are its JSON fields,
nested ones dotted: `contacts.email`, `credit_limit.amount`), then by the domain's own
checks, run in memory through the application service (`decide_*`) without saving.
Only when no line is in error are the lines written, through the same service, in
batches of one transaction each (`Collections.save_decided`). Importing a file again
changes nothing: an existing customer or receivable with the same data is `unchanged`
(with other data, an error for that line; never overwritten), and a payment carries an
idempotency key derived from its line, so it is recorded once.

Payments are matched to a receivable by `invoice_number`, or when that column is empty
by taking the `reference` as an invoice number; a line that matches no receivable is
listed as unmatched, never guessed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from eventsourcing.persistence import IntegrityError
from pydantic import BaseModel, ValidationError

from .api.schemas.customers import CustomerCreate
from .application.commands import ReceivableCreate, RecordPayment
from .application.fields import Identifier
from .application.service import Collections, Decided, Idempotency, Request
from .domain.customer import Customer
from .domain.errors import CollectionsError, DuplicateError, NotFoundError, RuleViolationError
from .domain.money import to_money
from .domain.receivable import Receivable, receivable_id
from .domain.trail import Actor

KINDS: tuple[str, ...] = ("customers", "receivables", "payments")
#: Lines written per transaction.
BATCH = 250
#: Errors and unmatched lines listed in a summary (the counts are always whole).
MAX_LISTED = 200


class PaymentLine(RecordPayment):
    """A payments line: the `record-payment` body and the invoice it pays (else its reference names it)."""

    invoice_number: Identifier | None = None


MODELS: dict[str, type[BaseModel]] = {"customers": CustomerCreate, "receivables": ReceivableCreate, "payments": PaymentLine}


def columns(kind: str) -> dict[str, bool]:
    """The columns a kind takes (its model's fields, nested ones dotted; lists and `override`
    left out), each with whether it is required."""
    out: dict[str, bool] = {}

    def walk(model: type[BaseModel], prefix: str, required: bool) -> None:
        for name, info in model.model_fields.items():
            if name == "override":
                continue
            nested = _nested_model(info.annotation)
            if nested is not None:
                walk(nested, f"{prefix}{name}.", required and info.is_required())
            elif not _is_list(info.annotation):
                out[f"{prefix}{name}"] = required and info.is_required()

    walk(MODELS[kind], "", True)
    return out


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is list


# ---- the summary ----------------------------------------------------------------------


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass
class Summary:
    """What an import did, or would do (`dry_run`)."""

    kind: str
    dry_run: bool
    lines: int = 0
    created: int = 0
    unchanged: int = 0
    recorded: int = 0
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    unmatched_count: int = 0
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    written: bool = False

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, line: int, field_name: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(LineError(line, field_name, message))

    def unmatch(self, line: int, invoice_number: str | None, reference: str) -> None:
        self.unmatched_count += 1
        if len(self.unmatched) < MAX_LISTED:
            self.unmatched.append({"line": line, "invoice_number": invoice_number, "reference": reference})

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            "written": self.written,
            "lines": self.lines,
            "created": self.created,
            "unchanged": self.unchanged,
            "recorded": self.recorded,
            "unmatched_count": self.unmatched_count,
            "unmatched": self.unmatched,
            "error_count": self.error_count,
            "errors": [e.as_dict() for e in self.errors],
        }

    def text(self) -> list[str]:
        """The summary as a person reads it at the end of `collections-es import`."""
        counts = [f"created {self.created}", f"unchanged {self.unchanged}"]
        if self.kind == "payments":
            counts = [f"recorded {self.recorded}", f"unchanged {self.unchanged}", f"unmatched {self.unmatched_count}"]
        head = f"{self.kind}: {self.lines} lines; " + ", ".join(counts) + f", errors {self.error_count}"
        lines = [head + (" (dry run: nothing written)" if self.dry_run else "")]
        if not self.ok:
            lines.append(
                "the other lines are imported: these changed meanwhile by another writer"
                if self.written
                else "nothing imported: every line must be valid first"
            )
        lines += [f"error: {e}" for e in self.errors]
        if self.error_count > len(self.errors):
            lines.append(f"... and {self.error_count - len(self.errors)} more errors")
        for u in self.unmatched:
            lines.append(
                f"unmatched: line {u['line']}: no receivable with invoice number "
                f"'{u['invoice_number'] or u['reference']}'"
                + ("" if u["invoice_number"] else " (from the reference)")
            )
        if self.unmatched_count > len(self.unmatched):
            lines.append(f"... and {self.unmatched_count - len(self.unmatched)} more unmatched")
        return lines


# ---- reading ------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


@dataclass
class _Row:
    line: int
    data: dict[str, Any]
    given: set[str]


def _rows(stream: IO[bytes], kind: str, summary: Summary, max_lines: int, progress: Callable[[int], None]) -> Iterator[_Row]:
    """Each data line as a nested dict (empty cells left out), with the line number where it ends
    (the header is line 1); header and encoding problems are errors in `summary`."""
    counting = _Counting(stream)
    text = io.TextIOWrapper(io.BufferedReader(counting, 64 * 1024), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    known = columns(kind)
    try:
        try:
            header = next(reader)
        except StopIteration:
            summary.error(1, "file", "the file is empty; it needs a header row")
            return
        header = [h.strip() for h in header]
        problems = False
        for name in header:
            if name not in known:
                summary.error(1, name or "(empty)", f"unknown column; the columns of {kind} are: {', '.join(known)}")
                problems = True
        for name in {h for h in header if header.count(h) > 1}:
            summary.error(1, name, "the column appears twice")
            problems = True
        for name, required in known.items():
            if required and name not in header:
                summary.error(1, name, "missing column (required)")
                problems = True
        if problems:
            return
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            summary.lines += 1
            if summary.lines > max_lines:
                summary.error(reader.line_num, "file", f"more than {max_lines} lines (COLLECTIONS_IMPORT_MAX_LINES)")
                return
            if len(cells) != len(header):
                summary.error(reader.line_num, "line", f"{len(cells)} cells for {len(header)} columns")
                continue
            data: dict[str, Any] = {}
            given: set[str] = set()
            for name, value in zip(header, cells, strict=True):
                value = value.strip()
                if value == "":
                    continue
                given.add(name)
                *parents, leaf = name.split(".")
                node = data
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[leaf] = value
            progress(counting.count)
            yield _Row(reader.line_num, data, given)
    except UnicodeDecodeError:
        summary.error(reader.line_num + 1, "file", "the file is not UTF-8 text")
    except csv.Error as exc:
        summary.error(reader.line_num, "line", f"not CSV: {exc}")


# ---- the import -----------------------------------------------------------------------


@dataclass
class _Planned:
    """A line that validated: what will be written."""

    line: int
    fields: dict[str, Any]
    request: Request
    target: uuid.UUID | None = None


Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


class Importer:
    """One import of one file: validate every line, then (unless a dry run or an error) write."""

    def __init__(
        self,
        app: Collections,
        actor: Actor,
        kind: str,
        *,
        dry_run: bool = False,
        max_lines: int = 100_000,
        progress: Progress = _no_progress,
        size: int = 0,
        batch: int = BATCH,
    ) -> None:
        if kind not in KINDS:
            raise NotFoundError(f"no import of '{kind}'; kinds: {', '.join(KINDS)}")
        self.app = app
        self.actor = actor
        self.kind = kind
        self.dry_run = dry_run
        self.max_lines = max_lines
        self.progress = progress
        self.size = size
        self.batch = batch
        self.run = f"import:{kind}:{uuid.uuid4()}"
        self.summary = Summary(kind, dry_run)
        self._customers: dict[str, Customer | None] = {}

    def __call__(self, stream: IO[bytes]) -> Summary:
        planned = list(self._validate(stream))
        if self.summary.ok and not self.dry_run:
            self._write(planned)
            self.summary.written = True
        return self.summary

    # -- validation: every line, nothing written -----------------------------------------

    def _validate(self, stream: IO[bytes]) -> Iterator[_Planned]:
        seen: dict[str, int] = {}
        receivables: dict[uuid.UUID, Receivable] = {}  # payments: acted on in memory, in file order
        check = {"customers": self._check_customer, "receivables": self._check_receivable, "payments": self._check_payment}[self.kind]
        for row in _rows(stream, self.kind, self.summary, self.max_lines, lambda at: self.progress("validate", at, self.size)):
            try:
                body = MODELS[self.kind].model_validate(row.data)
            except ValidationError as exc:
                for e in exc.errors():
                    self.summary.error(row.line, ".".join(str(p) for p in e["loc"]) or "line", str(e["msg"]).removeprefix("Value error, "))
                continue
            try:
                found = check(row, body, seen, receivables)
            except RuleViolationError as exc:
                self.summary.error(row.line, exc.field or "line", exc.detail)
                continue
            except CollectionsError as exc:
                self.summary.error(row.line, _FIELD_OF_KIND[self.kind], str(exc))
                continue
            if found is not None:
                yield found

    def _request(self, idempotency: Idempotency | None = None) -> Request:
        return Request(self.actor, correlation_id=self.run, idempotency=idempotency)

    def _customer(self, customer_id: str) -> Customer | None:
        if customer_id not in self._customers:
            try:
                self._customers[customer_id] = self.app.get_customer(customer_id)
            except NotFoundError:
                self._customers[customer_id] = None
        return self._customers[customer_id]

    def _once(self, seen: dict[str, int], key: str, line: int, what: str, field_name: str) -> None:
        if key in seen:
            raise RuleViolationError("import.duplicate_line", f"{what} is on line {seen[key]} already", field=field_name)
        seen[key] = line

    def _check_customer(self, row: _Row, body: Any, seen: dict[str, int], _: Any) -> _Planned | None:
        fields = body.model_dump()
        self._once(seen, body.customer_id, row.line, f"customer '{body.customer_id}'", "customer_id")
        existing = self._customer(body.customer_id)
        if existing is not None:
            _same_customer(existing, body, row.given)
            self.summary.unchanged += 1
            return None
        request = self._request()
        self.app.decide_registration(request, **fields)  # the domain's checks, nothing saved
        self.summary.created += 1
        return _Planned(row.line, fields, request)

    def _check_receivable(self, row: _Row, body: Any, seen: dict[str, int], _: Any) -> _Planned | None:
        fields = body.model_dump()
        self._once(seen, body.invoice_number, row.line, f"invoice '{body.invoice_number}'", "invoice_number")
        rid = receivable_id(body.invoice_number)
        if self.app.exists(rid):
            _same_receivable(self.app, rid, body, row.given)
            self.summary.unchanged += 1
            return None
        customer = self._customer(body.customer_id)
        if customer is None:
            raise RuleViolationError(
                "import.no_customer", f"no customer '{body.customer_id}' (import the customers first)", field="customer_id"
            )
        request = self._request()
        self.app.decide_issue(request, customer, **fields)
        self.summary.created += 1
        return _Planned(row.line, fields, request)

    def _check_payment(
        self, row: _Row, body: Any, seen: dict[str, int], receivables: dict[uuid.UUID, Receivable]
    ) -> _Planned | None:
        payment = body.model_dump(exclude={"invoice_number", "override"})
        invoice = body.invoice_number or body.reference
        content = json.dumps({"invoice_number": body.invoice_number, **payment}, sort_keys=True, default=str)
        self._once(seen, content, row.line, "the same payment", "reference")
        key = f"import:payments:{hashlib.sha256(content.encode()).hexdigest()}"
        request = self._request(Idempotency(key, key))
        rid = receivable_id(invoice)
        if rid not in receivables and not self.app.exists(rid):
            self.summary.unmatch(row.line, body.invoice_number, body.reference)
            return None
        if self.app.replay(request) is not None:
            self.summary.unchanged += 1  # this very line was imported before
            return None
        if rid not in receivables:
            receivables[rid] = self.app.get_receivable(rid)
        receivable = receivables[rid]
        if body.reference in receivable.payment_references:
            _same_payment(self.app, rid, payment)
            self.summary.unchanged += 1
            return None
        self.app.decide(request, receivable, "record_payment", **payment)  # in memory: later lines see it
        self.summary.recorded += 1
        return _Planned(row.line, payment, request, target=rid)

    # -- writing: batches of one transaction each -------------------------------------------

    def _write(self, planned: list[_Planned]) -> None:
        total = len(planned)
        for start in range(0, total, self.batch):
            chunk = planned[start : start + self.batch]
            try:
                self.app.save_decided(self._decide(chunk))
            except IntegrityError:
                # Something wrote one of these meanwhile: each line again, through the one-command path.
                for item in chunk:
                    self._write_one(item)
            self.progress("write", min(start + self.batch, total), total)

    def _decide(self, chunk: list[_Planned]) -> list[Decided]:
        decided: list[Decided] = []
        loaded: dict[uuid.UUID, Receivable] = {}
        for item in chunk:
            if self.kind == "customers":
                customer = self.app.decide_registration(item.request, **item.fields)
                decided.append(Decided(item.request, customer, customer.version, 201, "customer"))
            elif self.kind == "receivables":
                customer = self._customer(item.fields["customer_id"])
                assert customer is not None
                receivable = self.app.decide_issue(item.request, customer, **item.fields)
                decided.append(Decided(item.request, receivable, receivable.version, 201, "receivable"))
            else:
                assert item.target is not None
                if item.target not in loaded:
                    loaded[item.target] = self.app.get_receivable(item.target)
                receivable = self.app.decide(item.request, loaded[item.target], "record_payment", **item.fields)
                decided.append(Decided(item.request, receivable, receivable.version, 200, "receivable"))
        return decided

    def _write_one(self, item: _Planned) -> None:
        """One line through the one-command path, which re-decides on the fresh state; what a
        concurrent writer made of it is reported, never overwritten."""
        try:
            if self.kind == "customers":
                self.app.register_customer(item.request, **item.fields)
            elif self.kind == "receivables":
                self.app.issue_receivable(item.request, **item.fields)
            else:
                assert item.target is not None
                if self.app.execute(item.request, item.target, "record_payment", **item.fields).replayed:
                    self.summary.recorded -= 1
                    self.summary.unchanged += 1
        except DuplicateError:
            self.summary.created -= 1
            self.summary.error(item.line, _FIELD_OF_KIND[self.kind], "created meanwhile by another writer; import the file again to compare")
        except RuleViolationError as exc:
            self.summary.error(item.line, exc.field or "line", f"{exc.detail} (changed while importing)")
        except CollectionsError as exc:
            self.summary.error(item.line, _FIELD_OF_KIND[self.kind], f"{exc} (changed while importing)")


_FIELD_OF_KIND = {"customers": "customer_id", "receivables": "invoice_number", "payments": "invoice_number"}


def _differs(what: str, field_name: str, theirs: Any, ours: Any, *, show: bool = True) -> RuleViolationError:
    values = f": it has '{theirs}', the file says '{ours}'" if show else ""
    return RuleViolationError(
        "import.exists_with_other_data",
        f"{what} exists with another {field_name}{values}; an import never overwrites it",
        field=field_name,
    )


def _same_customer(customer: Customer, body: CustomerCreate, given: set[str]) -> None:
    """An existing customer matches the line in every field the line gives (contact details
    are compared but never echoed: they are personal data)."""
    what = f"customer '{customer.customer_id}'"
    for name in ("name", "timezone", "tier", "preferred_channel", "language", "credit_rating"):
        if name in given and getattr(customer, name) != getattr(body, name):
            raise _differs(what, name, getattr(customer, name), getattr(body, name))
    for name in ("ability_to_pay", "willingness_to_pay"):
        if name in given and customer.latest_note(name) != getattr(body, name):
            raise _differs(what, name, None, None, show=False)
    for name in ("email", "phone", "address"):
        if f"contacts.{name}" in given and customer.contacts.get(name) != getattr(body.contacts, name):
            raise _differs(what, f"contacts.{name}", None, None, show=False)
    if body.credit_limit is not None and {"credit_limit.amount", "credit_limit.currency"} & given:
        limit = body.credit_limit
        same = customer.credit_currency == limit.currency and customer.credit_limit is not None and (
            customer.credit_limit == Decimal(limit.amount)
        )
        if not same:
            raise _differs(what, "credit_limit.amount", customer.credit_limit, limit.amount)


def _same_receivable(app: Collections, rid: uuid.UUID, body: ReceivableCreate, given: set[str]) -> None:
    """An existing receivable matches the line as it was issued (its first event)."""
    issued = next(iter(app.events.get(rid, lte=1)))
    what = f"invoice '{body.invoice_number}'"
    if not isinstance(issued, Receivable.Issued):
        raise DuplicateError(f"{what}: its id belongs to something else")
    if issued.currency != body.currency:
        raise _differs(what, "currency", issued.currency, body.currency)
    if issued.amount != to_money(body.amount, body.currency):
        raise _differs(what, "amount", f"{issued.amount:f}", body.amount)
    for name in ("customer_id", "issued_on", "due_on") + (("collector",) if "collector" in given else ()):
        if getattr(issued, name) != getattr(body, name):
            raise _differs(what, name, getattr(issued, name), getattr(body, name))


def _same_payment(app: Collections, rid: uuid.UUID, payment: dict[str, Any]) -> None:
    """A payment with this reference is recorded on the receivable: the same one, or an error."""
    for event in app.events.get(rid):
        if isinstance(event, Receivable.PaymentRecorded) and event.reference == payment["reference"]:
            if event.amount != Decimal(payment["amount"]):
                raise _differs("a payment with this reference", "amount", f"{event.amount:f}", payment["amount"])
            for name in ("method", "paid_on"):
                if getattr(event, name) != payment[name]:
                    raise _differs("a payment with this reference", name, getattr(event, name), payment[name])
            return


def import_csv(
    app: Collections,
    actor: Actor,
    kind: str,
    stream: IO[bytes],
    *,
    dry_run: bool = False,
    max_lines: int = 100_000,
    progress: Progress = _no_progress,
    size: int = 0,
) -> Summary:
    """Import one CSV file of `kind` read from the binary `stream` (see the module's docstring)."""
    return Importer(app, actor, kind, dry_run=dry_run, max_lines=max_lines, progress=progress, size=size)(stream)
