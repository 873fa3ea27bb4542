"""Contacts are facts (issue 11): a contact that took place is always recorded, at
the moment it occurred, and each window, cap or channel rule it broke is a finding
at once, in the response and in GET /compliance/findings. Prevention comes before
the contact: GET /receivables/{id}/contact-check, and a supervisor's contact
exception granted in advance (reported as an override, not a breach).

The customer is in Shanghai (UTC+8); the invoice is due Wednesday 2026-04-01; the
default policy's windows are weekdays 09:00-12:00 and 14:00-18:00, one call a day,
three contacts on a receivable in seven days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .test_compliance import DUE_MORNING, at, contact, due, findings, ok, send, setup_customer

NIGHT = datetime(2026, 4, 1, 13, 30, tzinfo=UTC)  # Wednesday 21:30 in Shanghai
NEXT_MORNING = datetime(2026, 4, 2, 1, 0, tzinfo=UTC)  # Thursday 09:00, the next window opening


def check(api, rid: str, channel: str, when: datetime | None = None, who: str = "collector"):
    params = {"channel": channel} | ({"at": when.isoformat()} if when else {})
    response = api.as_(who).get(f"/receivables/{rid}/contact-check", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_call_logged_the_next_morning_at_its_real_time_of_2130_is_recorded_and_is_a_finding_for_its_collector(api):
    setup_customer(api)
    rid = due(api, "INV-NIGHT")
    at(api, NEXT_MORNING + timedelta(minutes=30))  # logged on Thursday at 09:30
    response = send(api, "collector", rid, "record-contact", contact("phone", occurred_at="2026-04-01T13:30:00Z"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [f["rule_id"] for f in body["findings"]] == ["contact.outside_window"]
    assert "21:30" in body["findings"][0]["detail"] and body["state"] == "following_up"
    [found] = findings(api, receivable_id=rid)
    assert (found["rule_id"], found["collector"], found["actor"], found["event_version"]) == (
        "contact.outside_window", "collector-1", "collector-1", body["version"]
    )
    assert instant(found["occurred_at"]) == NIGHT  # dated when the call took place
    [logged] = api.as_("auditor").get("/customers/C-SH-1/contacts-log").json()["items"]
    assert instant(logged["occurred_at"]) == NIGHT  # the contact log (and the caps) go by when it took place
    history = api.as_("auditor").get(f"/receivables/{rid}/history").json()
    assert history[-1]["data"]["occurred_at"].startswith("2026-04-01T13:30:00")
    assert history[-1]["data"]["breaches_found"][0]["rule_id"] == "contact.outside_window"
    # a collector sees it among their own findings
    assert [f["rule_id"] for f in findings(api, who="collector")] == ["contact.outside_window"]


def test_a_contact_over_the_cap_is_recorded_and_listed_with_its_collector(api):
    setup_customer(api)
    rid = due(api, "INV-CAP")
    for minutes in (0, 10, 20):
        at(api, DUE_MORNING + timedelta(minutes=minutes))
        ok(api, "collector", rid, "record-contact", contact())
    at(api, DUE_MORNING + timedelta(minutes=30))
    result = ok(api, "collector", rid, "record-contact", contact())
    assert [f["rule_id"] for f in result["findings"]] == ["contact.frequency_receivable"]
    listed = findings(api, rule_id="contact.frequency_receivable")
    assert [(f["receivable_id"], f["collector"], f["event_version"]) for f in listed] == [(rid, "collector-1", result["version"])]


def test_a_contact_in_the_future_or_before_the_issue_is_422_naming_occurred_at_and_nothing_is_recorded(api):
    setup_customer(api)
    rid = due(api, "INV-FUT")
    for occurred_at, rule_id in (
        ((DUE_MORNING + timedelta(seconds=1)).isoformat(), "contact.occurred_in_future"),
        ("2026-03-01T15:59:00Z", "contact.occurred_before_issue"),  # 23:59 the day before the issue date
    ):
        response = send(api, "collector", rid, "record-contact", contact(occurred_at=occurred_at))
        assert response.status_code == 422, response.text
        assert (response.json()["rule_id"], response.json()["field"]) == (rule_id, "occurred_at")
    naive = send(api, "collector", rid, "record-contact", contact(occurred_at="2026-04-01T09:00:00"))
    assert naive.status_code == 422 and naive.json()["field"] == "occurred_at"
    assert api.as_("auditor").get(f"/receivables/{rid}").json()["version"] == 3


def test_the_contact_check_outside_the_window_says_no_and_when_then_yes_at_that_moment(api):
    setup_customer(api)
    rid = due(api, "INV-CHK")
    at(api, NIGHT)
    night = check(api, rid, "phone")
    assert night["allowed"] is False and night["channel"] == "phone"
    assert instant(night["at"]) == NIGHT
    assert [b["rule_id"] for b in night["breaches"]] == ["contact.outside_window"] and night["overrides"] == []
    assert instant(night["next_allowed_at"]) == NEXT_MORNING
    morning = check(api, rid, "phone", NEXT_MORNING)
    assert morning["allowed"] is True and morning["breaches"] == []
    assert instant(morning["next_allowed_at"]) == NEXT_MORNING
    # nothing was recorded by asking
    assert api.as_("auditor").get(f"/receivables/{rid}").json()["version"] == 3


def test_the_contact_check_over_the_phone_cap_points_to_the_next_days_window(api):
    setup_customer(api)
    first, second = due(api, "INV-PH1"), due(api, "INV-PH2")
    assert check(api, second, "phone")["allowed"] is True
    ok(api, "collector", first, "record-contact", contact("phone"))
    result = check(api, second, "phone", DUE_MORNING + timedelta(hours=5))  # 15:00, inside the afternoon window
    assert result["allowed"] is False and [b["rule_id"] for b in result["breaches"]] == ["contact.phone_per_day"]
    assert instant(result["next_allowed_at"]) == NEXT_MORNING
    assert check(api, second, "email", DUE_MORNING + timedelta(hours=5))["allowed"] is True


def test_the_contact_check_for_a_channel_the_state_does_not_allow_has_no_next_allowed_instant(api):
    setup_customer(api)
    rid = due(api, "INV-VIS")
    result = check(api, rid, "visit")
    assert result["allowed"] is False and result["next_allowed_at"] is None
    assert [b["rule_id"] for b in result["breaches"]] == ["contact.channel_not_allowed"]


def test_a_granted_exception_turns_the_breach_into_an_override_in_the_check_the_response_and_the_findings(api):
    setup_customer(api)
    rid = due(api, "INV-EXC")
    granted = ok(api, "supervisor", rid, "grant-contact-exception",
                 {"channel": "phone", "reason": "the customer works nights", "valid_until": "2026-04-02T00:00:00Z"})
    assert granted["state"] == "due" and granted["version"] == 4
    history = api.as_("auditor").get(f"/receivables/{rid}/history").json()
    assert history[-1]["type"] == "ContactExceptionGranted" and history[-1]["reason"] == "the customer works nights"
    at(api, NIGHT)
    before = check(api, rid, "phone")
    assert before["allowed"] is True and before["breaches"] == []
    assert [(o["rule_id"], o["overridden_rule_id"]) for o in before["overrides"]] == [("override.used", "contact.outside_window")]
    assert instant(before["next_allowed_at"]) == NIGHT
    assert check(api, rid, "email")["allowed"] is False  # another channel: not covered

    result = ok(api, "collector", rid, "record-contact", contact("phone"))
    assert [(f["rule_id"], f["overridden_rule_id"]) for f in result["findings"]] == [("override.used", "contact.outside_window")]
    assert findings(api, rule_id="contact.outside_window") == []
    [used] = findings(api, rule_id="override.used")
    assert (used["overridden_rule_id"], used["actor"], used["collector"], used["event_version"]) == (
        "contact.outside_window", "collector-1", "collector-1", result["version"]
    )
    assert "supervisor-1" in used["detail"] and "the customer works nights" in used["detail"]
    # after the exception ends, the window applies again
    at(api, NIGHT + timedelta(days=1))
    after = ok(api, "collector", rid, "record-contact", contact("email"))
    assert [f["rule_id"] for f in after["findings"]] == ["contact.outside_window"]


def test_only_a_supervisor_grants_a_contact_exception_in_the_future_and_at_most_31_days_ahead(api):
    setup_customer(api)
    rid = due(api, "INV-GR")
    body = {"channel": "phone", "reason": "customer asked", "valid_until": "2026-04-02T00:00:00Z"}
    for who in ("collector", "sales", "legal", "service"):
        response = send(api, who, rid, "grant-contact-exception", body)
        assert response.status_code == 403 and response.json()["type"] == "/problems/forbidden", response.text
    for valid_until in ("2026-03-31T00:00:00Z", "2026-05-03T00:00:00Z"):
        response = send(api, "supervisor", rid, "grant-contact-exception", {**body, "valid_until": valid_until})
        assert response.status_code == 422 and response.json()["field"] == "valid_until", response.text
    missing = send(api, "supervisor", rid, "grant-contact-exception", {"channel": "phone", "reason": "r"})
    assert missing.status_code == 422 and missing.json()["field"] == "valid_until"
    assert api.as_("auditor").get(f"/receivables/{rid}").json()["version"] == 3


def test_the_contact_check_is_for_those_who_may_record_a_contact(api):
    setup_customer(api)
    rid = due(api, "INV-ROLE")
    for who in ("collector", "supervisor", "sales", "customer_service", "legal"):
        assert api.as_(who).get(f"/receivables/{rid}/contact-check", params={"channel": "email"}).status_code == 200
    for who in ("auditor", "service"):
        assert api.as_(who).get(f"/receivables/{rid}/contact-check", params={"channel": "email"}).status_code == 403
    bad = api.as_("collector").get(f"/receivables/{rid}/contact-check", params={"channel": "email", "at": "2026-04-01T09:00:00"})
    assert bad.status_code == 422 and "at" in bad.text
    far = api.as_("collector").get(f"/receivables/{rid}/contact-check", params={"channel": "email", "at": "2030-01-01T00:00:00Z"})
    assert far.status_code == 422 and far.json()["field"] == "at"
    assert api.as_("collector").get("/receivables/INV-NOBODY/contact-check", params={"channel": "email"}).status_code == 404


def test_rebuilding_the_compliance_read_model_gives_the_same_findings(api):
    setup_customer(api)
    rid = due(api, "INV-RB")
    ok(api, "supervisor", rid, "grant-contact-exception",
       {"channel": "phone", "reason": "evening call agreed", "valid_until": "2026-04-02T00:00:00Z"})
    at(api, NEXT_MORNING + timedelta(minutes=10))
    ok(api, "collector", rid, "record-contact", contact("phone", occurred_at=NIGHT.isoformat()))
    ok(api, "collector", rid, "record-contact", contact("email", occurred_at="2026-04-01T14:00:00Z"))
    ok(api, "collector", rid, "record-contact", contact("visit"))
    ok(api, "collector", rid, "record-contact", contact("email"))
    at(api, datetime(2026, 4, 20, 2, 0, tzinfo=UTC))
    before = findings(api)
    assert {f["rule_id"] for f in before} >= {"override.used", "contact.outside_window", "contact.frequency_receivable",
                                              "contact.channel_not_allowed"}
    api.services.projections.rebuild("compliance")
    assert findings(api) == before
