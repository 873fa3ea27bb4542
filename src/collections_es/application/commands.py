"""Every command of a receivable, declared once.

A row of `COMMANDS` says all there is to say about a command: its body (the
fields it takes, validated at the edge), the roles that may send it, whether
the scheduler may fire it when its moment comes, and a one-line summary. Its
transitions come from the lifecycle state machine (`domain.lifecycle`) and the
preventive rules that judge it from the compliance catalogue
(`domain.compliance`), each declared there once and read here.

Everything else is derived: the access table (`application.access`), the HTTP
routes (`api.routes.receivables`), the scheduler's right to fire a command,
the `allowed_actions` a client is given and `docs/commands.md`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..domain import compliance, lifecycle
from ..domain.policy import Channel
from ..domain.receivable import ContactOutcome, PaymentMethod
from ..domain.trail import CUSTOMER_ROLE
from .fields import AwareInstant, Currency, Day, Identifier, Money, ShortText, Strict, Text

# ---- bodies -------------------------------------------------------------------------


class OverrideIn(Strict):
    rule_id: ShortText
    reason: Text


class CommandBody(Strict):
    override: OverrideIn | None = Field(
        default=None, description="Supervisors only: pass a preventive rule, with a reason that is recorded"
    )


class ReceivableCreate(Strict):
    invoice_number: Identifier
    customer_id: Identifier
    amount: Money
    currency: Currency
    issued_on: Day
    due_on: Day
    collector: ShortText | None = None


class SendReminder(CommandBody):
    channel: Channel


class FallDue(CommandBody):
    pass


class StartFollowUp(CommandBody):
    channel: Channel | None = None
    note: Text | None = None


class RecordContact(CommandBody):
    """A contact that took place: always recorded; each rule it broke is a finding at once."""

    channel: Channel
    outcome: ContactOutcome
    note: Text
    customer_attitude: Text | None = None
    reason_for_non_payment: Text | None = Field(
        default=None,
        description="A code of the policy's vocabulary (GET /policy: non_payment_reasons) or free words, kept as given; "
        "words that match no code count as `unclassified` (ADR 0058)",
    )
    next_step: Text | None = None
    promised_on: Day | None = None
    occurred_at: AwareInstant | None = Field(
        default=None, description="When the contact took place (default now): not in the future, not before the issue date"
    )


class PromiseToPay(CommandBody):
    amount: Money
    promised_on: Day
    note: Text | None = None


class InstallmentIn(Strict):
    due_on: Day
    amount: Money


class AgreeInstallmentPlan(CommandBody):
    installments: list[InstallmentIn] = Field(min_length=1, max_length=120)
    reason: Text


class ProposeInstallmentPlan(CommandBody):
    """The customer's own proposal (portal): a collector accepts or declines it."""

    installments: list[InstallmentIn] = Field(min_length=1, max_length=120)
    note: Text | None = None


class AcceptInstallmentProposal(CommandBody):
    note: Text | None = None


class DeclineInstallmentProposal(CommandBody):
    reason: Text = Field(description="Shown to the customer on their portal page")


# One class per command, even where two take the same fields: the OpenAPI document names
# each body by its class, and clients generated from it keep those names.


class Reasoned(CommandBody):
    reason: Text


class BreakPromise(Reasoned):
    pass


class KeepPromise(CommandBody):
    """A promise or plan that payments cover is kept: back to collection (the scheduler sends it too)."""


class Escalate(Reasoned):
    pass


class ReferToLegal(Reasoned):
    pass


class RequestWriteOff(Reasoned):
    pass


class RaiseDispute(Reasoned):
    reason_for_non_payment: Text | None = Field(
        default=None, description="The reason for non-payment the dispute gives: a code of the policy's vocabulary, or words"
    )


class Payment(CommandBody):
    amount: Money
    method: PaymentMethod
    paid_on: Day
    reference: ShortText


class RecordPayment(Payment):
    pass


class RecordRecovery(Payment):
    pass


class ApproveWriteOff(CommandBody):
    note: Text | None = None


class ApproveLegalReferral(CommandBody):
    note: Text | None = None


class ResolveDispute(CommandBody):
    resolution: Text
    adjusted_amount: Money | None = None


class AssignCollector(CommandBody):
    collector: ShortText


class WarnLimitation(CommandBody):
    pass


class RecordDelivery(CommandBody):
    """A message or letter reached the customer; a demand for payment when its template asks for one."""

    message_id: ShortText = Field(description="The outbox message id (or the letter's reference): recorded once")
    channel: Channel
    template: ShortText = Field(
        description="The message or letter template, e.g. first_dunning, broken_promise, dunning, lawyer_letter"
    )
    delivered_at: AwareInstant = Field(description="When the server, gateway or courier accepted it")


class RecordProceedings(CommandBody):
    """Suit or arbitration filed: restarts the limitation period (PRC Civil Code art. 195)."""

    kind: Literal["suit", "arbitration"]
    filed_on: Day
    case_number: ShortText


class GrantContactException(CommandBody):
    """A supervisor lets contacts by one channel pass the windows and caps until `valid_until` (reported as overrides)."""

    channel: Channel
    reason: Text
    valid_until: AwareInstant = Field(description="In the future, at most 31 days ahead; contacts count by their occurred_at")


class Hold(CommandBody):
    """Put collection on hold: nothing time-driven acts and nothing is sent until released or `until`."""

    reason: Text
    until: AwareInstant | None = Field(
        default=None, description="When the hold ends by itself (after now); without it, until released"
    )


class ReleaseHold(CommandBody):
    """Release the holds in force (the receivable's own and its customer's): collection resumes from now."""

    reason: Text


class RecordComplaint(CommandBody):
    """A complaint about the collection, maybe about one event of the receivable (a contact, say)."""

    channel: Channel = Field(description="How the complaint came in")
    text: Text
    severity: Literal["low", "medium", "high"]
    about_version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="The receivable's version (event) it concerns, e.g. a contact's"
    )


class ResolveComplaint(CommandBody):
    outcome: Literal["upheld", "not_upheld"]
    action: Text = Field(description="What was done about it")
    complaint: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="The complaint (its event's version); needed when several are open"
    )


class RemindInstallment(CommandBody):
    """Remind the customer of the next installment of the plan (the scheduler sends it the policy's lead days before)."""

    channel: Channel


class Replan(CommandBody):
    """Follow the policy in force and the strategy the customer matches now; the timers are planned anew."""

    reason: Text


class AccrueCharges(CommandBody):
    """Accrue interest and fees through a day (the scheduler does it at each month's end; each day once)."""

    through: Day | None = Field(
        default=None, description="The last day to accrue: not after today in the customer's time zone (default today)"
    )


class WaiveCharges(CommandBody):
    """Waive interest and fees; above the policy's threshold a second supervisor approves it."""

    amount: Money
    reason: Text


class ApproveChargesWaiver(CommandBody):
    note: Text | None = None


# ---- the declaration -----------------------------------------------------------------

_SERVICE = frozenset({"service"})
_COLLECTION = frozenset({"collector", "supervisor"})
_SUPERVISOR = frozenset({"supervisor"})
_TIME = _SERVICE | _SUPERVISOR
#: A customer on their own portal page (actor `customer:<id>`); never an API key's role.
_CUSTOMER = frozenset({CUSTOMER_ROLE})


@dataclass(frozen=True)
class Command:
    """One command: what it takes, who may send it, whether time may fire it."""

    name: str
    body: type[BaseModel]
    roles: frozenset[str]
    summary: str
    time_driven: bool = False

    @property
    def path(self) -> str:
        """The route's last segment: the name in kebab case."""
        return self.name.replace("_", "-")

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules that judge it (from the compliance catalogue): those that refuse it and
        those it is judged by when recorded (a contact is a fact: recorded, then judged)."""
        return tuple(
            r.id for r in compliance.RULES.values() if self.name in r.commands or self.name in r.judged_on
        )

    @property
    def transitions(self) -> list[lifecycle.Transition]:
        return [t for t in lifecycle.transitions() if t.command == self.name]

    @property
    def states(self) -> tuple[str, ...]:
        """The states it is allowed in."""
        return tuple(s for s in lifecycle.STATES if self.name in lifecycle.allowed_commands(s))

    def fields(self) -> dict[str, Any]:
        """Its fields (without `override`), as pydantic declares them."""
        return {n: f for n, f in self.body.model_fields.items() if n != "override"}


def _declare(*commands: Command) -> dict[str, Command]:
    table = {c.name: c for c in commands}
    assert len(table) == len(commands), "a command is declared twice"
    return table


ISSUE = Command("issue", ReceivableCreate, _TIME, "Issue a receivable; its id derives from the invoice number")

#: The lifecycle's commands, in the state machine's order.
LIFECYCLE: dict[str, Command] = _declare(
    Command("send_reminder", SendReminder, _SERVICE | _COLLECTION, "Send the pre-due reminder", time_driven=True),
    Command("fall_due", FallDue, _TIME, "The due date has come", time_driven=True),
    Command("start_follow_up", StartFollowUp, _SERVICE | _COLLECTION, "Start following up after the due date", time_driven=True),
    Command(
        "record_contact",
        RecordContact,
        _COLLECTION | {"sales", "customer_service", "legal"},
        "Record a contact with the customer (a fact: recorded, then judged)",
    ),
    Command("promise_to_pay", PromiseToPay, _COLLECTION | {"sales"} | _CUSTOMER, "Record the customer's promise to pay"),
    Command("agree_installment_plan", AgreeInstallmentPlan, _COLLECTION, "Agree a schedule of installments summing to the balance"),
    Command(
        "propose_installment_plan",
        ProposeInstallmentPlan,
        _CUSTOMER,
        "The customer proposes a schedule of installments (portal), for a collector to accept or decline",
    ),
    Command(
        "accept_installment_proposal",
        AcceptInstallmentProposal,
        _COLLECTION,
        "Accept the customer's proposed plan: it is agreed as the plan",
    ),
    Command(
        "decline_installment_proposal",
        DeclineInstallmentProposal,
        _COLLECTION,
        "Decline the customer's proposed plan, with a reason the customer sees",
    ),
    Command("break_promise", BreakPromise, _TIME | {"collector"}, "Declare a promise broken after its grace", time_driven=True),
    Command(
        "keep_promise",
        KeepPromise,
        _TIME | {"collector"},
        "A promise that payments cover is kept: back to collection",
        time_driven=True,
    ),
    Command("escalate", Escalate, _SERVICE | _COLLECTION, "Escalate a long overdue receivable", time_driven=True),
    Command("approve_legal_referral", ApproveLegalReferral, _SUPERVISOR, "Approve referring the receivable to legal"),
    Command("refer_to_legal", ReferToLegal, frozenset({"legal", "supervisor"}), "Refer the receivable to legal"),
    Command("record_payment", RecordPayment, _SERVICE | _COLLECTION, "Record a payment (partial payments allowed)"),
    # The policy narrows these two further (write_off_approver_roles, legal_referral_roles):
    # the compliance rules refuse a role the policy in force does not name.
    Command("request_write_off", RequestWriteOff, _COLLECTION | {"legal"}, "Request a write-off"),
    Command("approve_write_off", ApproveWriteOff, frozenset({"supervisor", "legal"}), "Approve a write-off (four eyes)"),
    Command(
        "raise_dispute", RaiseDispute, _COLLECTION | {"customer_service", "sales"} | _CUSTOMER, "Raise a dispute: pauses escalation"
    ),
    Command("resolve_dispute", ResolveDispute, frozenset({"supervisor", "customer_service"}), "Resolve the dispute, maybe lowering the amount"),
    Command("assign_collector", AssignCollector, _SUPERVISOR, "Assign the receivable to a collector"),
    Command("record_recovery", RecordRecovery, _SERVICE | _COLLECTION | {"legal"}, "Record money recovered after a write-off"),
    Command("warn_limitation", WarnLimitation, _TIME, "Warn that the limitation period is about to lapse", time_driven=True),
    Command(
        "record_delivery",
        RecordDelivery,
        _SERVICE | _SUPERVISOR | {"legal"},
        "A message or letter reached the customer (the notifier records its own; legal and supervisors a courier's)",
    ),
    Command(
        "record_proceedings",
        RecordProceedings,
        frozenset({"legal", "supervisor"}),
        "Suit or arbitration filed: restarts the limitation period",
    ),
    Command(
        "grant_contact_exception",
        GrantContactException,
        _SUPERVISOR,
        "Let contacts by one channel pass the contact windows and caps until an instant (reported as overrides)",
    ),
    Command("hold", Hold, _SUPERVISOR, "Put collection on hold: nothing time-driven acts, nothing is sent"),
    Command("release_hold", ReleaseHold, _SUPERVISOR, "Release the hold: collection resumes from now, catching up"),
    Command(
        "record_complaint",
        RecordComplaint,
        frozenset({"customer_service", "supervisor"}),
        "Record a complaint about the collection (in every state, settled too)",
    ),
    Command("resolve_complaint", ResolveComplaint, _SUPERVISOR, "Rule on a complaint: upheld or not, and the action taken"),
    Command(
        "remind_installment",
        RemindInstallment,
        _SERVICE | _COLLECTION,
        "Remind the customer of the next installment of the plan",
        time_driven=True,
    ),
    Command(
        "replan",
        Replan,
        _SERVICE | _SUPERVISOR,
        "Follow the policy in force and the strategy the customer matches now (recorded by the service itself "
        "when a customer's segment, tier, strategy or hours or the policy changes)",
    ),
    Command(
        "accrue_charges",
        AccrueCharges,
        _TIME | _COLLECTION,
        "Accrue interest and late fees through a day (each day once)",
        time_driven=True,
    ),
    Command("waive_charges", WaiveCharges, _SUPERVISOR, "Waive interest and fees (a second supervisor above the policy's threshold)"),
    Command("approve_charges_waiver", ApproveChargesWaiver, _SUPERVISOR, "Approve a waiver of charges (four eyes)"),
)

missing = set(lifecycle.COMMANDS) ^ set(LIFECYCLE)
assert not missing, f"lifecycle commands and declarations differ: {missing}"
LIFECYCLE = {name: LIFECYCLE[name] for name in lifecycle.COMMANDS}

#: Every command, issuing first.
COMMANDS: dict[str, Command] = {ISSUE.name: ISSUE, **LIFECYCLE}

#: What the scheduler may fire; people with the roles may send them too.
TIME_DRIVEN: frozenset[str] = frozenset(c.name for c in LIFECYCLE.values() if c.time_driven)


def allowed_actions(receivable_id: str, commands: Iterable[str]) -> list[dict[str, str]]:
    """The routes of `commands` on one receivable, for clients that follow links."""
    return [
        {"command": name, "method": "POST", "path": f"/receivables/{receivable_id}/{COMMANDS[name].path}"}
        for name in commands
    ]


def render_docs() -> str:
    """The generated `docs/commands.md`: every command with its route, fields, roles and rules."""
    lines = [
        "# Commands",
        "",
        "Generated from `collections_es.application.commands` by `collections-es docs`; a test fails",
        "when this file differs from the code. Each command is declared once there; the states it",
        "is allowed in come from the lifecycle ([lifecycle.md](lifecycle.md)), the preventive rules",
        "that judge it from the compliance catalogue ([compliance-rules.md](compliance-rules.md)).",
        "",
        "| command | route | fields | roles | time-driven | allowed in | rules |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in COMMANDS.values():
        route = "`POST /receivables`" if c is ISSUE else f"`POST /receivables/{{id}}/{c.path}`"
        fields = ", ".join(f"`{n}`" + ("" if f.is_required() else "?") for n, f in c.fields().items()) or "—"
        states = "—" if c is ISSUE else ", ".join(f"`{s}`" for s in c.states)
        rules = ", ".join(f"`{r}`" for r in c.rules) or "—"
        roles = ", ".join(sorted(c.roles))
        lines.append(
            f"| `{c.name}` | {route} | {fields} | {roles} | {'yes' if c.time_driven else ''} | {states} | {rules} |"
        )
    lines += [
        "",
        "Every command body may carry `override: {rule_id, reason}` (supervisors only) to pass one",
        "preventive rule; the override is recorded on the event and reported.",
        "",
    ]
    return "\n".join(lines)
