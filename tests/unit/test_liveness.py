"""Liveness (docs/design.md section 7; ADR 0035): no open receivable is ever without a way forward.

Random histories of what collectors, supervisors, legal and services send (partial
payments, promises, installment plans, disputes, escalations, legal referrals with
approval, write-offs with four eyes, contacts), with the clock moved in between and
the due timers fired on the way, each at its own instant, as the sandbox scheduler
does (a refused firing is noted and not retried, like `timer_firings`). After every
step the receivable must have a way forward: `way_forward` says which, or None.

The standard story of the helpers: CNY 1,000.00, Shanghai, issued 2024-01-08, due
2024-02-07; the policy requires an approval before a legal referral.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from collections_es.application.access import COMMAND_ROLES
from collections_es.domain import calendar, lifecycle
from collections_es.domain.errors import CollectionsError
from collections_es.domain.policy import CHANNELS, CollectionPolicy
from collections_es.domain.receivable import CONTACT_OUTCOMES, Receivable
from collections_es.domain.schedule import owed
from collections_es.domain.trail import Actor, Context

from .helpers import COLLECTOR, ISSUE_TIME, POLICY, SCHEDULER, SUPERVISOR, instant, issue

LIVENESS_POLICY: CollectionPolicy = POLICY.model_copy(update={"legal_referral_requires_approval": True})
OTHER_SUPERVISOR = Actor("supervisor:sam", "supervisor")
LEGAL = Actor("legal:lee", "legal")
SERVICE = Actor("service:erp", "service")
#: The people who work receivables (services only relay facts: payments, issues).
PEOPLE: tuple[Actor, ...] = (COLLECTOR, SUPERVISOR, OTHER_SUPERVISOR, LEGAL)
#: Money arriving or the amount owed changing: the customer's doing, or a dispute's outcome,
#: never a step of the procedure. Issue 11's receivable could leave `promised` only by a
#: payment of everything, which is exactly what "stuck" means here.
# A waiver of charges (which settles when it clears the last of the balance) is money too.
MONEY_COMMANDS = frozenset(
    {"record_payment", "record_recovery", "resolve_dispute", "waive_charges", "approve_charges_waiver"}
)
#: Decisions that take two people: the second command changes the state.
TWO_PERSON_MOVES: tuple[tuple[tuple[Actor, str], tuple[Actor, str]], ...] = (
    ((COLLECTOR, "request_write_off"), (SUPERVISOR, "approve_write_off")),
    ((SUPERVISOR, "approve_legal_referral"), (OTHER_SUPERVISOR, "refer_to_legal")),
)
CENT = Decimal("0.01")


def ctx_at(
    now: datetime, actor: Actor, scheduled_for: datetime | None = None, policy: CollectionPolicy = LIVENESS_POLICY
) -> Context:
    return Context(actor=actor, now=now, correlation_id="liveness", policy=policy, scheduled_for=scheduled_for)


def arguments(command: str, r: Receivable, now: datetime) -> dict[str, Any]:
    """Plausible arguments for a person's or the scheduler's command on `r` at `now`."""
    today = r.local_date(now)
    return {
        "send_reminder": {"channel": "email"},
        "start_follow_up": {"channel": "phone", "note": "called accounts payable"},
        "record_contact": {"channel": "phone", "outcome": "reached", "note": "spoke to them", "next_step": "call back"},
        "promise_to_pay": {"amount": r.balance, "promised_on": today},
        "agree_installment_plan": {"installments": [{"due_on": today, "amount": r.balance}], "reason": "cash flow"},
        "break_promise": {"reason": "promise not kept after grace"},
        "escalate": {"reason": "no answer"},
        "refer_to_legal": {"reason": "no answer to the final notice"},
        "request_write_off": {"reason": "customer insolvent"},
        "raise_dispute": {"reason": "goods damaged"},
        "assign_collector": {"collector": "collector:bob"},
    }.get(command, {})


def _changes_state(
    r: Receivable,
    moves: list[tuple[Actor, str]],
    now: datetime,
    policy: CollectionPolicy,
    scheduled_for: datetime | None = None,
) -> bool:
    """Whether the moves, tried in order on a copy of `r` at `now`, are all accepted and
    leave it in another state (the receivable itself is untouched)."""
    trial = copy.deepcopy(r)
    for actor, command in moves:
        try:
            getattr(trial, command)(ctx_at(now, actor, scheduled_for, policy), **arguments(command, trial, now))
        except CollectionsError:
            return False
    return trial.state != r.state


def _may_leave(state: str, command: str) -> bool:
    """Whether the lifecycle has a transition for `command` out of `state` to another state."""
    return any(t.source == state and t.command == command and t.target != state for t in lifecycle.transitions())


def way_forward(r: Receivable, policy: CollectionPolicy, now: datetime) -> str | None:
    """What moves an open receivable on, or None when nothing does (it is stuck).

    A way forward is one of:
    1. a timer that `schedule.owed` gives (due now or later) whose command, sent by the
       scheduler at the timer's moment (or now, if that has passed) to the receivable as
       it is, is accepted and changes its state (so the limitation warning, which never
       changes the state, is not one);
    2. an open dispute: a pause that a person ends with `resolve_dispute` (the check
       runs again after that step);
    3. a person's move accepted now that changes the state: any command the state allows
       that a collector, supervisor or legal may send, or a decision that takes two
       people (request then approve a write-off; approve then refer to legal). Money
       commands (payments, recoveries, a dispute's adjustment) are not moves: they wait
       on the customer.
    A closed receivable (settled, written off) needs none.
    """
    if r.state in lifecycle.CLOSED_STATES:
        return "closed"
    for timer in owed(r, policy, r.modified_on):
        at = max(timer.at, now)
        if _changes_state(r, [(SCHEDULER, timer.command)], at, policy, scheduled_for=timer.at):
            return f"timer {timer.kind} at {timer.at.isoformat()}"
    if r.is_disputed:
        return "disputed: paused until a person resolves it"
    for command in lifecycle.allowed_commands(r.state):
        if command in MONEY_COMMANDS or not _may_leave(r.state, command):
            continue  # a self-loop (a contact, an exception, proceedings) never moves it on
        for person in PEOPLE:
            if person.role in COMMAND_ROLES.get(command, ()) and _changes_state(r, [(person, command)], now, policy):
                return f"{person.id} may {command}"
    for first, second in TWO_PERSON_MOVES:
        if _changes_state(r, [first, second], now, policy):
            return f"{first[0].id} may {first[1]}, then {second[0].id} {second[1]}"
    return None


# ---- the random histories ---------------------------------------------------------


@dataclass
class World:
    """The receivable, the clock, and the timers the scheduler has fired (kind, instant)."""

    r: Receivable
    now: datetime
    fired: set[tuple[str, datetime]] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # the event types, in order

    @property
    def today(self) -> date:
        return self.r.local_date(self.now)

    def send(self, actor: Actor, command: str, **kwargs: Any) -> None:
        """A person's (or service's) command; a refusal is a refusal, nothing more."""
        try:
            getattr(self.r, command)(ctx_at(self.now, actor), **kwargs)
            self.log.append(f"{self.now.isoformat()} {actor.id} {command} -> {self._events()}")
        except CollectionsError as exc:
            self.log.append(f"{self.now.isoformat()} {actor.id} {command} refused: {exc}")

    def _events(self) -> str:
        names = [type(e).__name__ for e in self.r.collect_events()]
        self.recorded += names
        return f"{' + '.join(names)} -> {self.r.state}"

    def advance(self, to: datetime) -> None:
        """Move the clock to `to`, firing each due timer on the way at its own instant."""
        for _ in range(200):
            due = [
                t for t in owed(self.r, LIVENESS_POLICY, self.r.modified_on)
                if t.at <= to and (t.kind, t.at) not in self.fired
            ]
            if not due:
                break
            timer = due[0]
            self.now = max(self.now, timer.at)
            self.fired.add((timer.kind, timer.at))
            try:
                getattr(self.r, timer.command)(
                    ctx_at(self.now, SCHEDULER, timer.at), **arguments(timer.command, self.r, self.now)
                )
                self.log.append(f"{self.now.isoformat()} scheduler {timer.command} -> {self._events()}")
            except CollectionsError as exc:
                self.log.append(f"{self.now.isoformat()} scheduler {timer.command} skipped: {exc}")
        else:
            raise AssertionError("timers keep falling due: " + "\n".join(self.log[-10:]))
        self.now = max(self.now, to)


def _part(amount: Decimal, percent: int) -> Decimal:
    return max(CENT, (amount * percent / 100).quantize(CENT, rounding=ROUND_DOWN))


def _still_asked(r: Receivable) -> Decimal | None:
    """What the promise, or the plan up to its first installment not yet covered, still asks."""
    paid = r.paid_towards_promise()
    if r.promise is not None:
        return r.promise["amount"] - paid
    owed_so_far = Decimal(0)
    for item in r.installment_plan["installments"] if r.installment_plan is not None else ():
        owed_so_far += item["amount"]
        if paid < owed_so_far:
            return owed_so_far - paid
    return None


def pay(w: World, percent: int | None) -> None:
    """A part of the balance, or (None) what the promise or the next installment still asks
    (half the balance without one): customers mostly pay what they promised."""
    asked = _still_asked(w.r) if percent is None else None
    amount = max(CENT, asked) if asked is not None else _part(w.r.balance, percent or 50)
    w.send(SERVICE, "record_payment", amount=amount, method="bank_transfer", paid_on=w.today, reference=f"PAY-{len(w.log)}")


def promise(w: World, percent: int, days: int) -> None:
    w.send(COLLECTOR, "promise_to_pay", amount=_part(w.r.balance, percent), promised_on=w.today + timedelta(days=days))


def plan(w: World, count: int, spacing: int) -> None:
    share = _part(w.r.balance, 100 // count)
    amounts = [share] * (count - 1) + [w.r.balance - share * (count - 1)]
    installments = [{"due_on": w.today + timedelta(days=spacing * i), "amount": a} for i, a in enumerate(amounts)]
    w.send(COLLECTOR, "agree_installment_plan", installments=installments, reason="cash flow")


def contact(w: World, channel: str, outcome: str) -> None:
    w.send(COLLECTOR, "record_contact", channel=channel, outcome=outcome, note="called", next_step="call back")


def resolve(w: World, percent: int | None) -> None:
    adjusted = None
    if percent is not None:
        owed_now = w.r.amount - w.r.adjustment
        adjusted = w.r.paid + ((owed_now - w.r.paid) * percent / 100).quantize(CENT, rounding=ROUND_DOWN)
    w.send(SUPERVISOR, "resolve_dispute", resolution="credit note agreed", adjusted_amount=adjusted)


def next_business_morning(w: World) -> None:
    w.advance(calendar.next_contact_moment(w.now + timedelta(hours=1), w.r.timezone, LIVENESS_POLICY))


STEPS: dict[str, Callable[..., None]] = {
    "next_business_morning": next_business_morning,
    "pay": pay,
    "promise": promise,
    "plan": plan,
    "contact": contact,
    "raise_dispute": lambda w: w.send(COLLECTOR, "raise_dispute", reason="goods damaged"),
    "resolve_dispute": resolve,
    "start_follow_up": lambda w: w.send(COLLECTOR, "start_follow_up", channel="phone", note="called"),
    "escalate": lambda w: w.send(COLLECTOR, "escalate", reason="no answer"),
    "break_promise": lambda w: w.send(COLLECTOR, "break_promise", reason="nothing paid"),
    "approve_legal_referral": lambda w: w.send(SUPERVISOR, "approve_legal_referral", note="evidence complete"),
    "refer_to_legal": lambda w, who: w.send(who, "refer_to_legal", reason="no answer to the final notice"),
    "request_write_off": lambda w: w.send(COLLECTOR, "request_write_off", reason="customer insolvent"),
    "approve_write_off": lambda w, who: w.send(who, "approve_write_off", note="agreed"),
    "refer_to_legal_with_approval": lambda w, who: (STEPS["approve_legal_referral"](w), STEPS["refer_to_legal"](w, who)),
    "write_off": lambda w, requester, approver: (
        w.send(requester, "request_write_off", reason="customer insolvent"), STEPS["approve_write_off"](w, approver)
    ),
}
SUPERVISORS = st.sampled_from([SUPERVISOR, OTHER_SUPERVISOR])

percent = st.sampled_from([100, 40, 50, 25]) | st.integers(min_value=1, max_value=100)
#: Hours: mostly within a week, sometimes a month or two.
clock_move = st.sampled_from([0, 1, 5, 24, 48, 72, 24 * 7, 24 * 15, 24 * 31, 24 * 62])
# Each step is a clock move (0 to 62 days, firing the due timers on the way) and then an
# action. Payments and promises are what collection mostly is: they come up more often.
_pay = st.tuples(st.just("pay"), st.none() | percent)
_promise = st.tuples(st.just("promise"), percent, st.integers(min_value=0, max_value=45))
action = st.one_of(
    _pay,
    _pay,
    _promise,
    _promise,
    st.tuples(st.just("plan"), st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=40)),
    st.tuples(st.just("next_business_morning")),
    st.tuples(st.just("contact"), st.sampled_from(CHANNELS), st.sampled_from(CONTACT_OUTCOMES)),
    st.tuples(st.just("raise_dispute")),
    st.tuples(st.just("resolve_dispute"), st.none() | percent),
    st.tuples(st.just("start_follow_up")),
    st.tuples(st.just("escalate")),
    st.tuples(st.just("break_promise")),
    st.tuples(st.just("refer_to_legal_with_approval"), st.sampled_from([OTHER_SUPERVISOR, LEGAL, SUPERVISOR])),
    st.tuples(st.just("write_off"), st.sampled_from([COLLECTOR, SUPERVISOR]), SUPERVISORS),
)
step = st.tuples(clock_move, action)
#: 1 to 25 steps, every length as likely (a plain `st.lists` mostly draws a few).
histories = st.integers(min_value=1, max_value=25).flatmap(lambda n: st.lists(step, min_size=n, max_size=n))


#: Days after issue the history starts: any, but mostly after the due date (30 days), where collection is.
START_AFTER_DAYS = st.sampled_from([31, 33, 40, 62]) | st.integers(min_value=0, max_value=75)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(START_AFTER_DAYS, histories)
def test_every_open_receivable_always_has_a_way_forward(start_after_days, steps):
    """Issued 8 January, due 7 February; the history starts `start_after_days` later,
    the scheduler having fired what fell due by then."""
    w = World(given_receivable(), instant(ISSUE_TIME))
    assert way_forward(w.r, LIVENESS_POLICY, w.now) is not None
    w.advance(w.now + timedelta(days=start_after_days))
    for hours, (name, *args) in steps:
        w.advance(w.now + timedelta(hours=hours))
        STEPS[name](w, *args)
        found = way_forward(w.r, LIVENESS_POLICY, w.now)
        assert found is not None, (
            f"stuck in {w.r.state} (balance {w.r.balance}, promise {w.r.promise}, plan {w.r.installment_plan}):\n"
            + "\n".join(w.log)
        )
        assert not (w.r.state == "promised" and w.r.is_promise_covered()), "a covered promise is kept at once"
    event(f"ends {w.r.state}")
    if "PromiseKept" in w.recorded:
        event("a promise kept")


def given_receivable() -> Receivable:
    r = issue().run(None)
    r.collect_events()
    return r


# ---- the definition itself, on hand-built receivables -------------------------------


def test_a_receivable_in_follow_up_has_its_escalation_timer_as_a_way_forward():
    w = World(given_receivable(), instant(ISSUE_TIME))
    w.advance(instant("2024-02-09T02:00:00+00:00"))  # due, then followed up by the scheduler
    assert w.r.state == "following_up"
    assert way_forward(w.r, LIVENESS_POLICY, w.now) == "timer escalate at 2024-03-07T16:00:00+00:00"


def test_a_covered_promise_left_in_promised_would_be_stuck_but_for_keeping_it():
    """What the fix changed: the receivable parked by the old behaviour is stuck unless
    `keep_promise` (timer or person) takes it back to collection."""
    w = World(given_receivable(), instant(ISSUE_TIME))
    w.advance(instant("2024-02-20T02:00:00+00:00"))
    promise(w, 40, 7)
    r = w.r
    r._record(Receivable.PaymentRecorded, ctx_at(w.now, SERVICE), state_after="promised", amount=Decimal("400.00"),
              method="bank_transfer", paid_on=w.today, reference="OLD-1")  # as recorded before the fix
    assert way_forward(r, LIVENESS_POLICY, w.now) == f"timer promise_kept at {w.now.isoformat()}"
    w.advance(w.now)
    assert r.state == "following_up"


def test_legal_moves_on_only_by_a_write_off_requested_and_approved_by_two_people():
    w = World(given_receivable(), instant(ISSUE_TIME))
    w.advance(instant("2024-02-20T02:00:00+00:00"))
    STEPS["escalate"](w)
    STEPS["approve_legal_referral"](w)
    STEPS["refer_to_legal"](w, LEGAL)
    assert w.r.state == "legal"
    assert way_forward(w.r, LIVENESS_POLICY, w.now) == (
        "collector:ann may request_write_off, then supervisor:sue approve_write_off"
    )
