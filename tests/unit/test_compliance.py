"""The compliance rules as pure functions: preventive checks in the command
methods (refused, unchanged, passed by a supervisor's override) and the
detective rules over whole histories, each judged by its own policy version.

The standard story (helpers): issued Monday 2024-01-08, due Wednesday
2024-02-07, customer in Shanghai (UTC+8), contact windows weekday mornings
09:00-12:00. So 02:00Z is 10:00 local, inside a window; 16:00Z is midnight.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import date, datetime

import pytest

from collections_es.domain.compliance import (
    PREVENTIVE,
    RULES,
    ContactAttempt,
    Fact,
    fact_of,
    findings_as_of,
    judge,
)
from collections_es.domain.errors import PermissionDeniedError
from collections_es.domain.trail import stored_event_hash

from .helpers import (
    COLLECTOR,
    POLICY,
    SUPERVISOR,
    Actor,
    approve_legal_referral,
    approve_write_off,
    assign_collector,
    break_promise,
    escalate,
    fall_due,
    given,
    grant_contact_exception,
    given_in,
    issue,
    promise_to_pay,
    record_contact,
    refer_to_legal,
    request_write_off,
    send_reminder,
    start_follow_up,
    story,
    then_refused,
    when,
)

RID = "r-1"
IN_TIME_REMINDER = "2024-01-31T02:00:00+00:00"  # the reminder day: due minus 7 days, a Wednesday
FOLLOW_UP_DAY = "2024-02-08T02:00:00+00:00"  # one day after due, a Thursday
LEGAL = Actor("legal:lee", "legal")
OTHER_SUPERVISOR = Actor("supervisor:sam", "supervisor")


def policy(**changes):
    return POLICY.model_copy(update=changes)


def contact_policy(**changes):
    return policy(contact=POLICY.contact.model_copy(update=changes))


def facts_of(*calls):
    _, events = story(*calls)
    return [fact_of(e) for e in events]


def rules_found(facts, now, policies=None):
    return [f.rule_id for f in findings_as_of(facts, policies or {POLICY.version: POLICY}, RID, at(now))]


def at(when: str) -> datetime:
    return datetime.fromisoformat(when)


# ---- the catalogue ---------------------------------------------------------------


def test_every_rule_has_a_stable_dotted_id_a_description_and_known_policy_figures():
    document = POLICY.model_dump(mode="json")
    for rule in RULES.values():
        assert rule.id.count(".") == 1 and rule.title and rule.description.endswith(".")
        for name in rule.policy_figures:
            value = document
            for part in name.split("."):
                value = value[part]
        assert (rule.kind == "preventive") == bool(rule.commands)
        assert (rule.kind == "recorded") <= bool(rule.judged_on)


# ---- contacts are facts: recorded, and judged when recorded ---------------------


def breached(events):
    """The rule ids the recorded contact broke (not passed by an exception)."""
    [event] = events
    assert type(event).__name__ == "ContactRecorded"
    return [b["rule_id"] for b in event.breaches_found or () if not b["excepted"]]


def test_a_contact_outside_the_window_is_recorded_with_the_breach_on_its_event():
    r = given_in("due")
    night = record_contact().at("2024-02-08T16:30:00+00:00")  # 00:30 on Friday in Shanghai
    events = when(r, night)
    assert breached(events) == ["contact.outside_window"]
    assert "Asia/Shanghai" in events[0].breaches_found[0]["detail"]
    assert events[0].occurred_at == at("2024-02-08T16:30:00+00:00") and events[0].exception is None
    assert stored_event_hash(events[0]) == events[0].hash
    lunch = record_contact(channel="email").at("2024-02-09T05:00:00+00:00")  # 13:00, between the morning and nothing
    assert breached(when(r, lunch)) == ["contact.outside_window"]
    assert len(r.contact_attempts) == 2


def test_a_contact_inside_the_window_breaks_nothing_and_its_event_carries_no_breaches():
    events = when(given_in("due"), record_contact().at(FOLLOW_UP_DAY))
    assert events[0].breaches_found is None and events[0].exception is None


def test_a_holiday_and_a_weekend_are_outside_the_window_in_the_customers_time_zone():
    holiday = policy(holidays=[date(2024, 2, 8)])
    on_holiday = record_contact().at(FOLLOW_UP_DAY)
    events = when(given_in("due"), on_holiday.in_context(dataclasses.replace(on_holiday.ctx, policy=holiday)))
    assert breached(events) == ["contact.outside_window"]
    assert breached(when(given_in("due"), record_contact().at("2024-02-10T02:00:00+00:00"))) == ["contact.outside_window"]
    # 2024-02-09 01:30Z is Friday 09:30 in Shanghai but Thursday 17:30 in Los Angeles.
    la = given(issue(timezone="America/Los_Angeles"), fall_due(at="2024-02-07T09:00:00+00:00"))
    assert breached(when(la, record_contact().at("2024-02-09T01:30:00+00:00"))) == ["contact.outside_window"]
    assert breached(when(given_in("due"), record_contact().at("2024-02-09T01:30:00+00:00"))) == []


def test_a_contact_is_judged_at_the_moment_it_occurred_not_when_it_was_logged():
    r = given_in("due")
    # Called at 21:30 on Thursday, logged the next morning inside the window.
    late_call = record_contact(occurred_at=at("2024-02-08T13:30:00+00:00")).at("2024-02-09T01:30:00+00:00")
    events = when(r, late_call)
    assert breached(events) == ["contact.outside_window"]
    assert events[0].occurred_at == at("2024-02-08T13:30:00+00:00")
    assert events[0].timestamp == at("2024-02-09T01:30:00+00:00")
    assert r.contact_attempts[-1]["at"] == at("2024-02-08T13:30:00+00:00")
    # Called inside Thursday's window, logged on Friday night: nothing broken.
    logged_late = record_contact(channel="email", occurred_at=at(FOLLOW_UP_DAY)).at("2024-02-09T14:00:00+00:00")
    assert breached(when(r, logged_late)) == []


def test_a_contact_in_the_future_or_before_the_receivable_was_issued_is_refused_naming_occurred_at():
    r = given_in("due")
    ahead = record_contact(occurred_at=at("2024-02-08T02:00:01+00:00")).at("2024-02-08T02:00:00+00:00")
    assert then_refused(r, ahead, "contact.occurred_in_future", field="occurred_at")
    before = record_contact(occurred_at=at("2024-01-07T15:59:00+00:00")).at(FOLLOW_UP_DAY)  # 23:59 on 7 January
    then_refused(r, before, "contact.occurred_before_issue", field="occurred_at")
    naive = record_contact(occurred_at=datetime(2024, 2, 8, 2, 0)).at(FOLLOW_UP_DAY)
    then_refused(r, naive, "field.timezone", field="occurred_at")
    when(r, record_contact(occurred_at=at("2024-01-08T01:00:00+00:00")).at(FOLLOW_UP_DAY))  # 09:00 on the issue day


def test_contacts_on_one_receivable_are_capped_in_a_rolling_window_and_the_one_over_is_recorded():
    r = given_in("due")
    for day in ("2024-02-08", "2024-02-09", "2024-02-12"):
        assert breached(when(r, record_contact(channel="email").at(f"{day}T02:00:00+00:00"))) == []
    fourth = when(r, record_contact(channel="email").at("2024-02-14T02:00:00+00:00"))
    assert breached(fourth) == ["contact.frequency_receivable"]
    assert "3 contacts" in fourth[0].breaches_found[0]["detail"]
    # the 8th and 9th fall out of the 7 days; the 12th and the 14th (recorded, so counted) remain
    assert breached(when(r, record_contact(channel="email").at("2024-02-16T02:00:00+00:00"))) == []
    assert len(r.contact_attempts) == 5


def test_frequency_caps_count_contacts_by_when_they_occurred():
    r = given_in("due")
    for day in ("2024-02-08", "2024-02-09"):
        when(r, record_contact(channel="email").at(f"{day}T02:00:00+00:00"))
    # Logged on the 20th, it occurred on the 12th: with the 8th and 9th, three in seven days.
    when(r, record_contact(channel="email", occurred_at=at("2024-02-12T02:00:00+00:00")).at("2024-02-20T02:00:00+00:00"))
    late = record_contact(channel="email", occurred_at=at("2024-02-13T02:00:00+00:00")).at("2024-02-20T03:00:00+00:00")
    assert breached(when(r, late)) == ["contact.frequency_receivable"]


def test_contacts_with_one_customer_are_capped_across_its_receivables():
    others = tuple(
        ContactAttempt(f"other-{i}", at(f"2024-02-0{i}T02:00:00+00:00"), "email") for i in range(5, 9)
    )
    r = given_in("due", record_contact(channel="email").at("2024-02-08T03:00:00+00:00"))
    fifth = record_contact(channel="email").at("2024-02-09T02:00:00+00:00")
    fifth_ctx = dataclasses.replace(fifth.ctx, customer_contacts=others)
    assert breached(when(copy.deepcopy(r), fifth.in_context(fifth_ctx))) == ["contact.frequency_customer"]
    # The contact log lists this receivable's own contact among the customer's too: it is
    # counted once (1 own + 3 others = 4, under the cap of 5; counted twice it would be 5).
    logged_own = ContactAttempt(str(r.id), at("2024-02-08T03:00:00+00:00"), "email")
    assert breached(when(r, fifth.in_context(dataclasses.replace(fifth_ctx, customer_contacts=(*others[1:], logged_own))))) == []


def test_phone_calls_are_capped_per_local_day_across_receivables():
    r = given_in("due")
    call = record_contact(channel="phone").at("2024-02-08T03:00:00+00:00")
    earlier_call = (ContactAttempt("other", at("2024-02-08T01:30:00+00:00"), "phone"),)
    assert breached(when(copy.deepcopy(r), call.in_context(dataclasses.replace(call.ctx, customer_contacts=earlier_call)))) == [
        "contact.phone_per_day"
    ]
    # yesterday's call (local date) does not count; e-mail is not a call
    yesterday = (ContactAttempt("other", at("2024-02-07T15:59:00+00:00"), "phone"),)
    assert breached(when(r, call.in_context(dataclasses.replace(call.ctx, customer_contacts=yesterday)))) == []
    assert breached(when(r, record_contact(channel="email").at("2024-02-08T03:30:00+00:00"))) == []
    assert breached(when(r, record_contact(channel="phone").at("2024-02-08T03:40:00+00:00"))) == ["contact.phone_per_day"]


# ---- channels: refused for what the service is asked to do, judged for a contact ---


def test_a_channel_the_policy_does_not_allow_is_refused_for_reminders_and_follow_ups_and_judged_for_a_contact():
    strict = policy(channels_by_state={"issued": ["email"], "due": ["phone", "email"]})
    issued = given(issue())
    sms = send_reminder(channel="sms")
    then_refused(issued, sms.in_context(dataclasses.replace(sms.ctx, policy=strict)), "contact.channel_not_allowed")
    due = given_in("due")
    letter = start_follow_up(channel="letter")
    err = then_refused(due, letter.in_context(dataclasses.replace(letter.ctx, policy=strict)), "contact.channel_not_allowed")
    assert err.field == "channel" and "phone, email" in err.detail
    visit = record_contact(channel="visit").at(FOLLOW_UP_DAY)
    assert breached(when(copy.deepcopy(due), visit.in_context(dataclasses.replace(visit.ctx, policy=strict)))) == [
        "contact.channel_not_allowed"
    ]
    when(due, start_follow_up().in_context(dataclasses.replace(letter.ctx, policy=strict)))  # no channel named


# ---- preventive: legal referral and write-off ------------------------------------


def test_a_legal_referral_by_a_role_the_policy_does_not_name_is_refused():
    only_legal = policy(legal_referral_roles=["legal"])
    r = given_in("overdue_escalated")
    refer = refer_to_legal()
    then_refused(r, refer.in_context(dataclasses.replace(refer.ctx, policy=only_legal)), "legal_referral.role")
    when(r, refer.by(LEGAL).in_context(dataclasses.replace(refer.by(LEGAL).ctx, policy=only_legal)))
    assert r.state == "legal"


def test_a_required_approval_comes_from_another_supervisor_before_the_referral():
    approval = policy(legal_referral_requires_approval=True)

    def under(c):
        return c.in_context(dataclasses.replace(c.ctx, policy=approval))

    r = given_in("overdue_escalated")
    then_refused(r, under(refer_to_legal()), "legal_referral.approval")
    when(r, under(approve_legal_referral()))  # by SUPERVISOR (sue)
    then_refused(r, under(refer_to_legal()), "legal_referral.approval")  # sue approved; sue may not refer too
    then_refused(r, under(approve_legal_referral()), "legal_referral.already_approved")
    when(r, under(refer_to_legal().by(LEGAL)))
    assert r.state == "legal" and r.legal_referral_approval is None


def test_a_write_off_is_approved_by_another_person_of_a_role_the_policy_names():
    r = given_in("overdue_escalated", request_write_off(by=COLLECTOR))
    then_refused(r, approve_write_off(by=LEGAL), "write_off.approver_role")
    legal_approves = policy(write_off_approver_roles=["legal"])
    mine = approve_write_off(by=SUPERVISOR)
    then_refused(r, mine.in_context(dataclasses.replace(mine.ctx, policy=legal_approves)), "write_off.approver_role")
    r2 = given_in("overdue_escalated", request_write_off(by=SUPERVISOR))
    then_refused(r2, approve_write_off(by=SUPERVISOR), "write_off.four_eyes")
    when(r2, approve_write_off(by=OTHER_SUPERVISOR))
    assert r2.state == "written_off"


# ---- overrides -------------------------------------------------------------------


def _override(c, rule_id, *, by=SUPERVISOR, reason="customer asked"):
    return dataclasses.replace(c.ctx, actor=by, override_rule_id=rule_id, override_reason=reason)


def _self_approval_under(approvers):
    """A write-off requested by the supervisor who then approves it, under a policy naming `approvers`:
    four eyes broken, and the approver's role too unless the policy names supervisors."""
    r = given_in("overdue_escalated", request_write_off(by=SUPERVISOR))
    mine = approve_write_off(by=SUPERVISOR)
    return r, mine.in_context(dataclasses.replace(mine.ctx, policy=policy(write_off_approver_roles=approvers)))


def test_an_override_passes_only_the_rule_it_names():
    r, both = _self_approval_under(["legal"])
    then_refused(r, both.in_context(_override(both, "write_off.four_eyes")), "write_off.approver_role")
    then_refused(r, both.in_context(_override(both, "write_off.approver_role")), "write_off.four_eyes")


def test_an_override_of_a_rule_the_command_does_not_break_is_refused():
    r = given_in("overdue_escalated")
    fine = refer_to_legal()
    then_refused(r, fine.in_context(_override(fine, "legal_referral.role")), "override.not_needed", field="override.rule_id")
    then_refused(r, fine.in_context(_override(fine, "no.such_rule")), "override.unknown_rule", field="override.rule_id")
    then_refused(r, fine.in_context(_override(fine, "reminder.not_sent_in_time")), "override.unknown_rule")
    # the contact rules are judged when a contact is recorded, never refused: nothing to override
    then_refused(r, fine.in_context(_override(fine, "contact.outside_window")), "override.unknown_rule")
    then_refused(r, fine.in_context(_override(fine, "legal_referral.role", reason=" ")), "field.required")
    with pytest.raises(PermissionDeniedError):
        fine.in_context(_override(fine, "legal_referral.role", by=COLLECTOR)).run(r)
    assert r.version == 3


def test_an_override_on_a_contact_is_refused_as_not_needed_and_points_to_a_contact_exception():
    r = given_in("due")
    night = record_contact().at("2024-02-08T16:00:00+00:00")
    err = then_refused(r, night.in_context(_override(night, "contact.outside_window")), "override.not_needed", field="override.rule_id")
    assert "grant-contact-exception" in err.detail
    then_refused(r, night.in_context(_override(night, "contact.frequency_receivable")), "override.not_needed")


def test_the_catalogue_has_five_preventive_rules_and_four_judged_when_a_contact_is_recorded():
    assert PREVENTIVE == {r.id for r in RULES.values() if r.kind == "preventive"}
    assert PREVENTIVE == {
        "contact.channel_not_allowed",
        "legal_referral.role",
        "legal_referral.approval",
        "write_off.approver_role",
        "write_off.four_eyes",
    }
    recorded = {r.id for r in RULES.values() if r.kind == "recorded"}
    assert recorded == {"contact.outside_window", "contact.frequency_receivable", "contact.frequency_customer", "contact.phone_per_day"}
    assert all(RULES[rule].judged_on == ("record_contact",) and not RULES[rule].commands for rule in recorded)
    assert RULES["contact.channel_not_allowed"].commands == ("send_reminder", "start_follow_up", "remind_installment")
    assert RULES["contact.channel_not_allowed"].judged_on == ("record_contact",)


# ---- detective -------------------------------------------------------------------


def test_a_pre_due_reminder_not_sent_by_the_reminder_day_is_one_finding():
    missed = facts_of(issue(), fall_due())
    assert rules_found(missed, "2024-02-07T02:00:00+00:00") == ["reminder.not_sent_in_time"]
    finding = judge(missed, {POLICY.version: POLICY}, RID)[0]
    assert finding.occurred_at == at("2024-01-31T16:00:00+00:00")  # the end of 31 January in Shanghai
    assert finding.collector == "collector:ann" and finding.policy_version == POLICY.version
    late = facts_of(issue(), send_reminder(), fall_due())  # sent on 1 February
    assert rules_found(late, "2024-02-07T02:00:00+00:00") == ["reminder.not_sent_in_time"]
    kept = facts_of(issue(), send_reminder(at=IN_TIME_REMINDER), fall_due())
    assert rules_found(kept, "2024-02-07T02:00:00+00:00") == []


def test_a_missed_deadline_is_a_finding_only_once_it_has_passed():
    facts = facts_of(issue())
    assert rules_found(facts, "2024-01-31T15:59:00+00:00") == []
    assert rules_found(facts, "2024-01-31T16:00:00+00:00") == ["reminder.not_sent_in_time"]


def test_no_reminder_is_owed_when_the_invoice_is_issued_too_close_to_its_due_date():
    facts = facts_of(issue(issued_on=date(2024, 2, 7), at="2024-02-07T01:00:00+00:00"))
    assert "reminder.not_sent_in_time" not in rules_found(facts, "2024-02-07T02:00:00+00:00")
    # issued after the reminder day but before due: owed on the issue day itself
    late_issue = facts_of(issue(issued_on=date(2024, 2, 2), at="2024-02-02T02:00:00+00:00"))
    assert rules_found(late_issue, "2024-02-03T00:00:00+00:00") == ["reminder.not_sent_in_time"]


def test_follow_up_not_started_within_the_policy_days_after_due_is_one_finding():
    base = (issue(), send_reminder(at=IN_TIME_REMINDER), fall_due())
    late = facts_of(*base, start_follow_up(at="2024-02-09T02:00:00+00:00"))
    assert rules_found(late, "2024-02-20T00:00:00+00:00") == ["follow_up.not_started_in_time"]
    kept = facts_of(*base, start_follow_up(at=FOLLOW_UP_DAY))
    assert rules_found(kept, "2024-02-20T00:00:00+00:00") == []
    by_contact = facts_of(*base, record_contact(next_step="call again Monday").at(FOLLOW_UP_DAY))
    assert rules_found(by_contact, "2024-02-20T00:00:00+00:00") == []


def test_a_broken_promise_not_followed_up_within_a_business_day_is_one_finding():
    # Broken on Sunday 10 March: the next business day is Monday 11 March.
    base = (
        issue(),
        send_reminder(at=IN_TIME_REMINDER),
        fall_due(),
        promise_to_pay(at=FOLLOW_UP_DAY),
        break_promise(),
    )
    late = facts_of(*base, record_contact(next_step="visit").at("2024-03-12T02:00:00+00:00"))
    assert rules_found(late, "2024-03-13T00:00:00+00:00") == ["promise.broken_not_followed_up"]
    assert judge(late, {POLICY.version: POLICY}, RID)[0].occurred_at == at("2024-03-11T16:00:00+00:00")
    kept = facts_of(*base, record_contact(next_step="visit").at("2024-03-11T02:00:00+00:00"))
    assert rules_found(kept, "2024-03-13T00:00:00+00:00") == []


def test_an_escalation_without_any_recorded_contact_is_one_finding():
    base = (issue(), send_reminder(at=IN_TIME_REMINDER), fall_due(), start_follow_up(at=FOLLOW_UP_DAY))
    bare = facts_of(*base, escalate())
    assert rules_found(bare, "2024-02-21T00:00:00+00:00") == ["escalation.without_follow_up_contact"]
    worked = facts_of(*base, record_contact(next_step="escalate").at("2024-02-09T02:00:00+00:00"), escalate())
    assert rules_found(worked, "2024-02-21T00:00:00+00:00") == []


def test_a_legal_referral_without_prior_escalation_is_one_finding():
    # The lifecycle allows a referral only from overdue_escalated, so this history is
    # made by hand: the rule still judges any history it is given.
    proper = facts_of(
        issue(),
        send_reminder(at=IN_TIME_REMINDER),
        fall_due(),
        record_contact(next_step="escalate").at(FOLLOW_UP_DAY),
        escalate(),
        refer_to_legal(at="2024-02-21T02:00:00+00:00"),
    )
    assert rules_found(proper, "2024-02-22T00:00:00+00:00") == []
    skipped = [f for f in proper if f.type != "Escalated"]
    assert rules_found(skipped, "2024-02-22T00:00:00+00:00") == ["legal_referral.without_escalation"]


def test_a_contact_without_a_next_step_is_one_finding():
    base = (issue(), send_reminder(at=IN_TIME_REMINDER), fall_due())
    bare = facts_of(*base, record_contact().at(FOLLOW_UP_DAY))
    assert rules_found(bare, "2024-02-09T00:00:00+00:00") == ["contact.without_outcome_or_next_step"]
    complete = facts_of(*base, record_contact(next_step="call back Monday").at(FOLLOW_UP_DAY))
    assert rules_found(complete, "2024-02-09T00:00:00+00:00") == []
    blank = facts_of(*base, record_contact(next_step="  ").at(FOLLOW_UP_DAY))
    assert rules_found(blank, "2024-02-09T00:00:00+00:00") == ["contact.without_outcome_or_next_step"]


def test_a_limitation_period_in_its_warning_lead_with_no_action_is_one_finding():
    # Due 2024-02-07: lapses 2027-02-08, the 90-day lead starts 2026-11-10, action is expected by 2026-12-10.
    base = (issue(), send_reminder(at=IN_TIME_REMINDER), fall_due(), start_follow_up(at=FOLLOW_UP_DAY))
    quiet = facts_of(*base)
    assert rules_found(quiet, "2026-12-09T00:00:00+00:00") == []
    assert rules_found(quiet, "2027-01-01T00:00:00+00:00") == ["limitation.no_action"]
    assert judge(quiet, {POLICY.version: POLICY}, RID)[0].occurred_at == at("2026-12-09T16:00:00+00:00")
    acted = facts_of(*base, record_contact(outcome="no_answer", next_step="letter").at("2026-11-20T02:00:00+00:00"))
    assert rules_found(acted, "2027-01-01T00:00:00+00:00") == []
    # an acknowledgement long before the lead restarts the period: nothing is owed in 2026 then
    restarted = facts_of(*base, record_contact(outcome="acknowledged", next_step="wait").at("2025-06-02T02:00:00+00:00"))
    assert rules_found(restarted, "2027-01-01T00:00:00+00:00") == []


def test_every_override_is_one_finding_naming_the_rule_and_the_reason():
    worked = record_contact(next_step="escalate").at(FOLLOW_UP_DAY)
    mine = approve_write_off(by=SUPERVISOR)
    facts = facts_of(
        issue(),
        send_reminder(at=IN_TIME_REMINDER),
        fall_due(),
        worked,
        escalate(),
        request_write_off(by=SUPERVISOR),
        mine.in_context(_override(mine, "write_off.four_eyes")),
    )
    found = findings_as_of(facts, {POLICY.version: POLICY}, RID, at("2024-02-21T00:00:00+00:00"))
    assert [(f.rule_id, f.overridden_rule_id, f.actor, f.event_version) for f in found] == [
        ("override.used", "write_off.four_eyes", SUPERVISOR.id, 7)
    ]
    assert "customer asked" in found[0].detail


def test_each_breach_a_recorded_contact_carries_is_a_finding_dated_when_it_occurred():
    late_call = record_contact(next_step="call again", occurred_at=at("2024-02-08T13:30:00+00:00")).at("2024-02-09T01:30:00+00:00")
    facts = facts_of(issue(), send_reminder(at=IN_TIME_REMINDER), fall_due(), late_call)
    [found] = findings_as_of(facts, {POLICY.version: POLICY}, RID, at("2024-02-20T00:00:00+00:00"))
    assert (found.rule_id, found.occurred_at, found.actor, found.event_version, found.collector) == (
        "contact.outside_window", at("2024-02-08T13:30:00+00:00"), COLLECTOR.id, 4, "collector:ann"
    )
    assert "21:30" in found.detail and found.overridden_rule_id is None
    # the contact also met the follow-up owed by the end of the 8th: it happened on the 8th
    assert rules_found(facts, "2024-02-20T00:00:00+00:00") == ["contact.outside_window"]


def test_a_breach_covered_by_a_contact_exception_is_an_override_finding_not_a_breach():
    grant = grant_contact_exception(channel="phone", valid_until="2024-02-09T00:00:00+00:00", at="2024-02-08T10:00:00+00:00")
    night = record_contact(next_step="call again").at("2024-02-08T13:30:00+00:00")  # 21:30 in Shanghai
    facts = facts_of(issue(), send_reminder(at=IN_TIME_REMINDER), fall_due(), grant, night)
    [found] = findings_as_of(facts, {POLICY.version: POLICY}, RID, at("2024-02-20T00:00:00+00:00"))
    assert (found.rule_id, found.overridden_rule_id, found.actor, found.event_version) == (
        "override.used", "contact.outside_window", COLLECTOR.id, 5
    )
    assert SUPERVISOR.id in found.detail and "customer asked for an evening call" in found.detail


def test_judging_the_facts_the_read_model_stores_gives_the_same_findings_as_the_events():
    """What a rebuild of the compliance read model judges (facts encoded to JSON and back)
    is what the events give: recorded breaches, exceptions and occurred_at survive the trip."""
    from projections.compliance import _decode, _encode

    grant = grant_contact_exception(channel="phone", valid_until="2024-02-09T00:00:00+00:00", at="2024-02-08T10:00:00+00:00")
    facts = facts_of(
        issue(),
        fall_due(),
        record_contact(channel="visit", occurred_at=at("2024-02-07T13:00:00+00:00")).at(FOLLOW_UP_DAY),
        grant,
        record_contact(next_step="call again").at("2024-02-08T13:30:00+00:00"),
        record_contact(channel="email", outcome="acknowledged").at("2024-02-08T14:00:00+00:00"),
    )
    stored = _decode(_encode(facts))
    assert stored == facts
    policies = {POLICY.version: POLICY}
    assert judge(stored, policies, RID) == judge(facts, policies, RID)
    assert {f.rule_id for f in judge(facts, policies, RID)} >= {"contact.outside_window", "override.used"}


def test_each_event_is_judged_by_the_policy_version_it_recorded():
    # The same history, except for the policy version recorded when it fell due:
    # under v1 follow-up is owed 1 day after due, under v2 5 days after.
    v1 = policy(version="v1")
    v2 = policy(version="v2", follow_up_after_days=5)
    policies = {"v1": v1, "v2": v2, POLICY.version: POLICY}

    def history(version):
        due = fall_due()
        due = due.in_context(dataclasses.replace(due.ctx, policy=policies[version]))
        return facts_of(
            issue(), send_reminder(at=IN_TIME_REMINDER), due, start_follow_up(at="2024-02-12T02:00:00+00:00")
        )

    assert rules_found(history("v1"), "2024-02-20T00:00:00+00:00", policies) == ["follow_up.not_started_in_time"]
    assert rules_found(history("v2"), "2024-02-20T00:00:00+00:00", policies) == []
    finding = judge(history("v1"), policies, RID)[0]
    assert finding.policy_version == "v1"


def test_the_collector_of_a_finding_is_the_one_assigned_when_it_occurred():
    facts = facts_of(issue(), assign_collector("collector:bob", at="2024-01-20T02:00:00+00:00"), fall_due())
    finding = findings_as_of(facts, {POLICY.version: POLICY}, RID, at("2024-02-07T02:00:00+00:00"))[0]
    assert finding.collector == "collector:bob"


def test_a_history_whose_policy_version_is_unknown_is_not_judged_by_a_guess():
    facts = [dataclasses.replace(f, policy_version="missing") for f in facts_of(issue(), fall_due())]
    assert judge(facts, {POLICY.version: POLICY}, RID) == []
    assert judge([], {}, RID) == []
    assert judge([Fact("FellDue", 2, at(FOLLOW_UP_DAY), POLICY.version, "s", "system", "due")], {}, RID) == []


def test_the_frequency_caps_count_only_contacts_in_the_period():
    capped = contact_policy(max_attempts_per_receivable=1, attempts_period_days=1)
    r = given_in("due", record_contact(channel="email").at(FOLLOW_UP_DAY))
    next_day = record_contact(channel="email").at("2024-02-09T02:00:00+00:00")
    assert breached(when(r, next_day.in_context(dataclasses.replace(next_day.ctx, policy=capped)))) == []
    same_day = record_contact(channel="email").at("2024-02-09T03:00:00+00:00")
    assert breached(when(r, same_day.in_context(dataclasses.replace(same_day.ctx, policy=capped)))) == [
        "contact.frequency_receivable"
    ]


def test_the_checked_in_rules_docs_are_generated_from_the_rules():
    from pathlib import Path

    from collections_es.domain.compliance import render_docs

    docs = Path(__file__).parents[2] / "docs" / "compliance-rules.md"
    assert docs.read_text(encoding="utf-8") == render_docs(), "run `collections-es docs` and commit the result"
    assert all(f"`{rule_id}`" in render_docs() for rule_id in RULES)


def test_a_policy_without_any_business_day_is_refused_so_no_rule_or_timer_can_run_out_of_days():
    # Found by schemathesis: PUT /policy with no windows made the compliance read model fail.
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="at least one weekday needs a contact window"):
        contact_policy(windows={}).model_validate(contact_policy(windows={}).model_dump())
    one_day = {"mon": [{"start": "09:00", "end": "12:00"}]}
    mondays = [date(2027, 1, 4) + (date(2027, 1, 11) - date(2027, 1, 4)) * i for i in range(52)]
    document = {**POLICY.model_dump(mode="json"), "contact": {**POLICY.contact.model_dump(mode="json"), "windows": one_day}}
    with pytest.raises(pydantic.ValidationError, match="without a business day"):
        type(POLICY).model_validate({**document, "holidays": [d.isoformat() for d in mondays]})
    type(POLICY).model_validate({**document, "holidays": [d.isoformat() for d in mondays[:51]]})
