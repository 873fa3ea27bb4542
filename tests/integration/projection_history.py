"""A deterministic, realistic collection history for projection tests and benchmarks.

`History(app, receivables=N, seed=S).run()` records, through the real aggregates'
command methods (each given a `Context` whose `now` moves forward) and
`app.save`, the life of N receivables of a few customers in Shanghai and Los
Angeles, in CNY, USD and JPY (no minor units), worked by a few collectors:
pre-due reminders, falling due, follow-ups and contacts, promises kept (a
partial one returns the receivable to follow-up) and broken, installment
plans, partial and full payments (some back-dated), disputes resolved with a
lower amount (or none), reassignments, escalations, legal referrals,
write-offs requested by one supervisor and approved by another, recoveries,
and a policy change half-way. Everything is drawn from
`random.Random(seed)`, so the same arguments give the same events (ids,
timestamps, amounts); the clock is never read.

Each receivable follows a plan of dated intents made when it is issued; an
intent runs only if it still fits the receivable's state then (a guard per
intent mirrors the domain's rules), so plans never raise. Intents of every
receivable run in time order; aggregates are saved in chunks of about
`save_every` events, after which `after_save(events_so_far)` is called (tests
catch projections up there, as a live system would between writes).

`table_contents(engine)` gives every read-model table (`rm_*`), rows sorted by
primary key, for comparing a live read model with a rebuilt one;
`describe_differences(a, b)` says briefly where two such snapshots differ.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from collections_es.domain import calendar
from collections_es.domain.customer import Customer
from collections_es.domain.compliance import PREVENTIVE
from collections_es.domain.errors import CollectionsError, RuleViolationError
from collections_es.domain.lifecycle import FINAL_STATES
from collections_es.domain.money import minor_units
from collections_es.domain.policy import CollectionPolicy
from collections_es.domain.receivable import Receivable
from collections_es.domain.trail import SCHEDULER_ACTOR, Actor, Context
from projections.base import metadata

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai, as tests/conftest.py

SERVICE = Actor("erp", "service")
GATEWAY = Actor("payment-gateway", "service")
SCHEDULER = Actor(SCHEDULER_ACTOR, "service")
SUPERVISORS = (Actor("supervisor-1", "supervisor"), Actor("supervisor-2", "supervisor"))
COLLECTORS = ("collector-1", "collector-2", "collector-3", "collector-4")
CUSTOMER_SERVICE = Actor("customer_service-1", "customer_service")

# customer id, name, time zone, tier, preferred channel, currencies invoiced (weighted)
CUSTOMERS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("C-SH-1", "上海示例贸易有限公司", "Asia/Shanghai", "A", "wechat", ("CNY", "CNY", "CNY", "USD")),
    ("C-SH-2", "苏州精工机械有限公司", "Asia/Shanghai", "B", "phone", ("CNY", "CNY", "JPY")),
    ("C-SH-3", "杭州云端软件有限公司", "Asia/Shanghai", "C", "email", ("CNY",)),
    ("C-LA-1", "Pacific Freight LLC", "America/Los_Angeles", "A", "email", ("USD", "USD", "CNY")),
    ("C-LA-2", "Sunset Produce Inc.", "America/Los_Angeles", "B", "phone", ("USD", "JPY")),
)

CLOSED = FINAL_STATES | {"written_off"}
OPEN_STATES = ("issued", "reminded", "due", "following_up", "promised", "overdue_escalated", "legal")
WORK_HOURS = (9, 10, 11, 14, 15, 16, 17)
FATES = (("prompt", 30), ("late_kept", 22), ("broken", 14), ("escalated", 12), ("installments", 7), ("quiet", 15))


@dataclass
class Stats:
    """What a run recorded."""

    customers: int = 0
    receivables: int = 0
    events: int = 0  # every event saved by the run (customers, policy book, receivables)
    by_type: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # intents whose moment no longer fitted
    saves: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    fates: Counter = field(default_factory=Counter)


@dataclass(order=True)
class _Step:
    at: datetime
    seq: int
    invoice: str = field(compare=False)
    intent: str = field(compare=False)
    params: dict[str, Any] = field(compare=False, default_factory=dict)


class History:
    """A generator of one history into `app`; call `run()` once.

    `span_days` is how long new invoices keep being issued; plans reaching past
    `span_days + tail_days` are cut there, so the last receivables stay open.
    `prefix` keeps invoice numbers unique when several histories share a store.
    """

    def __init__(
        self,
        app: Any,
        *,
        receivables: int,
        seed: int = 7,
        start: datetime = START,
        span_days: int = 150,
        tail_days: int = 60,
        prefix: str = "INV",
        policy_change: bool = True,
    ) -> None:
        self.app = app
        self.n = receivables
        self.rng = random.Random(seed)
        self.start = start
        self.end = start + timedelta(days=span_days + tail_days)
        self.span_days = span_days
        self.prefix = prefix
        self.policy: CollectionPolicy = app.policy()
        self.grace = self.policy.promise_grace_days
        self.policy_change_at = start + timedelta(days=span_days // 2) if policy_change else None
        self.stats = Stats()
        self._heap: list[_Step] = []
        self._seq = 0
        self._live: dict[str, Receivable] = {}  # receivables with steps still to come, or unsaved events
        self._left: Counter = Counter()  # steps still to come per invoice
        self._dirty: dict[str, Any] = {}
        self._pending = 0
        self._customers = {c[0]: c for c in CUSTOMERS}
        self._correlation = 0

    # ---- running ------------------------------------------------------------------

    def run(self, *, save_every: int = 500, after_save: Callable[[int], None] | None = None) -> Stats:
        """Record the whole history; returns what was recorded."""
        self._register_customers()
        self._flush(after_save)
        issues = sorted(self._issue_moment() for _ in range(self.n))
        for i, (at, customer) in enumerate(issues):
            self._push(at, f"{self.prefix}-{i + 1:07d}", "issue", customer=customer)
        if self.policy_change_at is not None:
            self._push(self.policy_change_at, "", "adopt_policy")
        while self._heap:
            step = heapq.heappop(self._heap)
            if step.at > self.end:
                break
            self._do(step)
            if self._pending >= save_every:
                self._flush(after_save)
        self._flush(after_save)
        return self.stats

    def _push(self, at: datetime, invoice: str, intent: str, **params: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Step(at, self._seq, invoice, intent, params))
        if invoice:
            self._left[invoice] += 1

    def _ctx(self, actor: Actor, now: datetime, scheduled_for: datetime | None = None) -> Context:
        self._correlation += 1
        return Context(actor, now, f"history-{self._correlation}", self.policy, scheduled_for=scheduled_for)

    def _flush(self, after_save: Callable[[int], None] | None) -> None:
        if not self._dirty:
            return
        self.app.save(*self._dirty.values())
        self.stats.saves += 1
        self._dirty.clear()
        self._pending = 0
        # Receivables with nothing more to do leave memory (a million-event run stays small).
        for invoice in [i for i in self._live if not self._left[i]]:
            del self._live[invoice]
            del self._left[invoice]
        if after_save is not None:
            after_save(self.stats.events)

    def _recorded(self, key: str, aggregate: Any, now: datetime, count: int = 1) -> None:
        self._dirty[key] = aggregate
        self._pending += count
        self.stats.events += count
        for event in aggregate.pending_events[-count:]:
            self.stats.by_type[type(event).__name__] += 1
        self.stats.first_at = self.stats.first_at or now
        self.stats.last_at = now

    # ---- customers and the policy ------------------------------------------------------

    def _register_customers(self) -> None:
        now = self.start - timedelta(days=3)
        for i, (cid, name, tz, tier, channel, _) in enumerate(CUSTOMERS):
            customer = Customer.register(
                self._ctx(SERVICE, now + timedelta(minutes=i)),
                customer_id=cid,
                name=name,
                timezone=tz,
                tier=tier,
                preferred_channel=channel,
                contacts={"email": f"ap@{cid.lower()}.example.com", "phone": f"+1-555-01{i:02d}"},
            )
            self._recorded(f"customer:{cid}", customer, now)
            self.stats.customers += 1

    def _adopt_policy(self, now: datetime) -> None:
        book = self.app.policy_book()
        changed = self.policy.model_copy(
            update={"version": f"{self.policy.version}-h", "escalate_after_days": self.policy.escalate_after_days - 5}
        )
        book.adopt(self._ctx(SUPERVISORS[0], now), changed)
        self.policy = changed
        self._recorded("policy_book", book, now)

    # ---- time ---------------------------------------------------------------------

    def _issue_moment(self) -> tuple[datetime, str]:
        """When an invoice is issued, and to which customer."""
        day = self.start.date() + timedelta(days=self.rng.randrange(self.span_days))
        cid = self.rng.choice(CUSTOMERS)[0]
        return self._work_moment(day, self._customers[cid][2]), cid

    def _work_moment(self, day: date, tz: str) -> datetime:
        """A moment in office hours on `day` (or the next weekday), local to `tz`, as UTC."""
        while day.weekday() >= 5:
            day += timedelta(days=1)
        local = datetime.combine(day, time(self.rng.choice(WORK_HOURS), self.rng.randrange(60), self.rng.randrange(60)))
        return local.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)

    def _scheduler_moment(self, at: datetime) -> datetime:
        """When a scheduler tick notices a timer due at `at`: a few minutes later."""
        return at + timedelta(minutes=self.rng.randrange(1, 30), seconds=self.rng.randrange(60))

    # ---- plans --------------------------------------------------------------------

    def _plan(self, invoice: str, r: Receivable, issued_at: datetime) -> None:
        """Dated intents for one receivable, drawn once at issue; later guards skip what no longer fits."""
        rng, tz, due = self.rng, r.timezone, r.due_on
        fate = rng.choices([f for f, _ in FATES], weights=[w for _, w in FATES])[0]
        self.stats.fates[fate] += 1
        steps: list[tuple[datetime, str, dict[str, Any]]] = []
        due_starts = calendar.start_of_day(due, tz)

        def work(day: date, intent: str, **params: Any) -> datetime:
            at = max(self._work_moment(day, tz), issued_at + timedelta(minutes=5))
            steps.append((at, intent, params))
            return at

        def timer(at: datetime, intent: str, **params: Any) -> None:
            steps.append((self._scheduler_moment(at), intent, {"scheduled_for": at, **params}))

        def reminder() -> None:
            day = calendar.business_day_on_or_before(due - timedelta(days=self.policy.reminder_lead_days), self.policy)
            at = max(calendar.first_contact_moment_on(day, tz, self.policy), issued_at + timedelta(hours=1))
            if at < due_starts:
                timer(at, "remind", channel=rng.choice(("email", "sms", "wechat")))

        def follow_up() -> None:
            timer(due_starts, "fall_due")
            if rng.random() < 0.7:
                day = due + timedelta(days=self.policy.follow_up_after_days)
                timer(calendar.first_contact_moment_on(day, tz, self.policy), "follow_up")
            else:  # a collector called first: a contact in `due` starts the follow-up
                work(due + timedelta(days=rng.randrange(0, 2)), "contact", outcome="reached")

        def promise(day: date, *, keep: bool, part: bool = False) -> date:
            promised_on = day + timedelta(days=rng.randrange(3, 12))
            work(day, "promise", promised_on=promised_on, share="part" if part else "all")
            if keep:
                count = rng.choice((1, 1, 2))
                pay_days = sorted(day + timedelta(days=rng.randrange(1, (promised_on - day).days + 1)) for _ in range(count))
                for k, pay_day in enumerate(pay_days):
                    work(pay_day, "pay_promise", last=k == count - 1, backdate=rng.choice((0, 0, 0, 1, 2)))
            elif rng.random() < 0.4:  # something, not enough
                work(day + timedelta(days=rng.randrange(1, 4)), "pay", share="small", backdate=0)
            return promised_on

        if rng.random() < 0.1 or r.collector is None:
            work(r.issued_on + timedelta(days=rng.randrange(1, 6)), "assign")
        if rng.random() < 0.15:
            work(r.issued_on + timedelta(days=rng.randrange(1, 10)), "contact", outcome=rng.choice(("acknowledged", "reached")))

        if fate == "prompt":
            if rng.random() < 0.6:
                reminder()
            payments = rng.choice((1, 1, 1, 2, 3))
            last = due + timedelta(days=rng.randrange(-20, 4))
            days = sorted(r.issued_on + timedelta(days=rng.randrange(0, max(1, (last - r.issued_on).days + 1))) for _ in range(payments))
            for k, day in enumerate(days):
                work(day, "pay", share="rest" if k == payments - 1 else "part", backdate=rng.choice((0, 0, 0, 1, 3, 8)))
            if days[-1] >= due:
                timer(due_starts, "fall_due")
        elif fate == "late_kept":
            reminder()
            follow_up()
            day = due + timedelta(days=rng.randrange(1, 6))
            work(day, "contact", outcome="reached")
            part = rng.random() < 0.3
            promised_on = promise(day + timedelta(days=rng.randrange(0, 3)), keep=True, part=part)
            work(promised_on + timedelta(days=rng.randrange(0, 10)), "pay", share="rest", backdate=rng.choice((0, 2)))
        elif fate == "installments":
            reminder()
            follow_up()
            day = due + timedelta(days=rng.randrange(2, 8))
            count = rng.choice((2, 3, 4))
            dates = [day + timedelta(days=14 * (k + 1)) for k in range(count)]
            work(day, "installments", dates=dates)
            for k, on in enumerate(dates):
                if k < count - 1 or rng.random() < 0.7:  # some plans break on the last installment
                    work(on - timedelta(days=rng.randrange(0, 3)), "pay_installment", backdate=0)
            timer(calendar.start_of_day(dates[-1] + timedelta(days=self.grace + 1), tz), "break")
        elif fate == "broken":
            reminder()
            follow_up()
            day = due + timedelta(days=rng.randrange(1, 5))
            work(day, "contact", outcome=rng.choice(("no_answer", "left_message")))
            work(day + timedelta(days=1), "contact", outcome="reached")
            promised_on = promise(day + timedelta(days=2), keep=False)
            timer(calendar.start_of_day(promised_on + timedelta(days=self.grace + 1), tz), "break")
            after = promised_on + timedelta(days=self.grace + 2)
            work(after, "contact", outcome=rng.choice(("refused", "reached", "no_answer")), channel="visit")
            if rng.random() < 0.5:
                promised_on = promise(after + timedelta(days=rng.randrange(1, 5)), keep=rng.random() < 0.6)
                timer(calendar.start_of_day(promised_on + timedelta(days=self.grace + 1), tz), "break")
                work(promised_on + timedelta(days=rng.randrange(0, 6)), "pay", share="rest", backdate=rng.choice((0, 1)))
            else:
                self._write_off_path(work, after + timedelta(days=rng.randrange(5, 20)))
        elif fate == "escalated":
            reminder()
            follow_up()
            for k in range(rng.randrange(1, 4)):
                work(due + timedelta(days=2 + 4 * k), "contact", outcome=rng.choice(("no_answer", "left_message", "refused")))
            if rng.random() < 0.3:
                work(due + timedelta(days=15), "escalate_now")  # a collector does not wait for the timer
            timer(calendar.start_of_day(due + timedelta(days=self.policy.escalate_after_days), tz), "escalate")
            after = due + timedelta(days=self.policy.escalate_after_days + rng.randrange(1, 10))
            if rng.random() < 0.5:
                work(after, "pay", share="part", backdate=rng.choice((0, 5)))
            self._write_off_path(work, after + timedelta(days=rng.randrange(1, 15)))
        else:  # quiet: reminded, due, followed up, then left open (or paid late in full)
            reminder()
            follow_up()
            if rng.random() < 0.5:
                work(due + timedelta(days=rng.randrange(5, 40)), "pay", share="rest", backdate=rng.choice((0, 10)))

        if rng.random() < 0.18:  # a dispute somewhere in its life
            raised = r.issued_on + timedelta(days=rng.randrange(1, 50))
            work(raised, "dispute")
            work(raised + timedelta(days=rng.randrange(2, 20)), "resolve", kind=rng.choice(("lower", "lower", "lower", "none", "to_paid")))
        if rng.random() < 0.25:  # reassigned
            work(r.issued_on + timedelta(days=rng.randrange(3, 80)), "assign")
        if rng.random() < 0.2:
            work(due + timedelta(days=rng.randrange(-5, 30)), "contact", outcome=rng.choice(("acknowledged", "other", "no_answer")))

        for at, intent, params in steps:
            self._push(at, invoice, intent, **params)

    def _write_off_path(self, work: Callable[..., datetime], day: date) -> None:
        rng = self.rng
        if rng.random() < 0.4:
            work(day, "legal")
            day += timedelta(days=rng.randrange(5, 30))
        requester = rng.randrange(2)
        work(day, "request_write_off", by=requester)
        work(day + timedelta(days=rng.randrange(1, 6)), "approve_write_off", by=1 - requester)
        if rng.random() < 0.3:
            work(day + timedelta(days=rng.randrange(20, 60)), "recover")

    # ---- doing --------------------------------------------------------------------

    def _do(self, step: _Step) -> None:
        now = step.at
        if step.intent == "adopt_policy":
            self._adopt_policy(now)
            return
        self._left[step.invoice] -= 1
        if step.intent == "issue":
            self._issue(step.invoice, now, step.params["customer"])
            return
        r = self._live[step.invoice]
        before = len(r.pending_events)
        try:
            done = self._perform(step.intent, r, now, step.params)
        except RuleViolationError as exc:
            if exc.rule_id not in PREVENTIVE:
                raise AssertionError(f"{step.intent} on {step.invoice} at {now.isoformat()} in {r.state}: {exc}") from exc
            # A preventive rule refused it (a follow-up by a channel the state does not
            # allow): as in life, the refused step does not happen. A contact is never
            # refused for its window or caps (ADR 0034): it is recorded with its breaches.
            done = False
        except CollectionsError as exc:  # a guard missed a rule: say which, loudly
            raise AssertionError(f"{step.intent} on {step.invoice} at {now.isoformat()} in {r.state}: {exc}") from exc
        if done:
            added = len(r.pending_events) - before
            # One event a step; two for a payment that keeps a promise (PaymentRecorded, PromiseKept).
            assert added == 1 or (added == 2 and type(r.pending_events[-1]).__name__ == "PromiseKept"), added
            self._recorded(step.invoice, r, now, count=added)
        else:
            self.stats.skipped[step.intent] += 1

    def _issue(self, invoice: str, now: datetime, customer: str) -> None:
        rng = self.rng
        cid, _, tz, _, _, currencies = self._customers[customer]
        currency = rng.choice(currencies)
        issued_on = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=rng.choice((0, 0, 0, 1, 2)))
        due_on = issued_on + timedelta(days=rng.choice((15, 30, 30, 30, 45, 60)))
        units = minor_units(currency)
        major = rng.choice((200, 1_000, 5_000, 20_000, 80_000)) * (150 if currency == "JPY" else 1)
        amount = Decimal(rng.randrange(major // 10 * 10**units, major * 10**units)).scaleb(-units)
        collector = None if rng.random() < 0.1 else rng.choice(COLLECTORS)
        r = Receivable.issue(
            self._ctx(SERVICE, now),
            invoice_number=invoice,
            customer_id=cid,
            timezone=tz,
            amount=amount,
            currency=currency,
            issued_on=issued_on,
            due_on=due_on,
            collector=collector,
        )
        self._live[invoice] = r
        self.stats.receivables += 1
        self._recorded(invoice, r, now)
        self._plan(invoice, r, now)

    def _share(self, r: Receivable, share: str) -> Decimal:
        """An amount of the balance: all of it, a part, or a small part (at least one minor unit)."""
        quantum = Decimal(1).scaleb(-minor_units(r.currency))
        balance = r.balance
        if share == "rest" or balance <= quantum:
            return balance
        fraction = Decimal(self.rng.randrange(10, 70) if share == "part" else self.rng.randrange(2, 10)) / 100
        amount = (balance * fraction).quantize(quantum, rounding=ROUND_DOWN)
        return min(max(amount, quantum), balance)

    def _perform(self, intent: str, r: Receivable, now: datetime, p: dict[str, Any]) -> bool:  # noqa: C901 - one dispatch
        state, rng = r.state, self.rng
        today = r.local_date(now)
        collector = Actor(r.collector or COLLECTORS[0], "collector")
        scheduled = p.get("scheduled_for")
        if state in CLOSED:
            if intent == "recover" and state == "written_off" and r.written_off_amount - r.recovered > 0:
                left = r.written_off_amount - r.recovered
                amount = left if rng.random() < 0.5 else self._share_of(left, r.currency)
                r.record_recovery(
                    self._ctx(GATEWAY, now), amount=amount, method="bank_transfer", paid_on=today, reference=self._reference(r)
                )
                return True
            return False
        if intent == "remind":
            if state not in ("issued", "reminded"):
                return False
            earliest = calendar.business_day_on_or_before(r.due_on - timedelta(days=self.policy.reminder_lead_days), self.policy)
            if today < earliest:
                return False
            r.send_reminder(self._ctx(SCHEDULER, now, scheduled), channel=p["channel"])
        elif intent == "fall_due":
            if state not in ("issued", "reminded") or today < r.due_on:
                return False
            r.fall_due(self._ctx(SCHEDULER, now, scheduled))
        elif intent == "follow_up":
            if state != "due":
                return False
            r.start_follow_up(self._ctx(SCHEDULER, now, scheduled), channel="email", note="formal dunning letter sent")
        elif intent == "contact":
            channel = p.get("channel") or rng.choice(("phone", "phone", "email", "wechat", "sms"))
            outcome = p["outcome"]
            r.record_contact(
                self._ctx(collector, now),
                channel=channel,
                outcome=outcome,
                note=f"{outcome} by {channel}",
                customer_attitude=rng.choice((None, "cooperative", "evasive", "hostile")),
                next_step=rng.choice((None, "call again", "send statement")),
            )
        elif intent == "promise":
            promised_on = p["promised_on"]
            if state not in ("due", "following_up", "overdue_escalated") or promised_on < today or r.balance <= 0:
                return False
            amount = r.balance if p["share"] == "all" else self._share(r, "part")
            r.promise_to_pay(self._ctx(collector, now), amount=amount, promised_on=promised_on, note="promised on the phone")
        elif intent == "installments":
            dates = p["dates"]
            if state not in ("due", "following_up", "overdue_escalated") or dates[0] < today or r.balance <= 0:
                return False
            quantum = Decimal(1).scaleb(-minor_units(r.currency))
            each = (r.balance / len(dates)).quantize(quantum, rounding=ROUND_DOWN)
            if each <= 0:
                return False
            amounts = [each] * (len(dates) - 1) + [r.balance - each * (len(dates) - 1)]
            r.agree_installment_plan(
                self._ctx(collector, now),
                installments=[{"due_on": d, "amount": a} for d, a in zip(dates, amounts)],
                reason="cash-flow difficulties, agreed with the finance manager",
            )
        elif intent in ("pay", "pay_promise", "pay_installment"):
            if r.balance <= 0:
                return False
            if intent == "pay":
                amount = self._share(r, p["share"])
            elif intent == "pay_promise":
                if r.promise is None:
                    return False
                amount = min(r.balance, r.promise["amount"] - r.paid_towards_promise())
                if not p["last"]:
                    amount = self._share_of(amount, r.currency)
            else:
                plan = r.installment_plan
                if plan is None:
                    return False
                owed = Decimal(0)
                for item in plan["installments"]:
                    owed += item["amount"]
                    if item["due_on"] >= today:
                        break
                amount = min(r.balance, owed - r.paid_towards_promise())
            if amount <= 0:
                return False
            paid_on = today - timedelta(days=p.get("backdate", 0))
            r.record_payment(
                self._ctx(GATEWAY, now),
                amount=amount,
                method=rng.choice(("bank_transfer", "bank_transfer", "alipay", "wechat_pay", "check")),
                paid_on=paid_on,
                reference=self._reference(r),
            )
        elif intent == "break":
            if state != "promised" or r.is_disputed or not r.is_commitment_broken(today, self.policy.promise_grace_days):
                return False
            r.break_promise(self._ctx(SCHEDULER, now, scheduled), reason="promise not kept after grace")
        elif intent in ("escalate", "escalate_now"):
            if state not in ("due", "following_up") or (intent == "escalate" and r.is_disputed):
                return False
            actor = SCHEDULER if intent == "escalate" else collector
            r.escalate(self._ctx(actor, now, scheduled), reason="long overdue, no response")
        elif intent == "legal":
            if state != "overdue_escalated":
                return False
            r.refer_to_legal(self._ctx(SUPERVISORS[0], now), reason="lawyer's letter")
        elif intent == "request_write_off":
            if state not in ("overdue_escalated", "legal") or r.write_off_request is not None:
                return False
            r.request_write_off(self._ctx(SUPERVISORS[p["by"]], now), reason="customer insolvent")
        elif intent == "approve_write_off":
            request = r.write_off_request
            approver = SUPERVISORS[p["by"]]
            if state not in ("overdue_escalated", "legal") or request is None or request["requested_by"] == approver.id:
                return False
            r.approve_write_off(self._ctx(approver, now), note="approved: recovery costs exceed the balance")
        elif intent == "dispute":
            if r.is_disputed:
                return False
            r.raise_dispute(self._ctx(CUSTOMER_SERVICE, now), reason="goods damaged in transit")
        elif intent == "resolve":
            if not r.is_disputed:
                return False
            owed, paid = r.amount - r.adjustment, r.paid
            kind = p["kind"]
            adjusted: Decimal | None = None
            if kind == "to_paid" and paid > 0:
                adjusted = paid
            elif kind in ("lower", "to_paid"):
                quantum = Decimal(1).scaleb(-minor_units(r.currency))
                adjusted = max(paid, (owed * Decimal(rng.randrange(60, 96)) / 100).quantize(quantum, rounding=ROUND_DOWN))
            r.resolve_dispute(self._ctx(SUPERVISORS[1], now), resolution=f"resolved: {kind}", adjusted_amount=adjusted)
        elif intent == "assign":
            others = [c for c in COLLECTORS if c != r.collector]
            r.assign_collector(self._ctx(SUPERVISORS[0], now), collector=rng.choice(others))
        else:  # recover on an open receivable: nothing to recover
            return False
        return True

    def _share_of(self, left: Decimal, currency: str) -> Decimal:
        quantum = Decimal(1).scaleb(-minor_units(currency))
        return min(left, max(quantum, (left / 2).quantize(quantum, rounding=ROUND_DOWN)))

    def _reference(self, r: Receivable) -> str:
        return f"PAY-{r.invoice_number}-{len(r.payment_references) + 1}"


def generate(app: Any, receivables: int, *, seed: int = 7, save_every: int = 500,
             after_save: Callable[[int], None] | None = None, **options: Any) -> Stats:
    """Record a history of `receivables` receivables (about 7 events each) into `app`."""
    return History(app, receivables=receivables, seed=seed, **options).run(save_every=save_every, after_save=after_save)


# ---- comparing read models ------------------------------------------------------------


def rm_tables() -> list[sa.Table]:
    """The read-model tables: those of `projections.base.metadata` named `rm_*`."""
    return [t for t in metadata.sorted_tables if t.name.startswith("rm_")]


def projection_tables(runner: Any) -> list[sa.Table]:
    """Every table of every projection the runner has (`rm_*` and any other)."""
    return sorted({t for p in runner.projections.values() for t in p.tables}, key=lambda t: t.name)


def table_contents(engine: sa.Engine, tables: list[sa.Table] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows (default: the `rm_*` tables), sorted by primary key, as tuples of Python values."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in tables if tables is not None else rm_tables():
            key = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(row) for row in conn.execute(sa.select(table).order_by(*key))]
    return out


def describe_differences(expected: dict[str, list[tuple[Any, ...]]], actual: dict[str, list[tuple[Any, ...]]],
                         *, limit: int = 5) -> str:
    """A short account of how two `table_contents` snapshots differ ('' when they are equal)."""
    lines: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        a, b = expected.get(name, []), actual.get(name, [])
        if a == b:
            continue
        table = metadata.tables.get(name)
        pk = [i for i, c in enumerate(table.columns) if c.primary_key] if table is not None else []
        keyed_a = {tuple(r[i] for i in pk) if pk else r: r for r in a}
        keyed_b = {tuple(r[i] for i in pk) if pk else r: r for r in b}
        missing = [k for k in keyed_a if k not in keyed_b]
        extra = [k for k in keyed_b if k not in keyed_a]
        changed = [k for k in keyed_a if k in keyed_b and keyed_a[k] != keyed_b[k]]
        lines.append(f"{name}: {len(a)} rows expected, {len(b)} found; "
                     f"{len(missing)} missing, {len(extra)} extra, {len(changed)} differ")
        for k in missing[:limit]:
            lines.append(f"  missing {keyed_a[k]}")
        for k in extra[:limit]:
            lines.append(f"  extra   {keyed_b[k]}")
        for k in changed[:limit]:
            lines.append(f"  expected {keyed_a[k]}\n  found    {keyed_b[k]}")
    return "\n".join(lines)
