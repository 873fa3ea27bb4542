"""Before a contact: the contact check (what a contact by a channel at an instant
would break, and the first instant at or after it that breaks nothing), and the
contact exception a supervisor grants in advance.

The standard story (helpers): due Wednesday 2024-02-07, customer in Shanghai
(UTC+8), contact windows weekday mornings 09:00-12:00 (01:00Z-04:00Z); at most
3 contacts on a receivable and 5 with the customer in 7 days, 1 call a day.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from collections_es.domain.compliance import ContactAttempt
from collections_es.domain.errors import CommandNotAllowedError

from .helpers import (
    POLICY,
    SUPERVISOR,
    given_in,
    grant_contact_exception,
    record_contact,
    then_refused,
    when,
)


def at(when: str) -> datetime:
    return datetime.fromisoformat(when)


def check(r, when: str, channel: str = "phone", *, others=(), policy=POLICY):
    return r.contact_check(policy, channel=channel, at=at(when), others=others)


def rule_ids(breaches):
    return [b.rule_id for b in breaches]


# ---- the check and next_allowed_at, rule by rule ---------------------------------


def test_inside_the_window_with_nothing_counted_a_contact_is_allowed_at_once():
    result = check(given_in("due"), "2024-02-08T02:00:00+00:00")
    assert result.allowed and result.breaches == [] and result.overrides == []
    assert result.next_allowed_at == at("2024-02-08T02:00:00+00:00")


def test_outside_the_window_the_next_allowed_instant_is_the_next_window_opening():
    r = given_in("due")
    evening = check(r, "2024-02-08T13:30:00+00:00")  # Thursday 21:30 in Shanghai
    assert not evening.allowed and rule_ids(evening.breaches) == ["contact.outside_window"]
    assert evening.next_allowed_at == at("2024-02-09T01:00:00+00:00")  # Friday 09:00
    friday_evening = check(r, "2024-02-09T13:30:00+00:00")
    assert friday_evening.next_allowed_at == at("2024-02-12T01:00:00+00:00")  # Monday 09:00


def test_over_the_phone_cap_the_next_allowed_instant_is_the_next_days_window_opening():
    r = given_in("due", record_contact(channel="phone").at("2024-02-08T01:30:00+00:00"))
    result = check(r, "2024-02-08T02:00:00+00:00")
    assert rule_ids(result.breaches) == ["contact.phone_per_day"]
    assert result.next_allowed_at == at("2024-02-09T01:00:00+00:00")
    assert check(r, "2024-02-08T02:00:00+00:00", "email").allowed


def test_over_the_receivable_cap_the_next_allowed_instant_is_when_the_oldest_counted_contact_leaves_the_period():
    r = given_in(
        "due",
        *(record_contact(channel="email").at(f"2024-02-{d}T02:30:00+00:00") for d in ("08", "09", "12")),
    )
    result = check(r, "2024-02-13T02:00:00+00:00", "email")
    assert rule_ids(result.breaches) == ["contact.frequency_receivable"]
    # the contact of the 8th at 10:30 leaves the 7 days on the 15th at 10:30, inside that morning's window
    assert result.next_allowed_at == at("2024-02-15T02:30:00+00:00")


def test_when_the_oldest_contact_leaves_outside_a_window_the_next_allowed_instant_is_the_following_opening():
    r = given_in(
        "due",
        record_contact(channel="email", occurred_at=at("2024-02-08T13:00:00+00:00")).at("2024-02-09T01:00:00+00:00"),
        record_contact(channel="email").at("2024-02-09T02:00:00+00:00"),
        record_contact(channel="email").at("2024-02-12T02:00:00+00:00"),
    )
    result = check(r, "2024-02-13T02:00:00+00:00", "email")
    # the first leaves on the 15th at 21:00 local; the next opening is Friday the 16th, 09:00
    assert result.next_allowed_at == at("2024-02-16T01:00:00+00:00")


def test_over_the_customer_cap_the_next_allowed_instant_counts_the_customers_other_receivables():
    others = tuple(ContactAttempt(f"other-{i}", at(f"2024-02-0{i}T02:00:00+00:00"), "email") for i in range(5, 10))
    result = check(given_in("due"), "2024-02-09T03:00:00+00:00", "email", others=others)
    assert rule_ids(result.breaches) == ["contact.frequency_customer"]
    assert result.next_allowed_at == at("2024-02-12T02:00:00+00:00")  # the 5th leaves on Monday the 12th, 10:00


def test_a_channel_not_allowed_in_the_state_has_no_next_allowed_instant():
    strict = POLICY.model_copy(update={"channels_by_state": {"due": ["email"]}})
    result = check(given_in("due"), "2024-02-08T13:30:00+00:00", "visit", policy=strict)
    assert rule_ids(result.breaches) == ["contact.outside_window", "contact.channel_not_allowed"]
    assert not result.allowed and result.next_allowed_at is None


def test_several_rules_at_once_wait_for_all_of_them():
    r = given_in(
        "due",
        record_contact(channel="phone").at("2024-02-08T01:00:00+00:00"),
        record_contact(channel="email").at("2024-02-08T01:10:00+00:00"),
        record_contact(channel="email").at("2024-02-08T01:20:00+00:00"),
    )
    result = check(r, "2024-02-08T13:00:00+00:00")
    assert rule_ids(result.breaches) == ["contact.outside_window", "contact.frequency_receivable", "contact.phone_per_day"]
    assert result.next_allowed_at == at("2024-02-15T01:00:00+00:00")  # a week after the first, which is a Thursday 09:00


def test_a_closed_receivable_cannot_be_contacted_at_all():
    with pytest.raises(CommandNotAllowedError):
        check(given_in("settled"), "2024-02-20T02:00:00+00:00")


# ---- contact exceptions ------------------------------------------------------------


def test_a_supervisor_grants_a_contact_exception_in_any_open_state():
    for state in ("issued", "reminded", "due", "following_up", "promised", "overdue_escalated", "legal"):
        r = given_in(state)
        [event] = when(r, grant_contact_exception())
        assert type(event).__name__ == "ContactExceptionGranted" and event.state_after == state
        assert r.contact_exceptions[-1]["channel"] == "phone"
        assert r.contact_exceptions[-1]["granted_by"] == SUPERVISOR.id


def test_a_contact_exception_must_end_in_the_future_within_31_days_with_a_reason_and_a_known_channel():
    r = given_in("due")
    then_refused(r, grant_contact_exception(valid_until="2024-02-20T02:00:00+00:00"), "contact_exception.valid_until", field="valid_until")
    then_refused(r, grant_contact_exception(valid_until="2024-03-22T02:00:01+00:00"), "contact_exception.valid_until", field="valid_until")
    then_refused(r, grant_contact_exception(reason=" "), "field.required", field="reason")
    then_refused(r, grant_contact_exception(channel="pigeon"), "field.choice", field="channel")
    naive = grant_contact_exception().with_(valid_until=datetime(2024, 2, 21, 2, 0))
    then_refused(r, naive, "field.timezone", field="valid_until")
    when(r, grant_contact_exception(valid_until="2024-03-22T02:00:00+00:00"))


def test_a_closed_receivable_refuses_a_contact_exception():
    with pytest.raises(CommandNotAllowedError):
        grant_contact_exception().run(given_in("settled"))


def test_a_contact_covered_by_an_exception_has_its_window_and_cap_breaches_recorded_as_excepted():
    grant = grant_contact_exception(valid_until="2024-02-09T00:00:00+00:00", at="2024-02-08T10:00:00+00:00")
    r = given_in("due", record_contact(channel="phone").at("2024-02-08T01:30:00+00:00"), grant)
    [event] = when(r, record_contact(channel="phone").at("2024-02-08T13:30:00+00:00"))
    assert [(b["rule_id"], b["excepted"]) for b in event.breaches_found] == [
        ("contact.outside_window", True),
        ("contact.phone_per_day", True),
    ]
    assert event.exception["granted_by"] == SUPERVISOR.id and event.exception["reason"] == "customer asked for an evening call"
    assert [(f.rule_id, f.overridden_rule_id) for f in r.last_contact_findings()] == [
        ("override.used", "contact.outside_window"),
        ("override.used", "contact.phone_per_day"),
    ]


def test_an_exception_covers_only_its_channel_its_period_and_never_a_channel_the_state_does_not_allow():
    strict = POLICY.model_copy(update={"channels_by_state": {"due": ["phone", "email"], "following_up": ["phone", "email"]}})
    grant = grant_contact_exception(valid_until="2024-02-09T00:00:00+00:00", at="2024-02-08T10:00:00+00:00")
    r = given_in("due", grant)
    email = when(r, record_contact(channel="email").at("2024-02-08T13:30:00+00:00"))[0]
    assert [(b["rule_id"], b["excepted"]) for b in email.breaches_found] == [("contact.outside_window", False)]
    assert email.exception is None
    after = when(r, record_contact(channel="phone").at("2024-02-09T13:30:00+00:00"))[0]  # the exception has ended
    assert [(b["rule_id"], b["excepted"]) for b in after.breaches_found] == [("contact.outside_window", False)]
    before = record_contact(channel="phone", occurred_at=at("2024-02-08T09:00:00+00:00")).at("2024-02-09T14:00:00+00:00")
    assert not when(r, before)[0].breaches_found[0]["excepted"], "an exception is granted in advance, not after the fact"
    grant_visit = grant_contact_exception(channel="visit", at="2024-02-08T10:00:00+00:00")
    r2 = given_in("due", grant_visit)
    visit = record_contact(channel="visit").at("2024-02-08T13:30:00+00:00")
    event = when(r2, visit.in_context(dataclasses.replace(visit.ctx, policy=strict)))[0]
    assert [(b["rule_id"], b["excepted"]) for b in event.breaches_found] == [
        ("contact.outside_window", True),
        ("contact.channel_not_allowed", False),
    ]


def test_the_check_reports_what_an_exception_covers_as_overrides_and_allows_the_contact():
    grant = grant_contact_exception(valid_until="2024-02-09T00:00:00+00:00", at="2024-02-08T10:00:00+00:00")
    r = given_in("due", grant)
    result = check(r, "2024-02-08T13:30:00+00:00")
    assert result.allowed and result.breaches == []
    assert [(f.rule_id, f.overridden_rule_id) for f in result.overrides] == [("override.used", "contact.outside_window")]
    assert result.next_allowed_at == at("2024-02-08T13:30:00+00:00")
    # once it has ended, the window applies again
    ended = check(r, "2024-02-09T13:30:00+00:00")
    assert not ended.allowed and ended.next_allowed_at == at("2024-02-12T01:00:00+00:00")
