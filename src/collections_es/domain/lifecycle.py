"""The receivable lifecycle, declared once.

`ReceivableLifecycle` is the single definition of which command is allowed in
which state and where it leads. The aggregate asks it for the next state, the
API derives `allowed_commands` and its 409 errors from it, and the diagram and
transition table in `docs/lifecycle.md` are generated from it.

The machine never runs on replay: a command method builds a throwaway machine
on the current state, sends the command to learn the target state, and records
that state in the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, reduce
from operator import or_

from statemachine import State, StateMachine
from statemachine.transition_list import TransitionList
from statemachine.exceptions import TransitionNotAllowed

from .errors import CommandNotAllowedError


def _stay(states: tuple[State, ...]) -> TransitionList:
    """A self-loop in each of `states`: the command changes nothing of the state."""
    return reduce(or_, (state.to.itself() for state in states))


def _settle_or_stay(states: tuple[State, ...], settled: State) -> TransitionList:
    """From each of `states`: to `settled` when the command brings the balance to zero, else stay."""
    return reduce(or_, [s.to(settled, cond="settles") for s in states] + [s.to.itself(unless="settles") for s in states])


class ReceivableLifecycle(StateMachine):
    """States and commands of a receivable (docs/design.md section 1)."""

    # `written_off` is a non-final state whose only transition is the
    # `record_recovery` self-loop, so it has no path to `settled` (ADR 0002).
    validate_final_reachability = False

    issued = State("issued", initial=True)
    reminded = State("reminded")
    due = State("due")
    following_up = State("following_up")
    promised = State("promised")
    overdue_escalated = State("overdue_escalated")
    legal = State("legal")
    # Not final in the machine either: a settled receivable still takes complaints about how it
    # was collected (ADR 0057); nothing else. `FINAL_STATES` names it all the same.
    settled = State("settled")
    # Not final: a written-off receivable still records recoveries (ADR 0002).
    written_off = State("written_off")
    # The states with a balance to collect (a class-body name only: deleted below).
    _OPEN = (issued, reminded, due, following_up, promised, overdue_escalated, legal)

    send_reminder = issued.to(reminded) | reminded.to.itself()
    fall_due = issued.to(due) | reminded.to(due)
    start_follow_up = due.to(following_up)
    record_contact = due.to(following_up) | _stay((issued, reminded, following_up, promised, overdue_escalated, legal))
    promise_to_pay = due.to(promised) | following_up.to(promised) | overdue_escalated.to(promised)
    agree_installment_plan = due.to(promised) | following_up.to(promised) | overdue_escalated.to(promised)
    # The customer proposes a plan (portal); a collector accepts it (a plan, as agreed) or declines it.
    propose_installment_plan = _stay((due, following_up, overdue_escalated))
    accept_installment_proposal = due.to(promised) | following_up.to(promised) | overdue_escalated.to(promised)
    # Wherever a proposal may be waiting: made after the due date, it outlives a promise or a referral.
    decline_installment_proposal = _stay((due, following_up, promised, overdue_escalated, legal))
    break_promise = promised.to(overdue_escalated)
    # A promise or plan covered by payments that leave a balance: back to collection (ADR 0035).
    keep_promise = promised.to(following_up)
    escalate = due.to(overdue_escalated) | following_up.to(overdue_escalated)
    approve_legal_referral = overdue_escalated.to.itself()
    refer_to_legal = overdue_escalated.to(legal)
    record_payment = _settle_or_stay(_OPEN, settled)
    request_write_off = overdue_escalated.to.itself() | legal.to.itself()
    approve_write_off = overdue_escalated.to(written_off) | legal.to(written_off)
    raise_dispute = _stay(_OPEN)
    resolve_dispute = _settle_or_stay(_OPEN, settled)
    assign_collector = _stay(_OPEN)
    record_recovery = written_off.to.itself()
    warn_limitation = _stay(_OPEN)
    # A supervisor's exception for contacts by one channel, granted before them (docs/design.md section 6).
    grant_contact_exception = _stay(_OPEN)

    # A message or letter reached the customer (the notifier records what the server accepted).
    record_delivery = _stay(_OPEN)
    # Suit or arbitration filed: restarts the limitation period (art. 195).
    record_proceedings = legal.to.itself()
    # A supervisor's hold on collection, and its release (ADR 0052): the state stays.
    hold = _stay(_OPEN)
    release_hold = _stay(_OPEN)
    # After collection (issue 17): complaints about the collection, in every state, settled too (ADR 0057).
    record_complaint = _stay((*_OPEN, settled, written_off))
    resolve_complaint = _stay((*_OPEN, settled, written_off))
    # Strategies (ADR 0050): a reminder before each installment of a plan, and a re-plan when
    # the customer's strategy or the policy changes.
    remind_installment = promised.to.itself()
    replan = _stay(_OPEN)
    # Charges (ADR 0053, 0054): accrued in every open state; a waiver may clear the last of the balance.
    accrue_charges = _stay(_OPEN)
    waive_charges = _settle_or_stay(_OPEN, settled)
    approve_charges_waiver = _settle_or_stay(_OPEN, settled)

    del _OPEN

    def settles(self, settles: bool = False) -> bool:
        """Condition: the command brings the balance to zero."""
        return settles


STATES: tuple[str, ...] = tuple(s.id for s in ReceivableLifecycle.states)
#: Commands about how a receivable was collected, not part of collecting it: they change no state.
AFTERCARE_COMMANDS: frozenset[str] = frozenset({"record_complaint", "resolve_complaint"})
#: Paid in full: the states the machine leaves by no command but the aftercare ones (ADR 0057).
FINAL_STATES: frozenset[str] = frozenset(
    s.id
    for s in ReceivableLifecycle.states
    if s.final or (s.transitions and all(t.event in AFTERCARE_COMMANDS for t in s.transitions))
)
#: Nothing is left to collect: settled (final) and written off (open only to recoveries).
CLOSED_STATES: frozenset[str] = FINAL_STATES | {"written_off"}
INITIAL_STATE: str = next(s.id for s in ReceivableLifecycle.states if s.initial)
COMMANDS: tuple[str, ...] = tuple(
    dict.fromkeys(t.event for s in ReceivableLifecycle.states for t in s.transitions)
)
class _Holder:
    """A throwaway model carrying only a state, so the machine never lives on the aggregate."""

    def __init__(self, state: str) -> None:
        self.state = state


def next_state(state: str, command: str, *, settles: bool = False) -> str:
    """The state `command` leads to from `state`, or CommandNotAllowedError."""
    target = _run_machine(state, command, settles)
    if target is None:
        raise CommandNotAllowedError(command, state, allowed_commands(state))
    return target


@lru_cache(maxsize=None)
def _run_machine(state: str, command: str, settles: bool) -> str | None:
    """Ask the machine itself; memoized, as the answer depends on nothing else."""
    if command not in COMMANDS or state not in STATES:
        return None
    holder = _Holder(state)
    machine = ReceivableLifecycle(model=holder, state_field="state")
    try:
        machine.send(command, settles=settles)
    except TransitionNotAllowed:
        return None
    return holder.state


@lru_cache(maxsize=None)
def _allowed(state: str) -> tuple[str, ...]:
    found = {t.event for s in ReceivableLifecycle.states if s.id == state for t in s.transitions}
    return tuple(c for c in COMMANDS if c in found)


def allowed_commands(state: str) -> list[str]:
    """Commands the lifecycle accepts in `state`, in declaration order."""
    return list(_allowed(state))


def allows(state: str, command: str) -> bool:
    """Whether the lifecycle accepts `command` in `state` (under some condition)."""
    return command in _allowed(state)


def is_settled(state: str) -> bool:
    """Paid in full: the final state."""
    return state in FINAL_STATES


def _reachable(start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for s in ReceivableLifecycle.states:
            if s.id == here:
                for t in s.transitions:
                    if t.target.id not in seen:
                        seen.add(t.target.id)
                        todo.append(t.target.id)
    return seen


_LEGAL = next(t.target.id for s in ReceivableLifecycle.states for t in s.transitions if t.event == "refer_to_legal")
#: Open states from which a referral to legal is still ahead: legal is reachable, not yet reached.
PRE_LEGAL_STATES: frozenset[str] = frozenset(
    state for state in STATES if state != _LEGAL and state not in CLOSED_STATES and _LEGAL in _reachable(state)
)


@dataclass(frozen=True)
class Transition:
    source: str
    command: str
    target: str
    condition: str


def transitions() -> list[Transition]:
    """Every declared transition, in declaration order."""
    rows = []
    for s in ReceivableLifecycle.states:
        for t in s.transitions:
            cond = " and ".join(str(spec) for spec in t.cond)
            rows.append(Transition(s.id, t.event, t.target.id, cond))
    return rows


def render_docs() -> str:
    """The generated `docs/lifecycle.md`: a Mermaid diagram and a transition table."""
    lines = [
        "# Receivable lifecycle",
        "",
        "Generated from `collections_es.domain.lifecycle.ReceivableLifecycle` by",
        "`collections-es docs`; a test fails when this file differs from the machine.",
        "",
        "```mermaid",
        f"{ReceivableLifecycle:mermaid}".rstrip(),
        "```",
        "",
        "| state | command | next state | condition |",
        "|---|---|---|---|",
    ]
    for t in transitions():
        lines.append(f"| `{t.source}` | `{t.command}` | `{t.target}` | {t.condition} |")
    lines += [
        "",
        "| state | allowed commands |",
        "|---|---|",
    ]
    for state in STATES:
        allowed = ", ".join(f"`{c}`" for c in allowed_commands(state)) or "none (final)"
        lines.append(f"| `{state}` | {allowed} |")
    lines.append("")
    return "\n".join(lines)
