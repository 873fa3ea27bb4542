"""The collection policy as configuration: a bad file is refused with the line
and field at fault, `PUT /policy` is for supervisors and keeps the old policy
when it refuses, and a change re-plans the open receivables from then on while
past events keep the version they ran under.

Customer in Shanghai (UTC+8): its local midnight is 16:00 UTC the day before.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from collections_es.adapters.policy_file import PolicyFileError, bundled_policy_text, load_policy, parse_policy
from collections_es.application.access import ROLES
from collections_es.application.clock import FixedClock
from collections_es.application.service import PolicyConflictError
from collections_es.domain.receivable import receivable_id
from projections.timers import timers

from ..conftest import START, make_services
from .conftest import CUSTOMER, Api, invoice

BUNDLED = bundled_policy_text()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def edited(old: str, new: str) -> tuple[str, int]:
    """The bundled policy with one line changed, and that line's number."""
    assert BUNDLED.count(old) == 1, old
    text = BUNDLED.replace(old, new)
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if new.splitlines()[0] in row)
    return text, line


# ---- the policy file ---------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("escalate_after_days = 30", 'escalate_after_days = "thirty"', "escalate_after_days", "valid integer"),
        ("escalate_after_days = 30", "escalate_after_dayz = 30", "escalate_after_dayz", "Extra inputs are not permitted"),
        ("max_attempts_per_receivable = 3", "max_attempts_per_receivable = 0", "contact.max_attempts_per_receivable", "greater than or equal to 1"),
        ('mon = [{ start = "09:00", end = "12:00" }', 'mon = [{ start = "12:00", end = "09:00" }', "contact.windows.mon.0", "must be after start"),
        ("holidays = []", 'holidays = ["2026-02-30"]', "holidays.0", "valid date"),
        ('issued = ["email", "sms", "phone", "wechat"]', 'issued = ["email", "pigeon"]', "channels_by_state.issued.1", "'phone'"),
    ],
)
def test_a_malformed_policy_file_is_refused_naming_the_line_and_the_field(old, new, field, message):
    text, line = edited(old, new)
    with pytest.raises(PolicyFileError) as info:
        parse_policy(text, source="collections-policy.toml")
    detail = str(info.value)
    assert detail.startswith("collections-policy.toml: ")
    assert f"line {line}, field '{field}'" in detail
    assert message in detail


def test_a_policy_file_that_is_not_toml_is_refused_naming_the_line():
    text, line = edited("escalate_after_days = 30", "escalate_after_days = 30 30")
    with pytest.raises(PolicyFileError, match=rf"not valid TOML: .*line {line}, column"):
        parse_policy(text, source="p.toml")


def test_a_policy_file_without_a_version_is_refused_naming_the_field():
    with pytest.raises(PolicyFileError, match=r"field 'version': Field required"):
        parse_policy(BUNDLED.replace('version = "2026.1"', ""), source="p.toml")


def test_a_refused_key_written_after_a_blank_line_is_reported_on_its_own_line():
    text, line = edited("reminder_lead_days = 7", "reminder_lead_days = -1")
    assert text.splitlines()[line - 2] == ""  # a blank line above it
    with pytest.raises(PolicyFileError) as info:
        parse_policy(text, source="p.toml")
    assert f"line {line}, field 'reminder_lead_days'" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            'tue = [{ start = "09:00"', 'tue = [{ start = "25:00"', id="a bad time inside an inline table",
        ),
        pytest.param(
            "escalate_after_days = 30", "escalate_after_days = 1", id="escalation not after follow-up",
        ),
    ],
)
def test_every_policy_file_refusal_names_a_line(old, new):
    text, line = edited(old, new)
    with pytest.raises(PolicyFileError) as info:
        parse_policy(text, source="p.toml")
    assert f"line {line}, field '" in str(info.value)
    assert "field ''" not in str(info.value)


def test_loading_a_missing_policy_file_names_the_path_and_no_file_means_the_bundled_policy(tmp_path):
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(PolicyFileError, match=rf"{missing}: cannot read the policy file"):
        load_policy(missing)
    bundled = load_policy(None)
    assert (bundled.version, bundled.escalate_after_days, bundled.holidays) == ("2026.1", 30, [])


def test_the_service_does_not_start_on_a_malformed_policy_file_and_says_where(sqlite_url, tmp_path):
    text, line = edited("promise_grace_days = 3", "promise_grace_days = 365")
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(PolicyFileError) as info:
        make_services(sqlite_url, FixedClock(START), COLLECTIONS_POLICY_FILE=str(path))
    assert str(info.value).startswith(f"{path}: line {line}, field 'promise_grace_days': ")


def test_the_service_does_not_start_on_a_file_that_reuses_a_version_number_with_other_figures(sqlite_url, tmp_path):
    make_services(sqlite_url, FixedClock(START)).close()  # adopts the bundled 2026.1
    path = tmp_path / "policy.toml"
    path.write_text(BUNDLED.replace("escalate_after_days = 30", "escalate_after_days = 20"), "utf-8")
    with pytest.raises(PolicyConflictError, match="2026.1 was adopted before with other figures"):
        make_services(sqlite_url, FixedClock(START), COLLECTIONS_POLICY_FILE=str(path))
    services = make_services(sqlite_url, FixedClock(START))
    try:
        assert services.app.policy().escalate_after_days == 30
    finally:
        services.close()


# ---- PUT /policy ---------------------------------------------------------------


def put_policy(api: Api, document: dict[str, Any], who: str = "supervisor") -> Any:
    return api.client.put("/policy", json=document, headers=api.headers(who))


def current(api: Api) -> dict[str, Any]:
    response = api.as_("auditor").get("/policy")
    assert response.status_code == 200, response.text
    return response.json()


def with_(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**document, **changes}


def test_only_a_supervisor_may_change_the_policy_though_every_role_may_read_it(api):
    before = current(api)
    document = with_(before["policy"], version="2026.2", escalate_after_days=20)
    for role in ROLES:
        assert api.as_(role).get("/policy").status_code == 200, role
        if role != "supervisor":
            response = put_policy(api, document, role)
            assert response.status_code == 403, (role, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert current(api) == before
    assert put_policy(api, document).status_code == 200


@pytest.mark.parametrize(
    ("changes", "rule_id", "detail"),
    [
        ({"version": "2026.2", "escalate_after_days": "ten"}, "policy.invalid", "field 'escalate_after_days'"),
        ({"version": "2026.2", "escalate_after_days": 0}, "policy.invalid", "field 'escalate_after_days'"),
        ({"version": "2026.2", "escalate_after_dayz": 10}, "policy.invalid", "field 'escalate_after_dayz'"),
        ({"version": "2026.2", "holidays": ["2026-13-01"]}, "policy.invalid", "field 'holidays.0'"),
        ({"version": "2026.2", "escalate_after_days": 1}, "policy.invalid", "escalate_after_days must be greater"),
        ({"version": "", "escalate_after_days": 10}, "policy.invalid", "field 'version'"),
        ({"escalate_after_days": 10}, "policy.version_reused", "2026.1 was adopted before"),
        ({}, "policy.unchanged", "2026.1 is in force already"),
    ],
)
def test_a_bad_policy_is_refused_with_422_and_the_policy_in_force_stays(api, changes, rule_id, detail):
    before = current(api)
    response = put_policy(api, with_(before["policy"], **changes))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["rule_id"] == rule_id
    assert detail in problem["detail"]
    assert current(api) == before
    assert api.services.app.policy().version == "2026.1"


def test_a_policy_document_with_a_section_missing_is_refused_and_the_old_one_stays(api):
    before = current(api)
    document = {k: v for k, v in before["policy"].items() if k != "contact"} | {"version": "2026.2"}
    response = put_policy(api, document)
    assert response.status_code == 422
    assert "field 'contact'" in response.json()["detail"]
    assert current(api) == before


def _timer(services: Any, number: str, kind: str) -> tuple[datetime, str] | None:
    services.projections.catch_up(["timers"])
    with services.engine.connect() as conn:
        row = conn.execute(
            sa.select(timers.c.at, timers.c.policy_version).where(
                timers.c.receivable_id == str(receivable_id(number)), timers.c.kind == kind
            )
        ).first()
    return None if row is None else (row.at.replace(tzinfo=UTC), row.policy_version)


def _history(api: Api, number: str) -> list[dict[str, Any]]:
    response = api.as_("auditor").get(f"/receivables/{number}/history")
    assert response.status_code == 200, response.text
    return response.json()


def _tick(api: Api, at: str) -> list[dict[str, Any]]:
    api.services.clock.at = utc(at)
    response = api.as_("service").post("/admin/tick")
    assert response.status_code == 200, response.text
    return response.json()["fired"]


def test_a_policy_change_re_plans_the_open_receivables_from_then_on_and_past_events_keep_their_version(api):
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    for number in ("INV-UNTOUCHED", "INV-TOUCHED"):
        assert api.as_("service").post("/receivables", json=invoice(number, due_on="2026-04-03")).status_code == 201
    _tick(api, "2026-04-08T04:00:00Z")  # reminded, due, followed up, all under 2026.1
    for number in ("INV-UNTOUCHED", "INV-TOUCHED"):
        assert _timer(api.services, number, "escalate") == (utc("2026-05-02T16:00:00Z"), "2026.1")  # 3 May, 30 days

    # Wednesday 8 April, 12:00 in Shanghai: escalate after 10 days instead of 30.
    api.services.clock.at = utc("2026-04-08T04:00:00Z")
    document = with_(current(api)["policy"], version="2026.2", escalate_after_days=10)
    response = put_policy(api, document)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "2026.2" and body["policy"]["escalate_after_days"] == 10
    assert [(h["version"], h["adopted_by"]) for h in body["history"]] == [("2026.1", "system:startup"), ("2026.2", "supervisor-1")]
    assert body["history"][1]["changes"] == [
        {"field": "escalate_after_days", "from": 30, "to": 10},
        {"field": "version", "from": "2026.1", "to": "2026.2"},
    ]
    assert utc(body["history"][1]["adopted_at"]) == utc("2026-04-08T04:00:00Z")

    # Issue 13 (ADR 0050): the open receivables are re-planned from the change (`Replanned`), so
    # a timer computed before it no longer stands (it used to, until the receivable's next event).
    assert _timer(api.services, "INV-UNTOUCHED", "escalate") == (utc("2026-04-12T16:00:00Z"), "2026.2")
    contact = {"channel": "phone", "outcome": "reached", "note": "payables desk says next week"}
    api.services.clock.at = utc("2026-04-08T06:00:00Z")  # 14:00, the afternoon contact window
    assert api.as_("collector").post("/receivables/INV-TOUCHED/record-contact", json=contact).status_code == 200
    assert _timer(api.services, "INV-TOUCHED", "escalate") == (utc("2026-04-12T16:00:00Z"), "2026.2")  # 13 April
    assert api.as_("service").post("/receivables", json=invoice("INV-NEW", due_on="2026-04-10")).status_code == 201
    _tick(api, "2026-04-10T00:00:00Z")
    assert _timer(api.services, "INV-NEW", "escalate") == (utc("2026-04-19T16:00:00Z"), "2026.2")  # 20 April

    fired = _tick(api, "2026-04-14T00:00:00Z")
    assert sorted((f["receivable_id"], f["kind"], utc(f["scheduled_for"])) for f in fired) == sorted([
        (str(receivable_id("INV-TOUCHED")), "escalate", utc("2026-04-12T16:00:00Z")),  # 13 April, 10 days
        (str(receivable_id("INV-UNTOUCHED")), "escalate", utc("2026-04-12T16:00:00Z")),  # re-planned: the same
        (str(receivable_id("INV-NEW")), "follow_up", utc("2026-04-13T01:00:00Z")),  # Monday 13 April, 09:00
    ])
    _tick(api, "2026-04-21T00:00:00Z")
    assert api.as_("auditor").get("/receivables/INV-NEW").json()["state"] == "overdue_escalated"
    assert api.as_("auditor").get("/receivables/INV-UNTOUCHED").json()["state"] == "overdue_escalated"
    _tick(api, "2026-05-03T00:00:00Z")

    untouched = _history(api, "INV-UNTOUCHED")
    assert [(e["type"], e["policy_version"]) for e in untouched] == [
        ("Issued", "2026.1"), ("ReminderSent", "2026.1"), ("FellDue", "2026.1"), ("FollowUpStarted", "2026.1"),
        ("Replanned", "2026.2"),  # at the adoption
        ("Escalated", "2026.2"),  # at the instant computed under 2026.2
    ]
    assert utc(untouched[-1]["scheduled_for"]) == utc("2026-04-12T16:00:00Z")
    touched = _history(api, "INV-TOUCHED")
    assert [(e["type"], e["policy_version"]) for e in touched] == [
        ("Issued", "2026.1"), ("ReminderSent", "2026.1"), ("FellDue", "2026.1"), ("FollowUpStarted", "2026.1"),
        ("Replanned", "2026.2"), ("ContactRecorded", "2026.2"), ("Escalated", "2026.2"),
    ]
    assert api.as_("auditor").get("/receivables/INV-UNTOUCHED").json()["policy_version"] == "2026.2"
    assert api.as_("auditor").get("/receivables/INV-UNTOUCHED?version=4").json()["policy_version"] == "2026.1"
    assert api.services.app.policy_version("2026.1").escalate_after_days == 30  # what each version said stays readable


def test_a_holiday_adopted_by_put_moves_a_follow_up_computed_afterwards(api):
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    document = with_(current(api)["policy"], version="2026.1-qingming", holidays=["2026-04-06"])
    assert put_policy(api, document).status_code == 200
    assert api.as_("service").post("/receivables", json=invoice("INV-HOLIDAY", due_on="2026-04-03")).status_code == 201
    _tick(api, "2026-04-03T00:00:00Z")  # falls due on Friday 3 April in Shanghai
    assert _timer(api.services, "INV-HOLIDAY", "follow_up") == (utc("2026-04-07T01:00:00Z"), "2026.1-qingming")
    assert [f["kind"] for f in _tick(api, "2026-04-06T03:00:00Z")] == []  # the holiday, 11:00
    assert [f["kind"] for f in _tick(api, "2026-04-07T01:00:00Z")] == ["follow_up"]  # Tuesday 09:00
    assert date.fromisoformat(current(api)["policy"]["holidays"][0]) == date(2026, 4, 6)
