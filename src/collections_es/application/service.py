"""The application service: every use case as load → decide → save.

Commands arrive with the actor and an optional idempotency key and expected
version. On a concurrent write the command is re-loaded and re-decided
(bounded retries), so it is never lost and never applied to a state it was
not valid for; with an expected version (If-Match) a conflict is reported.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoder
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, UUIDAsHex

from ..adapters.persistence import DateAsISO, MROJSONTranscoder
from ..domain import lifecycle, simulation, strategy
from ..domain.compliance import ContactAttempt, ContactCheck
from ..domain.customer import STRATEGY_FIELDS, Customer, customer_uuid
from ..domain.errors import (
    CollectionsError,
    CommandNotAllowedError,
    ConcurrencyExhaustedError,
    DuplicateError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PermissionDeniedError,
    RuleViolationError,
    VersionMismatchError,
)
from ..domain.policy import CollectionPolicy
from ..domain.policy_book import POLICY_BOOK_ID, PolicyBook
from ..domain.receivable import Receivable, receivable_id
from ..domain.trail import CUSTOMER_ROLE, Actor, Context, customer_actor
from .access import check_command, check_view
from .clock import Clock
from .idempotency import IdempotencyRecord, idempotency_record_id

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 100
#: How a command ended, for metrics and logs (ADR 0047).
OUTCOMES: tuple[str, ...] = ("ok", "refused", "not_allowed", "error")
# Names a command is measured under besides the lifecycle's (bounded: metric labels).
MEASURED: frozenset[str] = frozenset(
    {"issue", "register_customer", "update_customer", "adopt_policy", "hold_customer", "release_customer_hold",
     "record_revisit", "replan_open"}
)


def outcome_of(error: BaseException | None) -> str:
    """`ok`; `refused` by a rule; `not_allowed` in this state or for this role; else `error`."""
    if error is None:
        return "ok"
    if isinstance(error, RuleViolationError):
        return "refused"
    if isinstance(error, CommandNotAllowedError | PermissionDeniedError):
        return "not_allowed"
    return "error"
#: How far from now a contact check may ask about (its search looks further ahead).
CONTACT_CHECK_REACH = timedelta(days=366)


SIMULATION_DAYS = 400
REPLAN_BATCH = 100  # re-plans saved per transaction


@dataclass(frozen=True)
class PolicyPlan:
    """A receivable's dated plan under one policy: its version, the strategy matched, the steps."""

    version: str
    strategy: str | None
    steps: list[simulation.PlannedStep]


@dataclass(frozen=True)
class ReceivablePlan:
    receivable: Receivable
    current: PolicyPlan
    candidate: PolicyPlan


@dataclass(frozen=True)
class Simulation:
    customer_id: str
    since: datetime
    until: datetime
    receivables: list[ReceivablePlan]


def _same_figures(a: CollectionPolicy, b: CollectionPolicy) -> bool:
    """Whether two policies plan alike: every figure equal but the version."""
    return a.model_dump(exclude={"version"}) == b.model_dump(exclude={"version"})


def check_own(actor: Actor, receivable: Receivable) -> None:
    """A customer acts on their own receivables only: another's is not found (nothing of it is told)."""
    if actor.role == CUSTOMER_ROLE and actor != customer_actor(receivable.customer_id):
        raise NotFoundError(f"no receivable {receivable.id}")


class PolicyConflictError(CollectionsError):
    """The configured policy file reuses a version number with other figures."""
LOCK_STRIPES = 64


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


@dataclass(frozen=True)
class Outcome:
    """What a command produced: the resource after it, and whether this was a replay."""

    resource: Any
    status: int
    replayed: bool = False


@dataclass(frozen=True)
class Decided:
    """A command decided in memory and not yet saved: the aggregate after it, at `version`."""

    request: Request
    aggregate: Any
    version: int
    status: int
    resource: str


@dataclass(frozen=True)
class Override:
    rule_id: str
    reason: str


@dataclass
class Request:
    """Who is asking, and under which correlation id."""

    actor: Actor
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    idempotency: Idempotency | None = None
    expected_version: int | None = None
    override: Override | None = None
    scheduled_for: datetime | None = None


def project(aggregate: Any, events: Any) -> Any:
    """eventsourcing's `project_aggregate` without its per-event runtime-Protocol
    `isinstance` assertion (about a tenth of a replay's time on Python 3.11, ADR 0064):
    every event of this application has `mutate`."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class FastRepository(Repository):
    """The repository, replaying with `project` unless told otherwise."""

    def get(self, aggregate_id: Any, *, version: int | None = None, projector_func: Any = project, **kwargs: Any) -> Any:
        return super().get(aggregate_id, version=version, projector_func=projector_func, **kwargs)


class Collections(Application):
    """Receivables and customers, event-sourced."""

    name = "CollectionsES"

    def __init__(
        self,
        env: dict[str, str],
        *,
        clock: Clock,
        snapshot_interval: int = 50,
    ) -> None:
        self.snapshotting_intervals = {Receivable: snapshot_interval, Customer: snapshot_interval}
        self.snapshotting_projectors = {Receivable: project, Customer: project}
        super().__init__(env)
        self.clock = clock
        self._policy: CollectionPolicy | None = None
        self._policy_loaded_at = 0.0
        self._policy_versions: dict[str, CollectionPolicy] = {}
        self._policy_lock = threading.Lock()
        # Commands on one receivable within this process take turns, so they do
        # not race each other; other processes are handled by optimistic retries.
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        # A port: the customer's contacts after an instant, on all of its receivables, for
        # the frequency caps across receivables (bootstrap wires it to the contact log).
        self.customer_contacts: Callable[[str, datetime], Sequence[ContactAttempt]] = lambda customer_id, since: ()
        # A port: the ids of the open receivables (of one customer, or all), for re-planning when
        # a customer's strategy or the policy changes, and so that a customer's
        # hold reaches each of them (ADR 0052) (bootstrap wires it to the receivables list).
        self.open_receivables: Callable[[str | None], Sequence[uuid.UUID]] = lambda customer_id: ()
        # A port: told of every command's name, outcome (OUTCOMES) and seconds (bootstrap wires the metrics).
        self.observe_command: Callable[[str, str, float], None] = lambda name, outcome, seconds: None

    @contextmanager
    def _measured(self, name: str, aggregate_id: Any = None) -> Iterator[None]:
        """Time a command, tell `observe_command` how it ended, and log one line (no field values)."""
        label = name if name in lifecycle.COMMANDS or name in MEASURED else "unknown"
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            outcome = outcome_of(error)
            self.observe_command(label, outcome, seconds)
            log.info(
                "command",
                extra={"command": label, "outcome": outcome, "duration_ms": round(seconds * 1000, 3),
                       "aggregate_id": str(aggregate_id) if aggregate_id is not None else None,
                       "rule_id": getattr(error, "rule_id", None)},
            )

    # -- wiring -------------------------------------------------------------

    def construct_env(self, name: str, env: Any = None) -> Any:
        """Only the settings the composition root passes: never stray os.environ."""
        from eventsourcing.utils import Environment

        values = dict(env or {})
        values["IS_SNAPSHOTTING_ENABLED"] = "y"
        return Environment(name, values)

    def construct_repository(self) -> Repository:
        """eventsourcing's repository, replaying with `project`; with AGGREGATE_CACHE_MAXSIZE, an
        LRU of aggregates fast-forwarded by one query for their newer events, handed out as copies."""
        size = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return FastRepository(
            event_store=self.events,
            snapshot_store=self.snapshots,
            cache_maxsize=int(size) if size and int(size) > 0 else None,
            fastforward=True,
            deepcopy_from_cache=True,
        )

    def construct_transcoder(self) -> Transcoder:
        transcoder = MROJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        transcoder.register(UUIDAsHex())
        transcoder.register(DecimalAsStr())
        transcoder.register(DatetimeAsISO())
        transcoder.register(DateAsISO())

    def take_snapshot(self, aggregate_id: Any, version: int | None = None, projector_func: Any = None) -> None:
        """A snapshot is an optimisation: losing a race to write one is harmless,
        and must never look like a failed command (whose events are saved)."""
        try:
            if projector_func is None:
                super().take_snapshot(aggregate_id, version)
            else:
                super().take_snapshot(aggregate_id, version, projector_func)
        except IntegrityError:
            pass

    def _context(self, request: Request) -> Context:
        return Context(
            actor=request.actor,
            now=self.clock.now(),
            correlation_id=request.correlation_id,
            policy=self.policy(),
            scheduled_for=request.scheduled_for,
            override_rule_id=request.override.rule_id if request.override else None,
            override_reason=request.override.reason if request.override else None,
        )

    def _receivable_context(self, request: Request, receivable: Receivable, customer: Customer | None = None) -> Context:
        """The context of a command on `receivable`: the policy in force as the strategy its
        customer matches makes it, narrowed to the customer's contact hours (ADR 0050)."""
        resolved = self.strategy_for(receivable, customer)
        return replace(self._context(request), policy=resolved.policy, strategy=resolved.strategy)

    def strategy_for(
        self, receivable: Receivable, customer: Customer | None = None, policy: CollectionPolicy | None = None
    ) -> strategy.Resolved:
        """The strategy `receivable` follows under `policy` (default: in force) for its customer
        now, and the policy that makes. The customer is read only when the policy has strategies
        and the receivable's last event was not recorded under this version: a change of the
        customer's strategy facts re-plans its receivables (`replan_open`), so the strategy their
        last event recorded under the version in force is the one the customer matches."""
        policy = policy or self.policy()
        hours = strategy.hours_of(receivable.contact_hours)
        if customer is None and receivable.policy_version == policy.version:
            return strategy.Resolved(receivable.strategy, strategy.effective(policy, receivable.strategy, hours))
        facts = strategy.CustomerFacts(contact_hours=hours)
        if policy.strategies:
            customer = customer or self.get_customer(receivable.customer_id)
            facts = replace(customer.strategy_facts(), contact_hours=facts.contact_hours)
        return strategy.resolve(policy, facts, receivable.amount, receivable.currency)

    def _issue_context(self, request: Request, customer: Customer, fields: dict[str, Any]) -> Context:
        """The context of issuing a receivable for `customer` (its amount and currency as sent)."""
        try:
            amount = Decimal(str(fields.get("amount")))
        except ArithmeticError:
            amount = Decimal(0)  # refused by `issue` itself
        if not amount.is_finite():
            amount = Decimal(0)
        resolved = strategy.resolve(self.policy(), customer.strategy_facts(), amount, str(fields.get("currency")))
        return replace(self._context(request), policy=resolved.policy, strategy=resolved.strategy)

    def _replan_context(self, request: Request, receivable: Receivable, customer: Customer | None) -> Context:
        """A re-plan follows the customer's facts now, its contact hours included."""
        customer = customer or self.get_customer(receivable.customer_id)
        resolved = strategy.resolve(self.policy(), customer.strategy_facts(), receivable.amount, receivable.currency)
        return replace(self._context(request), policy=resolved.policy, strategy=resolved.strategy)

    def replan_open(self, request: Request, customer_id: str | None = None, *, reason: str) -> list[uuid.UUID]:
        """Re-plan the open receivables (of one customer, or all) whose plan the policy in force
        and their customer's facts now change: each records `Replanned`, from which the timers
        are planned anew. Returns the ids re-planned. The change that calls this was authorised
        already (a customer update, a policy adoption): no role is checked here."""
        with self._measured("replan_open"):
            policy = self.policy()
            same: dict[tuple[Any, ...], bool] = {}
            done: list[uuid.UUID] = []
            customers: dict[str, Customer] = {}
            batch: list[Receivable] = []
            for rid in self.open_receivables(customer_id):
                try:
                    receivable = self.get_receivable(rid)
                    customer = customers.get(receivable.customer_id) or self.get_customer(receivable.customer_id)
                except NotFoundError:
                    continue
                customers[receivable.customer_id] = customer
                if not lifecycle.allows(receivable.state, "replan"):
                    continue
                new = strategy.resolve(policy, customer.strategy_facts(), receivable.amount, receivable.currency)
                hours_now = strategy.hours_of(customer.preferred_contact_hours)
                key = (receivable.policy_version, receivable.strategy, strategy.hours_of(receivable.contact_hours), new.strategy, hours_now)
                if key not in same:
                    old = self.effective_policy(receivable.policy_version, receivable.strategy, receivable.contact_hours)
                    same[key] = key[2] == hours_now and key[1] == new.strategy and _same_figures(old, new.policy)
                if same[key]:
                    continue
                ctx = replace(self._context(request), policy=new.policy, strategy=new.strategy)
                try:
                    receivable.replan(ctx, reason=reason, contact_hours=customer.preferred_contact_hours)
                except (CommandNotAllowedError, RuleViolationError):
                    continue
                batch.append(receivable)
                if len(batch) >= REPLAN_BATCH:
                    done += self._save_replans(request, batch, reason)
                    batch = []
            return done + self._save_replans(request, batch, reason)

    def _save_replans(self, request: Request, batch: list[Receivable], reason: str) -> list[uuid.UUID]:
        """Save re-plans decided in memory in one transaction; if any receivable was written
        meanwhile, each is re-decided and saved on its own (as any command would be)."""
        if not batch:
            return []
        try:
            self.save(*batch)
            return [r.id for r in batch]
        except IntegrityError:
            done = []
            for r in batch:
                try:
                    self._execute(
                        Request(request.actor, correlation_id=request.correlation_id), r.id, "replan", check=False, reason=reason
                    )
                except (CommandNotAllowedError, RuleViolationError):
                    continue  # closed meanwhile, or re-planned by someone else
                done.append(r.id)
            return done

    def simulate_policy(
        self, actor: Actor, candidate: CollectionPolicy, customer_id: str, *, horizon_days: int = SIMULATION_DAYS
    ) -> Simulation:
        """The dated plan each open receivable of the customer would follow under `candidate`,
        beside the plan under the policy in force: what time alone would do (ADR 0051)."""
        check_view(actor.role, "policy.simulate")
        customer = self.get_customer(customer_id)
        now = self.clock.now()
        until = now + timedelta(days=horizon_days)
        current = self.policy()
        plans = []
        for rid in self.open_receivables(customer_id):
            try:
                r = self.get_receivable(rid)
            except NotFoundError:
                continue
            pair = []
            for policy in (current, candidate):
                resolved = strategy.resolve(policy, customer.strategy_facts(), r.amount, r.currency)
                steps = simulation.plan(
                    r, resolved.policy, resolved.strategy, since=now, until=until, preferred_channel=customer.preferred_channel
                )
                pair.append(PolicyPlan(policy.version, resolved.strategy, steps))
            plans.append(ReceivablePlan(r, pair[0], pair[1]))
        plans.sort(key=lambda p: (p.receivable.due_on, p.receivable.invoice_number))
        return Simulation(customer_id, now, until, plans)

    def effective_policy(self, version: str, strategy_id: str | None, contact_hours: Any = None) -> CollectionPolicy:
        """What an event that recorded `version` and `strategy_id` was decided under (replay, timers)."""
        return strategy.effective(self.policy_version(version), strategy_id, strategy.hours_of(contact_hours))

    # -- the policy ---------------------------------------------------------

    POLICY_REFRESH_SECONDS = 1.0

    def install_policy(self, policy: CollectionPolicy) -> bool:
        """At start: adopt the configured policy unless its version is in the book already.
        Returns whether it replaced another now (the caller then re-plans: `replan_open`)."""
        book = self._policy_book()
        ctx = Context(Actor("system:startup", "supervisor"), self.clock.now(), f"startup:{uuid.uuid4()}", policy)
        if book is None:
            book = PolicyBook.open(ctx)
        adopted = False
        if policy.version in book.versions:
            # Compared as policies, not documents: a field added later with a default
            # does not make a version adopted before it look different.
            if book.policy(policy.version) != policy:
                raise PolicyConflictError(
                    f"policy version {policy.version} was adopted before with other figures; give the file a new version"
                )
        else:
            replaces = book.current is not None
            book.adopt(ctx, policy)
            try:
                self.save(book)
                adopted = replaces
            except IntegrityError:  # another process adopted it at the same moment
                pass
        self._refresh_policy(force=True)
        return adopted

    def policy(self) -> CollectionPolicy:
        """The policy in force (re-read from the book at most once a second)."""
        if self._policy is None or time.monotonic() - self._policy_loaded_at > self.POLICY_REFRESH_SECONDS:
            self._refresh_policy()
        assert self._policy is not None
        return self._policy

    def policy_version(self, version: str) -> CollectionPolicy:
        """What a given version said (versions never change once adopted)."""
        found = self._policy_versions.get(version)
        if found is None:
            book = self._policy_book()
            if book is None or version not in book.versions:
                raise NotFoundError(f"no policy version '{version}'")
            found = self._policy_versions[version] = book.policy(version)
        return found

    def adopt_policy(self, request: Request, policy: CollectionPolicy) -> PolicyBook:
        with self._measured("adopt_policy", POLICY_BOOK_ID):
            check_view(request.actor.role, "policy.write")
            book = self._policy_book()
            assert book is not None, "install_policy runs at start"
            book.adopt(self._context(request), policy)
            try:
                self.save(book)
            except IntegrityError:
                raise VersionMismatchError(book.version - 1, book.version) from None
            self._refresh_policy(force=True)
        self.replan_open(request, reason=f"policy {policy.version} adopted")
        return book

    def policy_book(self) -> PolicyBook:
        book = self._policy_book()
        if book is None:
            raise NotFoundError("no policy adopted yet")
        return book

    def _policy_book(self) -> PolicyBook | None:
        try:
            return self.repository.get(POLICY_BOOK_ID)
        except AggregateNotFoundError:
            return None

    def _refresh_policy(self, force: bool = False) -> None:
        with self._policy_lock:
            if not force and self._policy is not None and time.monotonic() - self._policy_loaded_at <= self.POLICY_REFRESH_SECONDS:
                return
            book = self.policy_book()
            assert book.current is not None
            self._policy = self.policy_version(book.current)
            self._policy_loaded_at = time.monotonic()

    # -- customers ----------------------------------------------------------

    def register_customer(self, request: Request, **fields: Any) -> Outcome:
        with self._measured("register_customer", customer_uuid(fields["customer_id"])):
            return self._register_customer(request, **fields)

    def _register_customer(self, request: Request, **fields: Any) -> Outcome:
        return self._unit_of_work(
            request,
            customer_uuid(fields["customer_id"]),
            lambda _: Customer.register(self._context(request), **fields),
            resource="customer",
            exists=DuplicateError(f"customer '{fields['customer_id']}' exists already"),
        )

    def update_customer(self, request: Request, customer_id: str, **patch: Any) -> Outcome:
        """A partial update of the customer file (If-Match and Idempotency-Key as for receivables)."""
        with self._measured("update_customer", customer_uuid(customer_id)):
            return self._update_customer(request, customer_id, **patch)

    def _update_customer(self, request: Request, customer_id: str, **patch: Any) -> Outcome:
        check_view(request.actor.role, "customers.write")

        def act(customer: Customer) -> Customer:
            customer.update(self._context(request), **patch)
            return customer

        outcome = self._unit_of_work(
            request, customer_uuid(customer_id), act, load=lambda: self.get_customer(customer_id), resource="customer"
        )
        if any(f in patch for f in STRATEGY_FIELDS):
            # Its open receivables follow the strategy it matches now, from now (ADR 0050);
            # a retry finds them re-planned already and records nothing.
            self.replan_open(request, customer_id, reason=f"customer {customer_id} changed: " + ", ".join(
                f for f in STRATEGY_FIELDS if f in patch
            ))
        return outcome

    def record_revisit(self, request: Request, customer_id: str, **fields: Any) -> Outcome:
        """A revisit after collection, recorded on the customer (a fact, like a contact)."""
        with self._measured("record_revisit", customer_uuid(customer_id)):
            check_view(request.actor.role, "customers.revisit")

            def act(customer: Customer) -> Customer:
                customer.record_revisit(self._context(request), **fields)
                return customer

            return self._unit_of_work(
                request, customer_uuid(customer_id), act, load=lambda: self.get_customer(customer_id), resource="customer"
            )

    def get_customer(self, customer_id: str, *, version: int | None = None) -> Customer:
        try:
            customer = self.repository.get(customer_uuid(customer_id), version=version)
        except AggregateNotFoundError:
            raise NotFoundError(f"no customer '{customer_id}'") from None
        if not isinstance(customer, Customer):
            raise NotFoundError(f"no customer '{customer_id}'")
        return customer

    def get_customer_as_of(self, customer_id: str, as_of: datetime) -> Customer | None:
        """The customer file as it was at `as_of` (None if not registered by then)."""
        version = None
        for event in self.events.get(customer_uuid(customer_id)):
            if event.timestamp > as_of:
                break
            version = event.originator_version
        return None if version is None else self.get_customer(customer_id, version=version)

    # -- holds (ADR 0052) ---------------------------------------------------

    def hold_customer(self, request: Request, customer_id: str, *, reason: str, until: datetime | None = None) -> Outcome:
        """Put collection with the customer on hold, and each of its open receivables with it."""
        with self._measured("hold_customer", customer_uuid(customer_id)):
            return self._customer_hold(
                request, customer_id, lambda c, ctx: c.place_hold(ctx, reason=reason, until=until), reason
            )

    def release_customer_hold(self, request: Request, customer_id: str, *, reason: str) -> Outcome:
        """Release the customer's hold on it and on each of its receivables (their own holds stay)."""
        with self._measured("release_customer_hold", customer_uuid(customer_id)):
            return self._customer_hold(request, customer_id, lambda c, ctx: c.release_hold(ctx, reason=reason), reason)

    def _customer_hold(
        self, request: Request, customer_id: str, act: Callable[[Customer, Context], None], reason: str
    ) -> Outcome:
        """The customer's hold event and its copy on (or release from) every open receivable of the
        customer, saved in one transaction; a concurrent write to any of them re-decides the whole
        (If-Match applies to the customer). A retry with the same Idempotency-Key answers as the first."""
        check_view(request.actor.role, "customers.hold")
        cid = customer_uuid(customer_id)
        with self._stripes[cid.int % LOCK_STRIPES]:
            for attempt in range(MAX_ATTEMPTS):
                replay = self._replay(request)
                if replay is not None:
                    return replay
                customer = self.get_customer(customer_id)
                if request.expected_version is not None and customer.version != request.expected_version:
                    raise VersionMismatchError(request.expected_version, customer.version)
                ctx = self._context(request)
                act(customer, ctx)
                receivables = [self.get_receivable(rid) for rid in self.open_receivables(customer_id)]
                changed = [r for r in receivables if _copy_customer_hold(r, customer, ctx, reason=reason)]
                record = self._key_record(request, 200, "customer", customer)
                try:
                    self.save(customer, *changed, *([record] if record is not None else []))
                except IntegrityError:
                    if request.expected_version is not None:
                        raise VersionMismatchError(request.expected_version, self.get_customer(customer_id).version) from None
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
                    continue
                return Outcome(customer, 200)
        raise ConcurrencyExhaustedError(f"the customer's hold lost {MAX_ATTEMPTS} races in a row; retry it")

    # -- receivables --------------------------------------------------------

    def issue_receivable(self, request: Request, **fields: Any) -> Outcome:
        with self._measured("issue", receivable_id(fields["invoice_number"])):
            return self._issue_receivable(request, **fields)

    def _issue_receivable(self, request: Request, **fields: Any) -> Outcome:
        check_command(request.actor.role, "issue")
        replay = self._replay(request)
        if replay is not None:
            return replay
        customer = self.get_customer(fields["customer_id"])
        outcome = self._unit_of_work(
            request,
            receivable_id(fields["invoice_number"]),
            lambda _: self._issued(self._issue_context(request, customer, fields), customer, fields),
            resource="receivable",
            exists=DuplicateError(f"invoice '{fields['invoice_number']}' is issued already"),
        )
        if outcome.replayed:
            return outcome
        return self._recheck_customer_hold(request, outcome, customer)

    def _recheck_customer_hold(self, request: Request, issued: Outcome, seen: Customer) -> Outcome:
        """A customer's hold placed or released between reading the customer and saving the new
        receivable (its copy to the customer's receivables listed them before this one was
        saved): the receivable is brought in line now (ADR 0052)."""
        customer = self.get_customer(seen.customer_id)
        if customer.version == seen.version:
            return issued
        follow_up = Request(request.actor, correlation_id=request.correlation_id)

        def act(receivable: Receivable) -> Receivable:
            _copy_customer_hold(receivable, customer, self._context(follow_up), reason="the customer's hold was released")
            return receivable

        rid = issued.resource.id
        after = self._unit_of_work(follow_up, rid, act, load=lambda: self.get_receivable(rid), resource="receivable")
        return Outcome(after.resource, issued.status)

    def _issued(self, ctx: Context, customer: Customer, fields: dict[str, Any]) -> Receivable:
        """A new receivable; a customer on hold has it held from its first moment (ADR 0052)."""
        receivable = Receivable.issue(ctx, timezone=customer.timezone, contact_hours=customer.preferred_contact_hours, **fields)
        _copy_customer_hold(receivable, customer, ctx, reason="")
        return receivable

    def execute(self, request: Request, receivable: uuid.UUID, command: str, **fields: Any) -> Outcome:
        """Run one lifecycle command: load, decide, save (re-decided on a concurrent write)."""
        with self._measured(command, receivable):
            return self._execute(request, receivable, command, **fields)

    def _execute(self, request: Request, receivable: uuid.UUID, command: str, *, check: bool = True, **fields: Any) -> Outcome:
        if check:
            check_command(request.actor.role, command)
        if command not in lifecycle.COMMANDS:
            raise NotFoundError(f"no command '{command}'")

        def act(aggregate: Receivable) -> Receivable:
            check_own(request.actor, aggregate)
            if command == "replan":  # the customer's facts now, its contact hours included
                customer = self.get_customer(aggregate.customer_id)
                fields["contact_hours"] = customer.preferred_contact_hours
                ctx = self._replan_context(request, aggregate, customer)
            else:
                ctx = self._receivable_context(request, aggregate)
            if command == "record_contact":
                ctx = replace(ctx, customer_contacts=tuple(self._customer_contacts(aggregate, ctx, fields.get("occurred_at"))))
            getattr(aggregate, command)(ctx, **fields)
            return aggregate

        return self._unit_of_work(
            request, receivable, act, load=lambda: self.get_receivable(receivable), resource="receivable", what=command
        )

    def _unit_of_work(
        self,
        request: Request,
        aggregate_id: uuid.UUID,
        act: Callable[[Any], Any],
        *,
        resource: str,
        load: Callable[[], Any] | None = None,
        exists: CollectionsError | None = None,
        what: str = "the command",
    ) -> Outcome:
        """One command on one aggregate, the same way for every use case: the idempotency key
        answered first, commands on one aggregate in this process taking turns (a lock stripe),
        then load → decide (`act`) → save with the key's record in one transaction. A creation
        (`load` None) that finds the aggregate exists is `exists` (or the first response, for a
        retry with the same key). A concurrent write is re-loaded and re-decided (bounded,
        jittered backoff), so the command is never lost and never applied to a state it was not
        valid for; with If-Match (`expected_version`) it is reported instead."""
        with self._stripes[aggregate_id.int % LOCK_STRIPES]:
            for attempt in range(MAX_ATTEMPTS):
                replay = self._replay(request)
                if replay is not None:
                    return replay
                if load is None:
                    if self._exists(aggregate_id):
                        assert exists is not None
                        return self._after_conflict(request, exists)
                    current = None
                else:
                    current = load()
                    if request.expected_version is not None and current.version != request.expected_version:
                        raise VersionMismatchError(request.expected_version, current.version)
                try:
                    aggregate = act(current)
                except CollectionsError:
                    # A duplicate that committed between our key check and our load made
                    # this command moot: answer as the first request was answered.
                    replay = self._replay(request)
                    if replay is not None:
                        return replay
                    raise
                try:
                    self.save(aggregate, self._key_record(request, 201 if load is None else 200, resource, aggregate))
                except IntegrityError:
                    if load is None:
                        assert exists is not None
                        return self._after_conflict(request, exists)
                    if request.expected_version is not None:
                        raise VersionMismatchError(request.expected_version, load().version) from None
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
                    continue
                return Outcome(aggregate, 201 if load is None else 200)
        raise ConcurrencyExhaustedError(f"{what} lost {MAX_ATTEMPTS} races in a row; retry it")

    def _customer_contacts(self, receivable: Receivable, ctx: Context, at: datetime | None = None) -> Sequence[ContactAttempt]:
        """The customer's contacts from before the contact at `at` (default now), far enough back
        for the rolling cap and for that day's phone calls in any time zone (the rules leave
        out this receivable's own, and those that occurred after `at`)."""
        days = max(ctx.policy.contact.attempts_period_days, 2)
        return self.customer_contacts(receivable.customer_id, (at or ctx.now) - timedelta(days=days))

    def contact_check(self, actor: Actor, rid: uuid.UUID, *, channel: str, at: datetime | None = None) -> ContactCheck:
        """The gate before a contact: what one by `channel` at `at` (default now) would break,
        under the policy in force (as the receivable's strategy makes it), and the first instant
        from then that breaks nothing."""
        check_view(actor.role, "receivables.contact_check")
        receivable = self.get_receivable(rid)
        # The policy as the receivable's strategy makes it, narrowed to the customer's hours (ADR 0050).
        policy = self.strategy_for(receivable).policy
        ctx = Context(actor=actor, now=self.clock.now(), correlation_id="contact-check", policy=policy)
        at = at or ctx.now
        if at.tzinfo is None:
            raise RuleViolationError("field.timezone", "'at' needs a time zone, e.g. 2026-03-01T09:00:00Z", field="at")
        if abs(at - ctx.now) > CONTACT_CHECK_REACH:
            raise RuleViolationError(
                "contact_check.too_far", f"'at' must be within {CONTACT_CHECK_REACH.days} days of now", field="at"
            )
        others = self._customer_contacts(receivable, ctx, at)
        return receivable.contact_check(ctx.policy, channel=channel, at=at, others=others)

    def get_receivable(self, rid: uuid.UUID, *, version: int | None = None) -> Receivable:
        try:
            aggregate = self.repository.get(rid, version=version)
        except AggregateNotFoundError:
            raise NotFoundError(f"no receivable {rid}") from None
        if not isinstance(aggregate, Receivable):
            raise NotFoundError(f"no receivable {rid}")
        if version is not None and aggregate.version != version:
            raise NotFoundError(f"receivable {rid} has no version {version}")
        return aggregate

    def get_receivable_as_of(self, rid: uuid.UUID, as_of: datetime) -> Receivable:
        """The receivable as it was at `as_of`: the last version recorded at or before it."""
        version = None
        for event in self.events.get(rid):
            if event.timestamp > as_of:
                break
            version = event.originator_version
        if version is None:
            raise NotFoundError(f"receivable {rid} did not exist at {as_of.isoformat()}")
        return self.get_receivable(rid, version=version)

    def history(self, rid: uuid.UUID) -> Iterator[Any]:
        self.get_receivable(rid)
        yield from self.events.get(rid)

    # -- batches: many commands decided in memory, saved in one transaction (imports) --

    def exists(self, aggregate_id: uuid.UUID) -> bool:
        """Whether anything is recorded under this id."""
        return self._exists(aggregate_id)

    def replay(self, request: Request) -> Outcome | None:
        """The first answer to this request's idempotency key, if it was answered already."""
        return self._replay(request)

    def decide_registration(self, request: Request, **fields: Any) -> Customer:
        """What `register_customer` decides, in memory: nothing is saved (see `save_decided`)."""
        check_view(request.actor.role, "customers.write")
        return Customer.register(self._context(request), **fields)

    def decide_issue(self, request: Request, customer: Customer, **fields: Any) -> Receivable:
        """What `issue_receivable` decides for `customer`, in memory: nothing is saved."""
        check_command(request.actor.role, "issue")
        return self._issued(self._issue_context(request, customer, fields), customer, fields)

    def decide(self, request: Request, receivable: Receivable, command: str, **fields: Any) -> Receivable:
        """What `execute` decides, on a receivable already loaded (and maybe acted on) in memory."""
        check_command(request.actor.role, command)
        if command not in lifecycle.COMMANDS or command == "record_contact":
            raise NotFoundError(f"no command '{command}' to decide in a batch")
        getattr(receivable, command)(self._receivable_context(request, receivable), **fields)
        return receivable

    def save_decided(self, decided: Sequence[Decided]) -> None:
        """Save aggregates decided in memory (`decide_*`), each command with its request's
        idempotency record, in one transaction: all or nothing. An aggregate acted on by several
        commands appears once per command. Raises IntegrityError when any of them was written
        meanwhile (the caller then re-decides those commands one by one)."""
        records = [
            record
            for d in decided
            if (record := self._key_record(d.request, d.status, d.resource, d.aggregate, d.version)) is not None
        ]
        aggregates = {id(d.aggregate): d.aggregate for d in decided}
        self.save(*aggregates.values(), *records)

    # -- idempotency helpers ------------------------------------------------

    def _exists(self, aggregate_id: uuid.UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _key_record(
        self, request: Request, status: int, resource: str, aggregate: Any, version: int | None = None
    ) -> IdempotencyRecord | None:
        """The record that answers a retry of `request` (None without an idempotency key): the
        aggregate at `version` (default: after its pending events)."""
        if request.idempotency is None:
            return None
        if version is None:
            pending = aggregate.pending_events
            version = pending[-1].originator_version if pending else aggregate.version
        return IdempotencyRecord._create(
            IdempotencyRecord.Recorded,
            id=idempotency_record_id(request.actor.id, request.idempotency.key),
            timestamp=self.clock.now(),
            request_hash=request.idempotency.request_hash,
            status=status,
            resource=resource,
            resource_id=aggregate.id,
            resource_version=version,
        )

    def _replay(self, request: Request) -> Outcome | None:
        if request.idempotency is None:
            return None
        rid = idempotency_record_id(request.actor.id, request.idempotency.key)
        try:
            record: IdempotencyRecord = self.repository.get(rid)
        except AggregateNotFoundError:
            return None
        if record.request_hash != request.idempotency.request_hash:
            raise IdempotencyKeyReusedError("this Idempotency-Key was used with a different request")
        resource = self.repository.get(record.resource_id, version=record.resource_version)
        return Outcome(resource, record.status, replayed=True)

    def _after_conflict(self, request: Request, error: Exception) -> Outcome:
        replay = self._replay(request)
        if replay is not None:
            return replay
        raise error


def _copy_customer_hold(receivable: Receivable, customer: Customer, ctx: Context, *, reason: str) -> bool:
    """Bring the receivable's copy of its customer's hold in line with the customer (ADR 0052):
    copy a hold in force (unless the same is copied already), release a copy the customer no
    longer has. Closed receivables are left alone. True when an event was recorded."""
    hold = customer.hold_in_force(ctx.now)
    copied = next((h for h in receivable.holds_in_force(ctx.now) if h.scope == "customer"), None)
    if hold is not None:
        if not lifecycle.allows(receivable.state, "hold"):
            return False
        if copied is not None and (copied.reason, copied.until) == (hold.reason, hold.until):
            return False
        receivable.hold(ctx, reason=hold.reason, until=hold.until, scope="customer", placed_by=hold.placed_by)
        return True
    if copied is None or not lifecycle.allows(receivable.state, "release_hold"):
        return False
    receivable.release_hold(ctx, reason=reason, scope="customer")
    return True

