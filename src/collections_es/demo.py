"""A realistic history for a first look (issue 14 item 5), built through a sandbox clock.

`build(services, ...)` registers customers in several tiers and time zones, issues their
invoices in CNY and USD over `days` days, and plays a story on each: paid early or late
by every payment method, promises kept and broken, a dispute resolved with an adjustment,
an installment plan, escalations, a legal referral approved by a supervisor, a write-off
approved by a second person, contacts inside and (a few) outside the contact windows. The
clock moves from action to action exactly as `POST /sandbox/clock/advance` moves it
(`Scheduler.advance`), so every reminder, falling due, follow-up, escalation and broken
promise is fired by the scheduler at its own instant. Every command goes through the
application service with a plausible actor and role. The same seed builds the same history.

Browser tests and screenshots call `build` on services wired with a `SandboxClock`.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from projections.receivables import list_receivables

from .application.clock import SandboxClock
from .application.service import Request
from .domain.customer import customer_uuid
from .domain.errors import CollectionsError
from .domain.receivable import PAYMENT_METHODS, receivable_id
from .domain.trail import Actor

ERP = Actor("erp", "service")
SUPERVISOR = Actor("supervisor-1", "supervisor")
SECOND_SUPERVISOR = Actor("supervisor-2", "supervisor")
LEGAL = Actor("legal-1", "legal")
CUSTOMER_SERVICE = Actor("cs-1", "customer_service")
COLLECTORS = ("collector-1", "collector-2", "collector-3")

#: (name pattern, time zone, language, currency, preferred channel)
PROFILES: tuple[tuple[str, str, str, str, str], ...] = (
    ("上海{}贸易有限公司", "Asia/Shanghai", "zh-CN", "CNY", "email"),
    ("深圳{}电子有限公司", "Asia/Shanghai", "zh-CN", "CNY", "wechat"),
    ("{} Trading (Hong Kong) Limited", "Asia/Hong_Kong", "en", "USD", "email"),
    ("{} Supply Inc.", "America/Los_Angeles", "en", "USD", "phone"),
    ("{} Handel GmbH", "Europe/Berlin", "en", "USD", "email"),
    ("北京{}科技有限公司", "Asia/Shanghai", "zh-CN", "CNY", "sms"),
)
WORDS = ("华瑞", "金桥", "东方", "恒通", "Pacific", "Lotus", "Harbor", "Summit", "Nordlicht", "Jade", "长城", "Maple")
TIERS = ("A", "B", "C")
#: Stories every demo tells at least once, given to the oldest invoices (they need the most time).
NEEDED = ("legal", "write_off", "installments", "dispute", "promise_broken", "promise_kept", "promise_kept_in_part", "escalated")
COMMON = ("early", "late", "late", "partial", "promise_kept", "promise_broken", "escalated", "early", "outside_window")


class NotEmptyError(CollectionsError):
    """The database holds receivables already (the demo runs there only with force)."""


@dataclass
class DemoResult:
    customers: int = 0
    receivables: int = 0
    commands: int = 0
    fired: int = 0
    skipped: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    stories: Counter[str] = field(default_factory=Counter)
    start: datetime | None = None
    end: datetime | None = None

    def text(self) -> list[str]:
        lines = [
            f"demo: {self.customers} customers, {self.receivables} receivables, {self.commands} commands, "
            f"{self.fired} timers fired, from {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d %H:%M} UTC",
            "states: " + ", ".join(f"{s} {n}" for s, n in sorted(self.states.items())),
            "stories: " + ", ".join(f"{s} {n}" for s, n in sorted(self.stories.items())),
        ]
        if self.skipped:
            lines.append(f"{len(self.skipped)} planned step(s) did not apply (the state had moved on), e.g. {self.skipped[0]}")
        return lines


def start_for(now: datetime, days: int) -> datetime:
    """Where a demo of `days` days that ends at `now` starts."""
    return now.astimezone(UTC) - timedelta(days=days)


@dataclass(order=True)
class _Step:
    at: datetime
    order: int
    label: str = field(compare=False)
    run: Callable[[], Any] = field(compare=False)


class _Demo:
    def __init__(self, services: Any, clock: SandboxClock, seed: int, days: int) -> None:
        self.services = services
        self.app = services.app
        self.clock = clock
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = clock.now()
        self.end = self.start + timedelta(days=days)
        self.steps: list[_Step] = []
        self.methods = 0
        self.result = DemoResult(start=self.start, end=self.end)

    # -- helpers -------------------------------------------------------------------------

    def at(self, tz: str, day: date, hour: int = 10, minute: int = 0, *, business: bool = True) -> datetime:
        """An instant on `day` (moved to the next weekday when `business`) at a local hour."""
        while business and day.weekday() >= 5:
            day += timedelta(days=1)
        return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(tz)).astimezone(UTC)

    def plan(self, at: datetime, label: str, run: Callable[[], Any]) -> None:
        if at <= self.end:
            self.steps.append(_Step(max(at, self.start), len(self.steps), label, run))

    def request(self, actor: Actor) -> Request:
        return Request(actor, correlation_id=f"demo:{self.seed}:{uuid.uuid4()}")

    def command(self, actor: Actor, invoice: str, name: str, **fields: Any) -> Callable[[], Any]:
        def run() -> Any:
            return self.app.execute(self.request(actor), receivable_id(invoice), name, **fields)

        return run

    def method(self) -> str:
        """Every payment method in turn, so the demo pays by each."""
        self.methods += 1
        return PAYMENT_METHODS[(self.methods - 1) % len(PAYMENT_METHODS)]

    def today(self, tz: str) -> date:
        return self.clock.now().astimezone(ZoneInfo(tz)).date()

    def pay(self, invoice: str, tz: str, amount: Callable[[], Decimal] | Decimal | None = None) -> Callable[[], Any]:
        """A payment of `amount` (default: the balance when it is made), dated that local day."""
        method = self.method()

        def run() -> Any:
            receivable = self.app.get_receivable(receivable_id(invoice))
            value = amount() if callable(amount) else amount
            money = min(value, receivable.balance) if value is not None else receivable.balance
            reference = f"{method.upper()[:4]}-{invoice}-{receivable.version}"
            return self.app.execute(
                self.request(ERP), receivable_id(invoice), "record_payment",
                amount=str(money), method=method, paid_on=self.today(tz), reference=reference,
            )

        return run

    def contact(self, collector: str, invoice: str, channel: str, outcome: str, note: str, **extra: Any) -> Callable[[], Any]:
        return self.command(Actor(collector, "collector"), invoice, "record_contact", channel=channel, outcome=outcome, note=note, **extra)

    # -- the scenario --------------------------------------------------------------------

    def customers(self, count: int) -> list[dict[str, Any]]:
        made = []
        for n in range(count):
            pattern, tz, language, currency, channel = PROFILES[n % len(PROFILES)]
            word = WORDS[(n + self.seed) % len(WORDS)]
            customer_id = f"D{self.seed}-C{n + 1:03d}"
            fields = {
                "customer_id": customer_id,
                "name": pattern.format(word) + ("" if n < len(PROFILES) else f" {n // len(PROFILES) + 1}"),
                "timezone": tz,
                "tier": TIERS[self.rng.randrange(len(TIERS))],
                "preferred_channel": channel,
                "language": language,
                "contacts": {"email": f"ap{n + 1}@example.com", "phone": f"+86 138 0000 {n + 1:04d}"},
                "credit_limit": {"amount": str(self.rng.choice((50_000, 100_000, 250_000))), "currency": currency},
            }
            made.append({**fields, "currency": currency})
            if not self.app.exists(customer_uuid(customer_id)):
                self.app.register_customer(self.request(ERP), **fields)
                self.result.customers += 1
        return made

    def invoices(self, customers: list[dict[str, Any]], run: str) -> list[dict[str, Any]]:
        span = max((self.end - self.start).days - 10, 1)
        out = []
        for c in customers:
            for k in range(self.rng.randint(2, 4)):
                issued = (self.start + timedelta(days=self.rng.randrange(span))).astimezone(ZoneInfo(c["timezone"])).date()
                terms = self.rng.choice((15, 30, 30, 45))
                amount = Decimal(self.rng.randrange(800, 90_000)) + Decimal(self.rng.randrange(100)) / 100
                out.append({
                    "invoice_number": f"D{self.seed}{run}-{c['customer_id'][-3:]}-{k + 1}",
                    "customer": c,
                    "issued_on": issued,
                    "due_on": issued + timedelta(days=terms),
                    "amount": amount,
                    "collector": COLLECTORS[self.rng.randrange(len(COLLECTORS))],
                })
        return sorted(out, key=lambda i: (i["due_on"], i["invoice_number"]))

    def story(self, inv: dict[str, Any], name: str) -> None:
        c, number, collector = inv["customer"], inv["invoice_number"], inv["collector"]
        tz, due = c["timezone"], inv["due_on"]
        amount: Decimal = inv["amount"]
        when = lambda days, hour=10, **kw: self.at(tz, due + timedelta(days=days), hour, **kw)  # noqa: E731
        self.plan(
            self.at(tz, inv["issued_on"], 9, business=False),
            f"issue {number}",
            lambda: self.app.issue_receivable(
                self.request(ERP), invoice_number=number, customer_id=c["customer_id"], amount=str(amount),
                currency=c["currency"], issued_on=inv["issued_on"], due_on=due, collector=collector,
            ),
        )
        self.result.stories[name] += 1
        half = (amount / 2).quantize(Decimal("0.01"))
        if name == "early":
            self.plan(when(-3, 11), f"{number}: paid before due", self.pay(number, tz))
        elif name == "late":
            self.plan(when(4), f"{number}: call", self.contact(collector, number, "phone", "reached", "客户称本周付款", next_step="check payment Friday"))
            self.plan(when(9, 15), f"{number}: paid late", self.pay(number, tz))
        elif name == "partial":
            self.plan(when(5, 14), f"{number}: part paid", self.pay(number, tz, (amount * Decimal("0.4")).quantize(Decimal("0.01"))))
        elif name in ("promise_kept", "promise_kept_in_part", "promise_broken"):
            promised_on = due + timedelta(days=12)
            self.plan(when(3), f"{number}: call, promise", self.contact(
                collector, number, "phone", "promised", "Promised to pay", promised_on=promised_on, next_step="watch for payment"))
            promised = amount if name != "promise_kept_in_part" else half
            self.plan(when(3, 10, minute=20), f"{number}: promise to pay", self.command(
                Actor(collector, "collector"), number, "promise_to_pay", amount=str(promised), promised_on=promised_on, note="by bank transfer"))
            if name == "promise_kept":
                self.plan(self.at(tz, promised_on - timedelta(days=1), 16, business=False), f"{number}: promise kept", self.pay(number, tz))
            elif name == "promise_kept_in_part":
                self.plan(self.at(tz, promised_on, 11, business=False), f"{number}: promised half paid", self.pay(number, tz, half))
            else:  # the scheduler breaks it after the grace; the collector calls the next business day
                self.plan(when(17, 10), f"{number}: call after the broken promise", self.contact(
                    collector, number, "phone", "no_answer", "无人接听", next_step="try again, then escalate"))
        elif name == "dispute":
            self.plan(when(2, 15), f"{number}: dispute", self.command(CUSTOMER_SERVICE, number, "raise_dispute", reason="Goods short-shipped: 10% missing"))
            adjusted = (amount * Decimal("0.9")).quantize(Decimal("0.01"))
            self.plan(when(9, 11), f"{number}: dispute resolved", self.command(
                SUPERVISOR, number, "resolve_dispute", resolution="Credit note for the missing goods", adjusted_amount=str(adjusted)))
            self.plan(when(14, 10), f"{number}: paid after the dispute", self.pay(number, tz))
        elif name == "installments":
            first = (amount / 3).quantize(Decimal("0.01"))
            plan = [
                {"due_on": due + timedelta(days=20), "amount": str(first)},
                {"due_on": due + timedelta(days=50), "amount": str(first)},
                {"due_on": due + timedelta(days=80), "amount": str(amount - 2 * first)},
            ]
            self.plan(when(4), f"{number}: installment plan", self.command(
                Actor(collector, "collector"), number, "agree_installment_plan", installments=plan, reason="Cash-flow difficulties; three payments"))
            self.plan(self.at(tz, due + timedelta(days=19), 11, business=False), f"{number}: 1st installment", self.pay(number, tz, first))
            self.plan(self.at(tz, due + timedelta(days=49), 11, business=False), f"{number}: 2nd installment", self.pay(number, tz, first))
        elif name in ("escalated", "legal", "write_off"):
            self.plan(when(6), f"{number}: letter", self.contact(collector, number, "email", "no_answer", "Dunning e-mail sent, no reply"))
            self.plan(when(33), f"{number}: visit", self.contact(collector, number, "visit", "refused", "Refused to pay", reason_for_non_payment="disputes quality"))
            if name == "legal":
                self.plan(when(40), f"{number}: legal referral approved", self.command(SUPERVISOR, number, "approve_legal_referral", note="Amount and age justify it"))
                self.plan(when(41), f"{number}: referred to legal", self.command(LEGAL, number, "refer_to_legal", reason="No payment after escalation"))
                self.plan(when(60), f"{number}: suit filed", self.command(
                    LEGAL, number, "record_proceedings", kind="suit", filed_on=due + timedelta(days=60), case_number=f"(2026)沪0115民初{self.rng.randrange(10000, 99999)}号"))
            if name == "write_off":
                self.plan(when(45), f"{number}: write-off requested", self.command(Actor(collector, "collector"), number, "request_write_off", reason="Customer insolvent"))
                self.plan(when(47), f"{number}: write-off approved", self.command(SECOND_SUPERVISOR, number, "approve_write_off", note="Insolvency confirmed"))
        elif name == "outside_window":
            self.plan(when(3, 21, minute=30), f"{number}: call at night", self.contact(
                collector, number, "phone", "reached", "Called late in the evening", next_step="call in office hours"))
            self.plan(when(8, 11), f"{number}: paid", self.pay(number, tz))

    def run(self, customers: int, progress: Callable[[int, int], None]) -> DemoResult:
        made = self.customers(customers)
        run = ""
        while self.app.exists(receivable_id(f"D{self.seed}{run}-{made[0]['customer_id'][-3:]}-1")):
            run = f"R{int(run[1:] or 1) + 1}"
        invoices = self.invoices(made, run)
        old_enough = [i for i in invoices if i["due_on"] + timedelta(days=48) <= self.end.date()]
        for k, inv in enumerate(invoices):
            if inv in old_enough and k < len(NEEDED):
                name = NEEDED[k]
            elif inv["due_on"] >= self.end.date():
                name = "late"  # not due yet when the demo ends: issued or reminded
            else:
                name = COMMON[self.rng.randrange(len(COMMON))]
            self.story(inv, name)
        self.result.receivables = len(invoices)
        self.steps.sort()
        total = len(self.steps) + 1
        scheduler = self.services.scheduler
        for done, step in enumerate(self.steps):
            self.result.fired += len(scheduler.advance(self.clock, step.at))
            try:
                step.run()
                self.result.commands += 1
            except CollectionsError as exc:
                self.result.skipped.append(f"{step.label}: {exc}")
            progress(done + 1, total)
        self.result.fired += len(scheduler.advance(self.clock, max(self.end, self.clock.now())))
        progress(total, total)
        for inv in invoices:
            self.result.states[self.app.get_receivable(receivable_id(inv["invoice_number"])).state] += 1
        return self.result


def holds_receivables(services: Any) -> bool:
    services.projections.catch_up(["receivables"])
    with services.engine.connect() as conn:
        return bool(list_receivables(conn, limit=1))


def build(
    services: Any,
    *,
    customers: int = 20,
    days: int = 120,
    seed: int = 14,
    force: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> DemoResult:
    """Play the demo from the sandbox clock's now for `days` days (see the module's docstring).
    Refuses (NotEmptyError) a database that holds receivables, unless `force`."""
    clock = services.sandbox
    if clock is None:
        raise CollectionsError("the demo runs on a sandbox clock (COLLECTIONS_CLOCK=sandbox, or build(..., clock=SandboxClock(...)))")
    if not force and holds_receivables(services):
        raise NotEmptyError("the database holds receivables already; the demo adds to it only with --force")
    return _Demo(services, clock, seed, days).run(customers, progress)
