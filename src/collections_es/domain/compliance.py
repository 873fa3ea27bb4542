"""The compliance rules of the collection procedure, defined once.

Each rule has a stable id, a plain-language description and the policy
figures it reads. Three kinds:

- **preventive** rules are checked by the receivable's command methods: a
  command that breaks one is refused (`RuleViolationError` with the rule's
  id) unless a supervisor passes it with `override: {rule_id, reason}`, which
  the event records (`enforce`).
- **recorded** rules judge a contact when it is recorded. A contact that
  happened is a fact: it is never refused; the rules it broke are recorded on
  its event (`judge_contact`), each one a finding at once, or an override
  when a supervisor's contact exception, granted in advance, covers it.
  Prevention is the contact check asked before contacting (`check_contact`).
- **detective** rules judge a whole history afterwards (`judge`): each event
  by the policy version it recorded, each deadline by the version in force
  when the obligation arose. They also turn the breaches recorded on
  contacts into findings.

Everything here is a pure function of its arguments: histories, policies and
instants come in; nothing is read from a clock or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from . import aftercare, calendar, lifecycle, limitation as limitation_period, strategy
from .errors import PermissionDeniedError, RuleViolationError
from .policy import CollectionPolicy
from .trail import Context

OVERRIDE_ROLE = "supervisor"
#: How far ahead a contact exception may reach (ADR 0034).
CONTACT_EXCEPTION_MAX_DAYS = 31


@dataclass(frozen=True)
class Rule:
    id: str
    kind: Literal["preventive", "recorded", "detective"]
    title: str
    description: str
    policy_figures: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()  # preventive: the commands it refuses
    judged_on: tuple[str, ...] = ()  # the commands whose record it judges, never refusing them


_RULES: tuple[Rule, ...] = (
    # ---- recorded: judged when a contact is recorded, never refused ---------------
    Rule(
        "contact.outside_window",
        "recorded",
        "Contact outside the customer's contact window",
        "A contact takes place inside the policy's contact windows, on a business day (a weekday with "
        "windows that is not a policy holiday), in the customer's own time zone, judged at the moment it "
        "occurred. One that did not is recorded all the same and is a finding, unless a supervisor's contact "
        "exception for its channel covered that moment.",
        ("contact.windows", "holidays"),
        judged_on=("record_contact",),
    ),
    Rule(
        "contact.frequency_receivable",
        "recorded",
        "Too many contact attempts on one receivable",
        "At most `max_attempts_per_receivable` contacts take place on one receivable in any "
        "`attempts_period_days` days (a rolling period ending when the contact occurred; contacts count by when "
        "they occurred). One over the cap is recorded and is a finding, unless a contact exception covered it.",
        ("contact.max_attempts_per_receivable", "contact.attempts_period_days"),
        judged_on=("record_contact",),
    ),
    Rule(
        "contact.frequency_customer",
        "recorded",
        "Too many contact attempts with one customer",
        "At most `max_attempts_per_customer` contacts with one customer, across all of its receivables, in any "
        "`attempts_period_days` days. One over the cap is recorded and is a finding, unless a contact exception "
        "covered it.",
        ("contact.max_attempts_per_customer", "contact.attempts_period_days"),
        judged_on=("record_contact",),
    ),
    Rule(
        "contact.phone_per_day",
        "recorded",
        "Too many phone calls in a day",
        "At most `max_phone_per_day` phone contacts with one customer, across its receivables, on one day "
        "of the customer's calendar. One over the cap is recorded and is a finding, unless a contact exception "
        "covered it.",
        ("contact.max_phone_per_day",),
        judged_on=("record_contact",),
    ),
    # ---- preventive ---------------------------------------------------------
    Rule(
        "contact.channel_not_allowed",
        "preventive",
        "Channel not allowed in the receivable's state",
        "A reminder, follow-up or contact uses only the channels the policy allows in the receivable's current "
        "state (a state the policy does not list allows every channel). A reminder or follow-up by another "
        "channel is refused; a contact that used one is recorded and is a finding (no contact exception covers "
        "it).",
        ("channels_by_state",),
        ("send_reminder", "start_follow_up", "remind_installment"),
        ("record_contact",),
    ),
    Rule(
        "legal_referral.role",
        "preventive",
        "Legal referral by a role the policy does not allow",
        "Only the roles in `legal_referral_roles` refer a receivable to legal.",
        ("legal_referral_roles",),
        ("refer_to_legal",),
    ),
    Rule(
        "legal_referral.approval",
        "preventive",
        "Legal referral without the required approval",
        "When `legal_referral_requires_approval` is set, a referral needs an `approve_legal_referral` recorded "
        "since the receivable was last escalated, by a supervisor other than the person referring.",
        ("legal_referral_requires_approval",),
        ("refer_to_legal",),
    ),
    Rule(
        "write_off.approver_role",
        "preventive",
        "Write-off approved by a role the policy does not allow",
        "Only the roles in `write_off_approver_roles` approve a write-off.",
        ("write_off_approver_roles",),
        ("approve_write_off",),
    ),
    Rule(
        "write_off.four_eyes",
        "preventive",
        "Write-off approved by its requester",
        "The person approving a write-off is not the person who requested it (four eyes).",
        (),
        ("approve_write_off",),
    ),
    # ---- detective ----------------------------------------------------------
    Rule(
        "reminder.not_sent_in_time",
        "detective",
        "Pre-due reminder not sent in time",
        "A reminder is sent by the end of the reminder day: `reminder_lead_days` before the due date (the "
        "business day on or before), or the first business day after issue if that is later; none is owed "
        "when that day is not before the due date. Settling first lifts the obligation. A deadline that falls "
        "while collection is on hold moves to the end of the first business day from the hold's end (none is "
        "owed if that is after the due date).",
        ("reminder_lead_days", "contact.windows", "holidays"),
    ),
    Rule(
        "follow_up.not_started_in_time",
        "detective",
        "Follow-up not started in time after the due date",
        "Follow-up (`start_follow_up`, a contact, a promise or an escalation) starts by the end of the business "
        "day `follow_up_after_days` after the due date. Settling first lifts the obligation. A deadline that "
        "falls while collection is on hold moves to the end of the first business day from the hold's end.",
        ("follow_up_after_days", "contact.windows", "holidays"),
    ),
    Rule(
        "promise.broken_not_followed_up",
        "detective",
        "Broken promise not followed up",
        "After a broken promise the customer is contacted (or a new promise or plan agreed, or the receivable "
        "referred to legal) within `promise_follow_up_business_days` business days.",
        ("promise_follow_up_business_days", "contact.windows", "holidays"),
    ),
    Rule(
        "escalation.without_follow_up_contact",
        "detective",
        "Escalation without any follow-up contact",
        "A receivable is escalated only after at least one contact with the customer was recorded.",
    ),
    Rule(
        "legal_referral.without_escalation",
        "detective",
        "Legal referral without prior escalation",
        "A receivable is referred to legal only after it was escalated (by `escalate` or a broken promise). "
        "The lifecycle enforces this today; the rule keeps judging histories should that ever change.",
    ),
    Rule(
        "contact.without_outcome_or_next_step",
        "detective",
        "Contact logged without outcome or next step",
        "Every contact log entry names its outcome and the next step.",
    ),
    Rule(
        "limitation.no_action",
        "detective",
        "Limitation period nearing its end with no action",
        "Once a receivable is within `limitation_warning_days` of the end of its limitation period, some action "
        "(a contact, a promise or plan, a payment, a legal referral, a demand delivered, proceedings filed) is "
        "recorded within `limitation_action_days` (or before it lapses, if sooner). The period is the one the "
        "receivable shows (docs/limitation.md): from the day after due, or from the last demand, acknowledgement "
        "or proceedings (PRC Civil Code arts. 188, 189, 195).",
        ("limitation_period_years", "limitation_warning_days", "limitation_action_days"),
    ),
    Rule(
        "revisit.not_made_in_time",
        "detective",
        "Revisit after settlement not made in time",
        "A customer of one of the `revisits.tiers` is revisited (`record-revisit` on the customer) after a "
        "receivable of theirs is settled: from `revisits.after_days` after the settlement day, by the end of "
        "`revisits.within_days` days later (the customer's days). Any revisit of the customer recorded as taking "
        "place after the settlement and by then meets it (ADR 0057).",
        ("revisits.tiers", "revisits.after_days", "revisits.within_days"),
    ),
    Rule(
        "override.used",
        "detective",
        "A preventive rule was overridden, or a contact passed by an exception",
        "Every override of a preventive rule by a supervisor is reported, with its reason; so is every breach of "
        "a contact that a supervisor's contact exception covered, naming the exception.",
    ),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
PREVENTIVE: frozenset[str] = frozenset(r.id for r in _RULES if r.kind == "preventive")
RECORDED: frozenset[str] = frozenset(r.id for r in _RULES if r.kind == "recorded")
#: What a contact exception passes: the window and the caps, never a channel the state does not allow.
EXCEPTION_COVERS: frozenset[str] = RECORDED


def policy_figures(rule: Rule, policy: CollectionPolicy) -> dict[str, Any]:
    """The current values of the figures a rule reads, by their dotted names."""
    out: dict[str, Any] = {}
    document = policy.model_dump(mode="json")
    for name in rule.policy_figures:
        value: Any = document
        for part in name.split("."):
            value = value[part]
        out[name] = value
    return out


# ---- preventive ---------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    rule_id: str
    detail: str
    field: str | None = None


@dataclass(frozen=True)
class ContactAttempt:
    """One recorded contact: on which receivable, when, by which channel."""

    receivable_id: str
    at: datetime
    channel: str


def enforce(ctx: Context, breaches: Iterable[Breach]) -> None:
    """Refuse on the first breach the context does not override; refuse an override
    that passes nothing (it would put a needless override on the record)."""
    found = list(breaches)
    overridden = ctx.override_rule_id
    if overridden is not None:
        if ctx.actor.role != OVERRIDE_ROLE:
            raise PermissionDeniedError("only a supervisor may override a rule")
        if overridden not in PREVENTIVE:
            raise RuleViolationError(
                "override.unknown_rule", f"'{overridden}' is not a preventive rule", field="override.rule_id"
            )
        if not (ctx.override_reason or "").strip():
            raise RuleViolationError("field.required", "an override needs a reason", field="override.reason")
    for breach in found:
        if breach.rule_id != overridden:
            raise RuleViolationError(breach.rule_id, breach.detail, field=breach.field)
    if overridden is not None and overridden not in {b.rule_id for b in found}:
        raise RuleViolationError(
            "override.not_needed", f"this command does not break '{overridden}'; there is nothing to override",
            field="override.rule_id",
        )


def channel_breach(channel: str | None, state: str, policy: CollectionPolicy) -> list[Breach]:
    allowed = policy.channels_by_state.get(state)
    if channel is None or allowed is None or channel in allowed:
        return []
    return [
        Breach(
            "contact.channel_not_allowed",
            f"channel '{channel}' is not allowed in state '{state}'; allowed: {', '.join(allowed) or 'none'}",
            "channel",
        )
    ]


def channel_for(preferred: str, state: str, policy: CollectionPolicy) -> str:
    """The customer's preferred channel if the policy allows it in `state`, else the first allowed."""
    allowed = policy.channels_by_state.get(state)
    if allowed is None or preferred in allowed or not allowed:
        return preferred
    return allowed[0]


def contact_breaches(
    *,
    receivable_id: str,
    at: datetime,
    timezone: str,
    channel: str,
    state: str,
    policy: CollectionPolicy,
    own: Sequence[ContactAttempt],
    others: Sequence[ContactAttempt],
) -> list[Breach]:
    """Every rule a contact at `at` breaks. `own` are this receivable's contacts, `others`
    the customer's (its other receivables'; this one's are left out). Contacts count by when
    they occurred: those at or before `at`, within the rolling period ending at `at`."""
    return [breach for breach, _ in _contact_rules(receivable_id, at, timezone, channel, state, policy, own, others)]


def _contact_rules(
    receivable_id: str,
    at: datetime,
    timezone: str,
    channel: str,
    state: str,
    policy: CollectionPolicy,
    own: Sequence[ContactAttempt],
    others: Sequence[ContactAttempt],
) -> list[tuple[Breach, datetime | None]]:
    """Each breach with the earliest instant after `at` at which its rule could be met again
    (None: no time meets it), for `next_allowed_at`."""
    zone = ZoneInfo(timezone)
    found: list[tuple[Breach, datetime | None]] = []
    if not calendar.is_within_contact_window(at, timezone, policy):
        opening = calendar.next_contact_moment(at, timezone, policy)
        found.append(
            (
                Breach(
                    "contact.outside_window",
                    f"{at.astimezone(zone):%A %Y-%m-%d %H:%M} in {timezone} is outside the contact windows "
                    f"(next: {opening.astimezone(zone):%A %H:%M})",
                ),
                opening,
            )
        )
    contact = policy.contact
    period = timedelta(days=contact.attempts_period_days)
    others = [c for c in others if c.receivable_id != receivable_id]  # never count one contact twice
    recent_own = sorted(c.at for c in own if at - period < c.at <= at)
    recent_all = sorted([*recent_own, *(c.at for c in others if at - period < c.at <= at)])
    if len(recent_own) >= contact.max_attempts_per_receivable:
        found.append(
            (
                Breach(
                    "contact.frequency_receivable",
                    f"{len(recent_own)} contacts on this receivable in the {contact.attempts_period_days} days before; "
                    f"the cap is {contact.max_attempts_per_receivable}",
                ),
                # below the cap once enough of the oldest have left the rolling period
                recent_own[len(recent_own) - contact.max_attempts_per_receivable] + period,
            )
        )
    if len(recent_all) >= contact.max_attempts_per_customer:
        found.append(
            (
                Breach(
                    "contact.frequency_customer",
                    f"{len(recent_all)} contacts with this customer in the {contact.attempts_period_days} days before; "
                    f"the cap is {contact.max_attempts_per_customer}",
                ),
                recent_all[len(recent_all) - contact.max_attempts_per_customer] + period,
            )
        )
    if channel == "phone":
        day = at.astimezone(zone).date()
        calls = [
            c for c in (*own, *others) if c.channel == "phone" and c.at <= at and c.at.astimezone(zone).date() == day
        ]
        if len(calls) >= contact.max_phone_per_day:
            found.append(
                (
                    Breach(
                        "contact.phone_per_day",
                        f"{len(calls)} phone contacts with this customer on {day}; the cap is {contact.max_phone_per_day}",
                        "channel",
                    ),
                    calendar.start_of_day(day + timedelta(days=1), timezone),
                )
            )
    return found + [(b, None) for b in channel_breach(channel, state, policy)]


@dataclass(frozen=True)
class ContactException:
    """A supervisor's exception for contacts by one channel, from when it was granted until
    `valid_until` (both included), by the contact's `occurred_at`. It is granted in advance:
    a contact that occurred before the grant is not covered."""

    channel: str
    reason: str
    granted_by: str
    granted_at: datetime
    valid_until: datetime

    def covers(self, channel: str, at: datetime) -> bool:
        return channel == self.channel and self.granted_at <= at <= self.valid_until

    def describe(self) -> dict[str, str]:
        """What a contact's event records of the exception that covered it."""
        return {
            "granted_by": self.granted_by,
            "granted_at": self.granted_at.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RecordedFinding:
    """A finding a contact gives as soon as it is recorded (or would give, in a check)."""

    rule_id: str
    detail: str
    overridden_rule_id: str | None = None


def recorded_findings(breaches: Sequence[Mapping[str, Any]] | None, exception: Mapping[str, str] | None) -> list[RecordedFinding]:
    """The findings of the breaches a contact was recorded with: each a breach, or an
    `override.used` naming the exception that covered it."""
    out = []
    for breach in breaches or ():
        if breach.get("excepted") and exception is not None:
            out.append(
                RecordedFinding(
                    "override.used",
                    f"ContactRecorded: '{breach['rule_id']}' passed by the contact exception of {exception['granted_by']} "
                    f"(until {exception['valid_until']}): {exception['reason']} [{breach['detail']}]",
                    breach["rule_id"],
                )
            )
        else:
            out.append(RecordedFinding(breach["rule_id"], breach["detail"]))
    return out


@dataclass(frozen=True)
class ContactJudgement:
    """The rules a contact breaks, and the exception (if any) that covers some of them."""

    breaches: list[Breach]
    excepted: frozenset[str] = frozenset()
    exception: ContactException | None = None

    @property
    def uncovered(self) -> list[Breach]:
        return [b for b in self.breaches if b.rule_id not in self.excepted]

    def recorded(self) -> list[dict[str, Any]] | None:
        """The breaches as a contact's event records them (None when there are none)."""
        return [{"rule_id": b.rule_id, "detail": b.detail, "excepted": b.rule_id in self.excepted} for b in self.breaches] or None

    def findings(self) -> list[RecordedFinding]:
        return recorded_findings(self.recorded(), self.exception.describe() if self.exception else None)


def _exception_for(exceptions: Sequence[ContactException], channel: str, at: datetime) -> ContactException | None:
    """The most recently granted exception covering a contact by `channel` at `at`."""
    return next((e for e in reversed(exceptions) if e.covers(channel, at)), None)


def judge_contact(
    *,
    receivable_id: str,
    at: datetime,
    timezone: str,
    channel: str,
    state: str,
    policy: CollectionPolicy,
    own: Sequence[ContactAttempt],
    others: Sequence[ContactAttempt],
    exceptions: Sequence[ContactException] = (),
) -> ContactJudgement:
    """What a contact at `at` breaks, and which of its breaches an exception covers."""
    breaches = contact_breaches(
        receivable_id=receivable_id, at=at, timezone=timezone, channel=channel, state=state, policy=policy, own=own, others=others
    )
    exception = _exception_for(exceptions, channel, at)
    covered = frozenset(b.rule_id for b in breaches if b.rule_id in EXCEPTION_COVERS) if exception else frozenset()
    return ContactJudgement(breaches, covered, exception if covered else None)


@dataclass(frozen=True)
class ContactCheck:
    """The answer to "may I contact the customer by this channel at this instant?"."""

    channel: str
    at: datetime
    breaches: list[Breach]
    overrides: list[RecordedFinding]
    next_allowed_at: datetime | None

    @property
    def allowed(self) -> bool:
        return not self.breaches


#: `next_allowed_at` looks at most this many candidate instants ahead (each a window
#: opening, a contact leaving the rolling period or a new local day): enough for any
#: policy, as each step moves strictly forward past a rule's obstacle.
NEXT_ALLOWED_STEPS = 500


def check_contact(
    *,
    receivable_id: str,
    at: datetime,
    timezone: str,
    channel: str,
    state: str,
    policy: CollectionPolicy,
    own: Sequence[ContactAttempt],
    others: Sequence[ContactAttempt],
    exceptions: Sequence[ContactException] = (),
) -> ContactCheck:
    """The contact check: what a contact at `at` would break (breaches an exception covers
    are overrides, not breaches) and `next_allowed_at`, the first instant at or after `at` at
    which it breaks nothing uncovered: None when the channel is not allowed in the state
    (no time fixes that) or no such instant is found within `NEXT_ALLOWED_STEPS` candidates."""
    args = (receivable_id, timezone, channel, state, policy, own, others)
    judged = judge_contact(
        receivable_id=receivable_id, at=at, timezone=timezone, channel=channel, state=state, policy=policy,
        own=own, others=others, exceptions=exceptions,
    )
    return ContactCheck(
        channel=channel,
        at=at,
        breaches=judged.uncovered,
        overrides=[f for f in judged.findings() if f.overridden_rule_id is not None],
        next_allowed_at=_next_allowed_at(at, exceptions, *args),
    )


def _next_allowed_at(
    at: datetime,
    exceptions: Sequence[ContactException],
    receivable_id: str,
    timezone: str,
    channel: str,
    state: str,
    policy: CollectionPolicy,
    own: Sequence[ContactAttempt],
    others: Sequence[ContactAttempt],
) -> datetime | None:
    """A bounded search over candidate instants. At each candidate, every rule still broken
    (and not covered by an exception) gives the earliest instant it could be met again; none
    comes sooner, so the search jumps to the latest of those and looks again."""
    if channel_breach(channel, state, policy):
        return None
    moment = at
    for _ in range(NEXT_ALLOWED_STEPS):
        exception = _exception_for(exceptions, channel, moment)
        blocking = [
            clears
            for breach, clears in _contact_rules(receivable_id, moment, timezone, channel, state, policy, own, others)
            if exception is None or breach.rule_id not in EXCEPTION_COVERS
        ]
        if not blocking:
            return moment
        # an exception granted later (a check of a past instant) may cover a rule before it is met
        starts = [e.granted_at for e in exceptions if e.channel == channel and e.granted_at > moment]
        bounds = [min([clears, *starts]) if clears is not None else None for clears in blocking]
        if None in bounds:
            return None
        moment = max(b for b in bounds if b is not None)
    return None


def legal_referral_breaches(
    ctx: Context, approval: Mapping[str, Any] | None
) -> list[Breach]:
    policy = ctx.policy
    breaches: list[Breach] = []
    if ctx.actor.role not in policy.legal_referral_roles:
        breaches.append(
            Breach(
                "legal_referral.role",
                f"role '{ctx.actor.role}' may not refer to legal under policy {policy.version}; "
                f"allowed: {', '.join(policy.legal_referral_roles) or 'none'}",
            )
        )
    if policy.legal_referral_requires_approval:
        if approval is None:
            breaches.append(Breach("legal_referral.approval", "the policy requires an approved legal referral; none is recorded"))
        elif approval["approved_by"] == ctx.actor.id:
            breaches.append(
                Breach("legal_referral.approval", "the referral was approved by the person referring; another supervisor must approve")
            )
    return breaches


def write_off_breaches(ctx: Context, requested_by: str) -> list[Breach]:
    policy = ctx.policy
    breaches: list[Breach] = []
    if requested_by == ctx.actor.id:
        breaches.append(Breach("write_off.four_eyes", "the approver must not be the requester"))
    if ctx.actor.role not in policy.write_off_approver_roles:
        breaches.append(
            Breach(
                "write_off.approver_role",
                f"role '{ctx.actor.role}' may not approve write-offs under policy {policy.version}; "
                f"allowed: {', '.join(policy.write_off_approver_roles) or 'none'}",
            )
        )
    return breaches


# ---- detective ----------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """What the detective rules need of one receivable event."""

    type: str
    version: int
    at: datetime
    policy_version: str
    actor: str
    role: str
    state_after: str
    override: Mapping[str, str] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    strategy: str | None = None  # the strategy the event followed (ADR 0050)


@dataclass(frozen=True)
class Finding:
    rule_id: str
    receivable_id: str
    occurred_at: datetime
    collector: str | None
    detail: str
    policy_version: str | None
    actor: str | None = None
    event_version: int | None = None
    overridden_rule_id: str | None = None


#: The state a receivable is paid in full in; the customer's revisits enter its facts as this type.
SETTLED = "settled"
REVISIT_FACT = "RevisitRecorded"

#: Events that show someone worked the receivable with the customer.
_FOLLOW_UP = frozenset({"FollowUpStarted", "ContactRecorded", "PromiseMade", "InstallmentPlanAgreed", "Escalated"})
_PROMISE_FOLLOW_UP = frozenset({"ContactRecorded", "PromiseMade", "InstallmentPlanAgreed", "ReferredToLegal"})
_LIMITATION_ACTION = frozenset(
    {
        "ContactRecorded",
        "PromiseMade",
        "InstallmentPlanAgreed",
        "PaymentRecorded",
        "ReferredToLegal",
        "ProceedingsRecorded",
    }
)


def judge(facts: Sequence[Fact], policies: Mapping[str, CollectionPolicy], receivable_id: str) -> list[Finding]:
    """Every finding the history gives, including deadline findings dated after its
    last event (they stand unless a later event meets the obligation in time).
    The findings as of `now` are those with `occurred_at <= now` (`findings_as_of`)."""
    if not facts or facts[0].type != "Issued":
        return []
    return sorted(_Judge(facts, policies, receivable_id).run(), key=lambda f: (f.occurred_at, f.rule_id))


def findings_as_of(
    facts: Sequence[Fact], policies: Mapping[str, CollectionPolicy], receivable_id: str, now: datetime
) -> list[Finding]:
    return [f for f in judge([f for f in facts if f.at <= now], policies, receivable_id) if f.occurred_at <= now]


class _Judge:
    def __init__(self, facts: Sequence[Fact], policies: Mapping[str, CollectionPolicy], receivable_id: str) -> None:
        self.facts = facts
        self.policies = policies
        self.rid = receivable_id
        issued = facts[0]
        self.tz: str = issued.data["timezone"]
        self.zone = ZoneInfo(self.tz)
        self.due_on: date = issued.data["due_on"]
        self.issued = issued

    # -- helpers --------------------------------------------------------------

    def policy(self, fact: Fact) -> CollectionPolicy | None:
        """The policy the event was decided under: its version, with the strategy it followed
        and the customer's contact hours (domain/strategy.py)."""
        base = self.policies.get(fact.policy_version)
        if base is None:
            return None
        return strategy.effective(base, fact.strategy, self.contact_hours_at(fact.at))

    def contact_hours_at(self, at: datetime) -> strategy.ContactHours | None:
        hours = self.issued.data.get("contact_hours")
        for f in self.facts:
            if f.at > at:
                break
            if f.type == "Replanned":
                hours = f.data.get("contact_hours")
        return strategy.hours_of(hours)

    def in_force_at(self, at: datetime) -> Fact:
        """The last event at or before `at` (its policy version was the one in force)."""
        found = self.facts[0]
        for f in self.facts:
            if f.at > at:
                break
            found = f
        return found

    def collector_at(self, at: datetime) -> str | None:
        collector = self.issued.data.get("collector")
        for f in self.facts:
            if f.at > at:
                break
            if f.type == "CollectorAssigned":
                collector = f.data["collector"]
        return collector

    def end_of(self, day: date) -> datetime:
        return calendar.start_of_day(day + timedelta(days=1), self.tz)

    def closed_before(self, deadline: datetime) -> bool:
        return any(f.state_after in lifecycle.CLOSED_STATES for f in self.facts if f.at < deadline)

    def hold_spans(self) -> list[tuple[datetime, datetime | None]]:
        """When collection was on hold (ADR 0052): (from, to) of each hold, `to` None while it lasts."""
        spans: list[tuple[datetime, datetime | None]] = []
        running: dict[str, tuple[datetime, datetime | None]] = {}
        for f in self.facts:
            if f.type == "HoldPlaced":
                if f.data["scope"] in running:
                    start, until = running.pop(f.data["scope"])
                    spans.append((start, f.at if until is None else min(until, f.at)))
                running[f.data["scope"]] = (f.at, f.data.get("until"))
            elif f.type == "HoldReleased":
                for scope in f.data["scopes"]:
                    if scope in running:
                        start, until = running.pop(scope)
                        spans.append((start, f.at if until is None else min(until, f.at)))
        return spans + list(running.values())

    def after_holds(self, deadline: datetime, policy: CollectionPolicy) -> datetime | None:
        """A deadline that fell while collection was held moves to the end of the first business
        day from when the hold ended (what was owed is owed from then); None while still held."""
        spans = self.hold_spans()
        moved = True
        while moved:
            moved = False
            for start, end in spans:
                if start <= deadline and (end is None or deadline < end):
                    if end is None:
                        return None
                    deadline = self.end_of(calendar.business_day_on_or_after(end.astimezone(self.zone).date(), policy))
                    moved = True
        return deadline

    def any_between(self, types: frozenset[str], start: datetime, end: datetime) -> bool:
        return any(f.type in types for f in self.facts if start <= happened_at(f) < end)

    def finding(self, rule_id: str, at: datetime, detail: str, fact: Fact, *, event: bool = False, **extra: Any) -> Finding:
        return Finding(
            rule_id=rule_id,
            receivable_id=self.rid,
            occurred_at=at,
            collector=self.collector_at(at),
            detail=detail,
            policy_version=fact.policy_version,
            actor=fact.actor if event else None,
            event_version=fact.version if event else None,
            **extra,
        )

    # -- the rules --------------------------------------------------------------

    def run(self) -> Iterable[Finding]:
        for check in (
            self.reminder,
            self.follow_up,
            self.promise_follow_up,
            self.escalation_contact,
            self.legal_escalation,
            self.contact_complete,
            self.limitation,
            self.overrides,
            self.recorded_breaches,
            self.revisit,
        ):
            yield from check()

    def reminder(self) -> Iterable[Finding]:
        policy = self.policy(self.issued)
        if policy is None:
            return
        reminder_day = calendar.business_day_on_or_before(self.due_on - timedelta(days=policy.reminder_lead_days), policy)
        issued_day = self.issued.at.astimezone(self.zone).date()
        owed_on = max(reminder_day, calendar.business_day_on_or_after(issued_day, policy))
        if owed_on >= self.due_on:
            return
        deadline = self.after_holds(self.end_of(owed_on), policy)
        if deadline is None or deadline > calendar.start_of_day(self.due_on, self.tz):
            return  # held until then, or until after the due date, when no reminder is owed
        if self.closed_before(deadline) or self.any_between(frozenset({"ReminderSent"}), self.issued.at, deadline):
            return
        yield self.finding(
            "reminder.not_sent_in_time",
            deadline,
            f"no pre-due reminder by the end of {owed_on} (due {self.due_on}; {policy.reminder_lead_days} days' lead)",
            self.issued,
        )

    def follow_up(self) -> Iterable[Finding]:
        fell_due = next((f for f in self.facts if f.type == "FellDue"), None)
        basis = fell_due or self.in_force_at(calendar.start_of_day(self.due_on, self.tz))
        policy = self.policy(basis)
        if policy is None:
            return
        owed_on = calendar.business_day_on_or_after(self.due_on + timedelta(days=policy.follow_up_after_days), policy)
        deadline = self.after_holds(self.end_of(owed_on), policy)
        if deadline is None:
            return  # held, and not released yet
        owed_on = deadline.astimezone(self.zone).date() - timedelta(days=1)
        if self.closed_before(deadline) or self.any_between(_FOLLOW_UP, self.issued.at, deadline):
            return
        yield self.finding(
            "follow_up.not_started_in_time",
            deadline,
            f"follow-up not started by the end of {owed_on} (due {self.due_on}; "
            f"{policy.follow_up_after_days} day(s) after due)",
            basis,
        )

    def promise_follow_up(self) -> Iterable[Finding]:
        for broken in (f for f in self.facts if f.type == "PromiseBroken"):
            policy = self.policy(broken)
            if policy is None:
                continue
            day = broken.at.astimezone(self.zone).date()
            for _ in range(policy.promise_follow_up_business_days):
                day = calendar.business_day_on_or_after(day + timedelta(days=1), policy)
            deadline = self.end_of(day)
            if self.closed_before(deadline) or self.any_between(_PROMISE_FOLLOW_UP, broken.at, deadline):
                continue
            yield self.finding(
                "promise.broken_not_followed_up",
                deadline,
                f"promise broken on {broken.at.astimezone(self.zone).date()}; no contact by the end of {day}",
                broken,
            )

    def escalation_contact(self) -> Iterable[Finding]:
        for escalated in (f for f in self.facts if f.type == "Escalated"):
            if not any(f.type == "ContactRecorded" and happened_at(f) <= escalated.at for f in self.facts):
                yield self.finding(
                    "escalation.without_follow_up_contact",
                    escalated.at,
                    f"escalated by {escalated.actor} without any contact with the customer recorded",
                    escalated,
                    event=True,
                )

    def legal_escalation(self) -> Iterable[Finding]:
        for referred in (f for f in self.facts if f.type == "ReferredToLegal"):
            if not any(f.type in ("Escalated", "PromiseBroken") and f.at <= referred.at for f in self.facts):
                yield self.finding(
                    "legal_referral.without_escalation",
                    referred.at,
                    f"referred to legal by {referred.actor} without a prior escalation",
                    referred,
                    event=True,
                )

    def contact_complete(self) -> Iterable[Finding]:
        for contact in (f for f in self.facts if f.type == "ContactRecorded"):
            missing = [name for name in ("outcome", "next_step") if not contact.data.get(name)]
            if missing:
                yield self.finding(
                    "contact.without_outcome_or_next_step",
                    contact.at,
                    f"contact by {contact.actor} logged without {' or '.join(n.replace('_', ' ') for n in missing)}",
                    contact,
                    event=True,
                )

    def limitation(self) -> Iterable[Finding]:
        periods = list(self._limitation_periods())
        for i, (start, basis) in enumerate(periods):
            policy = self.policy(basis)
            if policy is None:
                continue
            lapses_on = limitation_period.add_years(start, policy.limitation_period_years)
            warn_on = lapses_on - timedelta(days=policy.limitation_warning_days)
            warn_at = calendar.start_of_day(warn_on, self.tz)
            deadline = calendar.start_of_day(min(warn_on + timedelta(days=policy.limitation_action_days), lapses_on), self.tz)
            next_start = periods[i + 1][1].at if i + 1 < len(periods) else None
            if next_start is not None and next_start < warn_at:
                continue  # interrupted before the warning lead began
            if self.closed_before(deadline) or any(
                self.is_limitation_action(f) for f in self.facts if warn_at <= f.at < deadline
            ):
                continue
            yield self.finding(
                "limitation.no_action",
                deadline,
                f"the limitation period lapses on {lapses_on}; no action since the warning lead began on {warn_on}",
                basis,
            )

    def is_limitation_action(self, f: Fact) -> bool:
        """Some action on the receivable: one of the listed events, or any interruption (a delivered demand)."""
        return f.type in _LIMITATION_ACTION or self.interruption(f) is not None

    def interruption(self, f: Fact) -> limitation_period.Interruption | None:
        return limitation_period.interruption(f.type, f.data, f.at, self.tz)

    def _periods(self) -> Iterable[tuple[limitation_period.Period, int | None]]:
        """The computation the receivable itself applies (domain/limitation.py), over the facts."""
        history = ((f.type, f.data, f.at, f.version) for f in self.facts[1:])
        return limitation_period.periods(self.due_on, self.tz, history)

    def _limitation_periods(self) -> Iterable[tuple[date, Fact]]:
        """(start of a limitation period, the event that started it)."""
        by_version = {f.version: f for f in self.facts}
        for period, version in self._periods():
            yield period.started_on, self.issued if version is None else by_version[version]

    def limitation_periods(self) -> list[limitation_period.Period]:
        """The periods the history ran through, oldest first (the last is the one running)."""
        return [period for period, _ in self._periods()]

    def revisit(self) -> Iterable[Finding]:
        """A settlement owes the customer a revisit when its policy says so for the customer's tier
        (the projection gives the settling fact the tier, and the customer's revisits as facts)."""
        settled = next((f for f in self.facts if f.state_after == SETTLED), None)
        policy = None if settled is None else self.policy(settled)
        if settled is None or policy is None:
            return
        owed = aftercare.revisit_owed(settled.at, self.tz, settled.data.get("tier"), policy)
        if owed is None:
            return
        deadline = self.end_of(owed.last_day)
        if any(f.type == REVISIT_FACT and settled.at <= happened_at(f) < deadline for f in self.facts):
            return
        yield self.finding(
            "revisit.not_made_in_time",
            deadline,
            f"settled on {settled.at.astimezone(self.zone).date()}; no revisit of the customer from {owed.owed_on} "
            f"by the end of {owed.last_day}",
            settled,
        )

    def overrides(self) -> Iterable[Finding]:
        for f in self.facts:
            if f.override:
                rule = f.override.get("rule_id", "")
                yield self.finding(
                    "override.used",
                    f.at,
                    f"{f.type}: '{rule}' overridden by {f.actor}: {f.override.get('reason', '')}",
                    f,
                    event=True,
                    overridden_rule_id=rule,
                )

    def recorded_breaches(self) -> Iterable[Finding]:
        """The rules each contact broke, as recorded on its event: dated when it occurred."""
        for contact in (f for f in self.facts if f.type == "ContactRecorded"):
            for found in recorded_findings(contact.data.get("breaches_found"), contact.data.get("exception")):
                yield self.finding(
                    found.rule_id,
                    happened_at(contact),
                    found.detail,
                    contact,
                    event=True,
                    overridden_rule_id=found.overridden_rule_id,
                )


def happened_at(fact: Fact) -> datetime:
    """When what the event records took place: a contact's `occurred_at` (logged later, perhaps),
    else the moment it was recorded."""
    return fact.data.get("occurred_at") or fact.at


def limitation_periods(facts: Sequence[Fact]) -> list[limitation_period.Period]:
    """The limitation periods a receivable's history ran through, as the detective rule sees them."""
    if not facts or facts[0].type != "Issued":
        return []
    return _Judge(facts, {}, "").limitation_periods()


def _fields(*groups: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for group in groups:
        for name, names in group.items():
            out[name] = tuple(dict.fromkeys((*out.get(name, ()), *names)))
    return out


#: What each event type gives the rules: their own needs, and what the limitation
#: period reads (`limitation.FIELDS`: one computation, fed the same fields).
FACT_FIELDS: Mapping[str, tuple[str, ...]] = _fields(
    {
        "Issued": ("invoice_number", "customer_id", "timezone", "due_on", "issued_on", "collector", "contact_hours"),
        "Replanned": ("contact_hours",),
        "ContactRecorded": ("channel", "outcome", "next_step", "occurred_at", "breaches_found", "exception"),
        "CollectorAssigned": ("collector",),
        "PaymentRecorded": ("paid_on",),
        "HoldPlaced": ("scope", "until"),
        "HoldReleased": ("scopes",),
    },
    limitation_period.FIELDS,
)


def fact_of(event: Any) -> Fact:
    """The fact a receivable event gives the detective rules (free text is reduced to
    whether it was given: the rules need no more, and the read model keeps no more)."""
    name = type(event).__name__
    data = {k: getattr(event, k) for k in FACT_FIELDS.get(name, ())}
    if "next_step" in data:
        data["next_step"] = bool((data["next_step"] or "").strip())
    if "installments" in data:  # the limitation period reads the dates alone
        data["installments"] = [{"due_on": item["due_on"]} for item in data["installments"]]
    return Fact(
        type=name,
        version=event.originator_version,
        at=event.timestamp,
        policy_version=event.policy_version,
        actor=event.actor_id,
        role=event.actor_role,
        state_after=event.state_after,
        override=event.override,
        data=data,
        strategy=event.strategy,
    )


def render_docs() -> str:
    """The generated `docs/compliance-rules.md`."""
    lines = [
        "# Compliance rules",
        "",
        "Generated from `collections_es.domain.compliance.RULES` by `collections-es docs`;",
        "a test fails when this file differs from the code. `GET /compliance/rules` lists the",
        "same rules with the figures of the policy in force. See ADR 0033 for how they are checked",
        "and ADR 0034 for why a contact is judged, never refused.",
        "",
    ]
    kinds = (
        ("preventive", "Preventive: refused unless a supervisor overrides", "", ("refuses", "judges when recorded")),
        (
            "recorded",
            "Judged when recorded: a contact is never refused",
            "A contact that took place is a fact: it is always recorded, and each of these rules it broke is a "
            "finding at once (reported as `override.used` instead when a supervisor's contact exception covered "
            "it). Prevention comes before the contact: `GET /receivables/{id}/contact-check`.",
            ("judges when recorded",),
        ),
        ("detective", "Detective: reported as findings", "", ()),
    )
    for kind, heading, intro, columns in kinds:
        lines += [f"## {heading}", ""] + ([intro, ""] if intro else [])
        names = ("id", "rule", "policy figures", *columns)
        lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        for rule in (r for r in _RULES if r.kind == kind):
            figures = ", ".join(f"`{f}`" for f in rule.policy_figures) or "—"
            cells = [f"`{rule.id}`", f"**{rule.title}.** {rule.description}", figures]
            if "refuses" in columns:
                cells.append(", ".join(f"`{c}`" for c in rule.commands) or "—")
            if "judges when recorded" in columns:
                cells.append(", ".join(f"`{c}`" for c in rule.judged_on) or "—")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
