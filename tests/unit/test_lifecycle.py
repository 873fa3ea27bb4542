"""The lifecycle state machine, checked against docs/design.md section 1.

The expected table below is written out by hand from the design document, on
purpose not derived from the machine: the point is to check the machine
against the spec, every (state, command) pair of it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from collections_es.domain import lifecycle
from collections_es.domain.errors import CommandNotAllowedError
from collections_es.domain.receivable import Receivable

SETTLED = "settled"

# state -> {command: target}. A pair (target, target_when_settling) is written
# for the commands that settle the receivable when they bring the balance to
# zero (record_payment, resolve_dispute); a plain target does not depend on it.
# A command missing from a state's row is refused in that state.
#
# `warn_limitation` is not (yet) a row of the docs/design.md section 1 table: it is
# the "limitation-period warning" timer of section 4, recorded in every open
# state without changing it. The table here includes it so that its reach is
# still checked by hand. `approve_legal_referral` (issue 5) is the approval a
# policy may require before `refer_to_legal` ("refer_to_legal ... policy may
# require approval"): recorded in `overdue_escalated` without changing it.
# `grant_contact_exception` (issue 11, docs/design.md section 6) is a supervisor's
# exception for contacts by one channel, granted in advance: in every open state,
# without changing it.
# `record_delivery` (issue 11) records a message or letter delivered, in every open
# state without changing it; `record_proceedings` is the section 1 row (legal, same).
# `hold` / `release_hold` (issue 13) pause and resume collection, in every open state,
# without changing it (ADR 0052).
# `accrue_charges`, `waive_charges` and `approve_charges_waiver` (issue 13, docs/design.md
# section 7 "Charges"): in every open state; a waiver that clears the last of the balance settles.
EXPECTED: dict[str, dict[str, str | tuple[str, str]]] = {
    "issued": {
        "send_reminder": "reminded",
        "fall_due": "due",
        "record_contact": "issued",
        "record_payment": ("issued", SETTLED),
        "raise_dispute": "issued",
        "resolve_dispute": ("issued", SETTLED),
        "assign_collector": "issued",
        "warn_limitation": "issued",
        "grant_contact_exception": "issued",
        "record_delivery": "issued",
        "hold": "issued",
        "release_hold": "issued",
        "replan": "issued",  # issue 13: follows the strategy and policy in force from now
        "accrue_charges": "issued",
        "waive_charges": ("issued", SETTLED),
        "approve_charges_waiver": ("issued", SETTLED),
    },
    "reminded": {
        "send_reminder": "reminded",
        "fall_due": "due",
        "record_contact": "reminded",
        "record_payment": ("reminded", SETTLED),
        "raise_dispute": "reminded",
        "resolve_dispute": ("reminded", SETTLED),
        "assign_collector": "reminded",
        "warn_limitation": "reminded",
        "grant_contact_exception": "reminded",
        "record_delivery": "reminded",
        "hold": "reminded",
        "release_hold": "reminded",
        "replan": "reminded",  # issue 13: follows the strategy and policy in force from now
        "accrue_charges": "reminded",
        "waive_charges": ("reminded", SETTLED),
        "approve_charges_waiver": ("reminded", SETTLED),
    },
    "due": {
        "start_follow_up": "following_up",
        "record_contact": "following_up",  # a contact in `due` starts follow-up
        "promise_to_pay": "promised",
        "agree_installment_plan": "promised",
        "escalate": "overdue_escalated",
        "record_payment": ("due", SETTLED),
        "raise_dispute": "due",
        "resolve_dispute": ("due", SETTLED),
        "assign_collector": "due",
        "warn_limitation": "due",
        "grant_contact_exception": "due",
        "record_delivery": "due",
        "hold": "due",
        "release_hold": "due",
        "replan": "due",  # issue 13: follows the strategy and policy in force from now
        "accrue_charges": "due",
        "waive_charges": ("due", SETTLED),
        "approve_charges_waiver": ("due", SETTLED),
        "decline_installment_proposal": "due",  # the customer's proposal (portal) declined
        "propose_installment_plan": "due",
        "accept_installment_proposal": "promised",
    },
    "following_up": {
        "record_contact": "following_up",
        "promise_to_pay": "promised",
        "agree_installment_plan": "promised",
        "escalate": "overdue_escalated",
        "record_payment": ("following_up", SETTLED),
        "raise_dispute": "following_up",
        "resolve_dispute": ("following_up", SETTLED),
        "assign_collector": "following_up",
        "warn_limitation": "following_up",
        "grant_contact_exception": "following_up",
        "record_delivery": "following_up",
        "hold": "following_up",
        "release_hold": "following_up",
        "replan": "following_up",  # issue 13: follows the strategy and policy in force from now
        "accrue_charges": "following_up",
        "waive_charges": ("following_up", SETTLED),
        "approve_charges_waiver": ("following_up", SETTLED),
        "decline_installment_proposal": "following_up",  # the customer's proposal (portal) declined
        "propose_installment_plan": "following_up",
        "accept_installment_proposal": "promised",
    },
    "promised": {
        "record_contact": "promised",
        "break_promise": "overdue_escalated",
        "keep_promise": "following_up",  # a covered promise that leaves a balance (docs/design.md 7, Liveness)
        "record_payment": ("promised", SETTLED),
        "raise_dispute": "promised",
        "resolve_dispute": ("promised", SETTLED),
        "assign_collector": "promised",
        "warn_limitation": "promised",
        "grant_contact_exception": "promised",
        "record_delivery": "promised",
        "hold": "promised",
        "release_hold": "promised",
        "replan": "promised",  # issue 13: follows the strategy and policy in force from now
        "remind_installment": "promised",  # issue 13: a reminder before each installment
        "accrue_charges": "promised",
        "waive_charges": ("promised", SETTLED),
        "approve_charges_waiver": ("promised", SETTLED),
        "decline_installment_proposal": "promised",  # the customer's proposal (portal) declined
    },
    "overdue_escalated": {
        "record_contact": "overdue_escalated",
        "promise_to_pay": "promised",
        "agree_installment_plan": "promised",
        "approve_legal_referral": "overdue_escalated",
        "refer_to_legal": "legal",
        "record_payment": ("overdue_escalated", SETTLED),
        "request_write_off": "overdue_escalated",
        "approve_write_off": "written_off",
        "raise_dispute": "overdue_escalated",
        "resolve_dispute": ("overdue_escalated", SETTLED),
        "assign_collector": "overdue_escalated",
        "warn_limitation": "overdue_escalated",
        "grant_contact_exception": "overdue_escalated",
        "record_delivery": "overdue_escalated",
        "hold": "overdue_escalated",
        "release_hold": "overdue_escalated",
        "replan": "overdue_escalated",  # issue 13: follows the strategy and policy in force from now
        "accrue_charges": "overdue_escalated",
        "waive_charges": ("overdue_escalated", SETTLED),
        "approve_charges_waiver": ("overdue_escalated", SETTLED),
        "decline_installment_proposal": "overdue_escalated",  # the customer's proposal (portal) declined
        "propose_installment_plan": "overdue_escalated",
        "accept_installment_proposal": "promised",
    },
    "legal": {
        "record_contact": "legal",
        "record_payment": ("legal", SETTLED),
        "request_write_off": "legal",
        "approve_write_off": "written_off",
        "raise_dispute": "legal",
        "resolve_dispute": ("legal", SETTLED),
        "assign_collector": "legal",
        "warn_limitation": "legal",
        "grant_contact_exception": "legal",
        "record_delivery": "legal",
        "hold": "legal",
        "release_hold": "legal",
        "replan": "legal",  # issue 13: follows the strategy and policy in force from now
        "decline_installment_proposal": "legal",  # the customer's proposal (portal) declined
        "record_proceedings": "legal",
        "accrue_charges": "legal",
        "waive_charges": ("legal", SETTLED),
        "approve_charges_waiver": ("legal", SETTLED),
    },
    "settled": {},  # final: accepts nothing but complaints (below)
    "written_off": {"record_recovery": "written_off"},  # final but for recoveries (and complaints)
}
# Issue 17 (docs/aftercare.md, ADR 0057): complaints about the collection are recorded and ruled on
# in every state, settled and written off too, without changing it.
for _state, _row in EXPECTED.items():
    _row.update({"record_complaint": _state, "resolve_complaint": _state})

SPEC_STATES = {
    "issued",
    "reminded",
    "due",
    "following_up",
    "promised",
    "overdue_escalated",
    "legal",
    "settled",
    "written_off",
}
SPEC_COMMANDS = {
    "send_reminder",
    "fall_due",
    "start_follow_up",
    "record_contact",
    "promise_to_pay",
    "agree_installment_plan",
    "propose_installment_plan",  # the customer's own proposal on the portal (docs/portal.md)
    "accept_installment_proposal",
    "decline_installment_proposal",
    "break_promise",
    "keep_promise",  # docs/design.md section 7 (Liveness): a kept promise returns the receivable to collection
    "escalate",
    "approve_legal_referral",  # the approval refer_to_legal may require (section 1 notes)
    "refer_to_legal",
    "record_payment",
    "request_write_off",
    "approve_write_off",
    "raise_dispute",
    "resolve_dispute",
    "assign_collector",
    "record_recovery",
    "warn_limitation",  # docs/design.md section 4 (timers), not yet in the section 1 table
    "grant_contact_exception",  # docs/design.md section 6: a supervisor's exception, granted before a contact
    "record_delivery",  # docs/design.md section 7: a message counts (for limitation) when delivered
    "record_proceedings",
    "hold",  # docs/design.md section 7: a supervisor's hold pauses actions, not the calendar (ADR 0052)
    "release_hold",
    "record_complaint",  # issue 17: complaints about the collection, in every state
    "resolve_complaint",
    "remind_installment",  # issue 13 (item 5): installment reminders
    "replan",  # issue 13 (item 1): a change of segment or policy re-plans the timers
    "accrue_charges",  # section 7: charges accrue as events, once per period
    "waive_charges",
    "approve_charges_waiver",
}


def expected_target(state: str, command: str, settles: bool) -> str | None:
    target = EXPECTED[state].get(command)
    if isinstance(target, tuple):
        return target[1] if settles else target[0]
    return target


def test_the_machine_has_exactly_the_states_of_the_design():
    assert set(lifecycle.STATES) == SPEC_STATES
    assert set(EXPECTED) == SPEC_STATES
    assert len(lifecycle.STATES) == len(SPEC_STATES)


def test_the_machine_has_exactly_the_commands_of_the_design():
    assert set(lifecycle.COMMANDS) == SPEC_COMMANDS
    assert len(lifecycle.COMMANDS) == len(SPEC_COMMANDS)


def test_the_expected_table_only_names_known_states_and_commands():
    for row in EXPECTED.values():
        assert set(row) <= SPEC_COMMANDS
        for target in row.values():
            targets = target if isinstance(target, tuple) else (target,)
            assert set(targets) <= SPEC_STATES


def test_a_receivable_starts_issued_and_only_settled_is_a_final_state():
    assert lifecycle.INITIAL_STATE == "issued"
    # written_off is not final in the machine, so it can keep recording recoveries (ADR 0002).
    assert lifecycle.FINAL_STATES == {"settled"}


@pytest.mark.parametrize("settles", [False, True], ids=["not_settling", "settling"])
@pytest.mark.parametrize(
    ("state", "command"), list(itertools.product(lifecycle.STATES, lifecycle.COMMANDS))
)
def test_every_state_and_command_pair_follows_the_design_table(state, command, settles):
    expected = expected_target(state, command, settles)
    if expected is not None:
        assert lifecycle.next_state(state, command, settles=settles) == expected
    else:
        with pytest.raises(CommandNotAllowedError) as info:
            lifecycle.next_state(state, command, settles=settles)
        err = info.value
        assert err.command == command
        assert err.state == state
        assert set(err.allowed) == set(EXPECTED[state])
        assert command not in err.allowed


@pytest.mark.parametrize("state", sorted(SPEC_STATES))
def test_the_commands_allowed_in_each_state_are_those_of_the_design(state):
    allowed = lifecycle.allowed_commands(state)
    assert set(allowed) == set(EXPECTED[state])
    assert len(allowed) == len(set(allowed)), "no command listed twice"


@pytest.mark.parametrize("state", sorted(SPEC_STATES))
def test_the_refusal_message_names_the_state_and_the_commands_allowed_now(state):
    refused = next(c for c in lifecycle.COMMANDS if c not in EXPECTED[state])
    with pytest.raises(CommandNotAllowedError) as info:
        lifecycle.next_state(state, refused)
    message = str(info.value)
    assert f"'{state}'" in message
    assert f"'{refused}'" in message
    for command in EXPECTED[state]:
        assert command in message
    if not EXPECTED[state]:
        assert "none" in message


def test_the_settled_state_names_only_the_complaint_commands():
    with pytest.raises(CommandNotAllowedError) as info:
        lifecycle.next_state("settled", "record_payment", settles=True)
    assert info.value.allowed == ["record_complaint", "resolve_complaint"]


@pytest.mark.parametrize(("state", "command"), [("issued", "teleport"), ("limbo", "record_payment"), ("", "")])
def test_an_unknown_state_or_command_is_refused(state, command):
    with pytest.raises(CommandNotAllowedError):
        lifecycle.next_state(state, command)


def test_the_time_driven_commands_are_lifecycle_commands():
    from collections_es.application.commands import TIME_DRIVEN

    assert TIME_DRIVEN <= SPEC_COMMANDS
    # marked "(time)" or "time-driven" in the design table
    assert {"fall_due", "start_follow_up", "escalate", "break_promise", "warn_limitation"} <= TIME_DRIVEN
    assert "keep_promise" in TIME_DRIVEN, "the timer that frees histories parked before PromiseKept"


def test_a_legal_referral_is_suggested_only_in_open_states_before_legal():
    assert lifecycle.PRE_LEGAL_STATES == {"issued", "reminded", "due", "following_up", "promised", "overdue_escalated"}


def test_every_declared_transition_is_in_the_design_table():
    for t in lifecycle.transitions():
        row = EXPECTED[t.source]
        assert t.command in row, f"{t.source} --{t.command}--> {t.target} is not in the design"
        target = row[t.command]
        targets = target if isinstance(target, tuple) else (target,)
        assert t.target in targets


@pytest.mark.parametrize("command", sorted(SPEC_COMMANDS))
def test_the_receivable_has_a_command_method_for_every_lifecycle_command(command):
    assert callable(getattr(Receivable, command, None))


def test_the_checked_in_lifecycle_docs_are_generated_from_the_machine():
    docs = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
    assert docs.exists(), "generate it with `collections-es docs`"
    assert docs.read_text(encoding="utf-8") == lifecycle.render_docs(), (
        "docs/lifecycle.md is stale; regenerate it with `collections-es docs`"
    )


def test_the_generated_docs_list_every_state_with_its_allowed_commands():
    docs = lifecycle.render_docs()
    assert "```mermaid" in docs
    for state in SPEC_STATES:
        allowed = ", ".join(f"`{c}`" for c in lifecycle.allowed_commands(state)) or "none (final)"
        assert f"| `{state}` | {allowed} |" in docs
