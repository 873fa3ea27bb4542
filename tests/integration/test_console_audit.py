"""The console's audit, policy and sandbox clock pages over HTTP: verification of the whole store
with the first break linked to its receivable, the export through the session, the policy's
versions and field-by-field changes, the sandbox clock moved with a CSRF token. Their route × role
checks are in test_access_matrix.py (every console page, from the app)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

import pytest

from collections_es.api.present import resolve_id
from collections_es.application.access import ROLES, VIEW_ROLES
from collections_es.application.clock import FixedClock, SandboxClock
from collections_es.console import audit as console_audit

from ..conftest import START, make_services
from .conftest import CUSTOMER, invoice
from .console import Console, text_of
from .test_audit import Store


@pytest.fixture
def console(sqlite_url: str) -> Iterator[Console]:
    services = make_services(sqlite_url, FixedClock(START))
    yield Console(services)
    services.close()


@pytest.fixture
def sandbox(sqlite_url: str) -> Iterator[Console]:
    services = make_services(sqlite_url, SandboxClock(START))
    yield Console(services)
    services.close()


def api_post(console: Console, path: str, body: object, role: str = "supervisor", method: str = "POST"):
    client = console.browser(Authorization=f"Bearer {console.tokens[role]}")
    response = client.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text
    return response


def issue(console: Console, number: str = "INV-2026-0001") -> str:
    if console.browser(Authorization=f"Bearer {console.tokens['supervisor']}").get(f"/customers/{CUSTOMER['customer_id']}").status_code == 404:
        api_post(console, "/customers", CUSTOMER)
    api_post(console, "/receivables", invoice(number))
    return str(resolve_id(number))


# ---- audit ------------------------------------------------------------------------------


def test_the_audit_page_verifies_the_store_only_when_asked(console):
    issue(console)
    client = console.as_("auditor")
    idle = text_of(client.get("/console/audit/verify").text)
    assert "Verify now" in idle and "The store verifies" not in idle
    page = client.get("/console/audit/verify", params={"run": "true"})
    assert page.status_code == 200
    text = text_of(page.text)
    assert "The store verifies: every hash recomputes and every chain holds." in text
    assert "events checked 4" in text and 'href="/console/audit/export?format=csv"' in page.text


def test_a_break_is_shown_with_its_kind_place_and_a_link_to_its_receivable(console):
    rid = issue(console)
    issue(console, "INV-2026-0002")
    store = Store(console.services.engine)
    _, state = store.row(rid, 1)
    assert b'"1200.50"' in state
    store.write(rid, 1, state=state.replace(b'"1200.50"', b'"9200.50"'))
    page = console.as_("supervisor").get("/console/audit/verify?run=true")
    text = text_of(page.text)
    assert "The store does NOT verify. Breaks found: 1" in text
    assert "edited: the stored content does not match its hash" in text
    assert f'href="/console/receivables/{rid}#v1"' in page.text
    assert "Version 1" in text and "What is wrong: the stored content does not match its hash" in text
    zh = console.as_("supervisor").get("/console/audit/verify?run=true&lang=zh-CN")
    assert "存储校验未通过" in text_of(zh.text) and "已被修改" in text_of(zh.text)


def test_the_export_is_downloaded_through_the_session_and_bounded_by_instants(console):
    issue(console)
    console.services.clock.at = START + timedelta(days=2)
    issue(console, "INV-2026-0002")
    client = console.as_("auditor")
    everything = client.get("/console/audit/export", params={"format": "csv"})
    assert everything.status_code == 200 and everything.headers["content-type"].startswith("text/csv")
    assert "attachment" in everything.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(everything.text)))
    assert {r["type"] for r in rows} >= {"Issued", "Registered"} or len(rows) >= 4
    later = (START + timedelta(days=1)).isoformat()
    bounded = client.get("/console/audit/export", params={"format": "jsonl", "from": later, "to": ""})
    assert bounded.status_code == 200 and bounded.headers["content-type"] == "application/x-ndjson"
    lines = bounded.text.splitlines()
    assert 0 < len(lines) < len(rows)
    refused = client.get("/console/audit/export", params={"from": "2026-03-01T00:00:00"})
    assert refused.status_code == 422 and "must be an instant with its zone" in text_of(refused.text)
    assert console.as_("collector").get("/console/audit/export").status_code == 403


def test_without_the_evidence_route_no_bundle_is_linked(console):
    issue(console)
    served = console_audit._serves(console.app, console_audit.EVIDENCE_PATH)
    page = console.as_("supervisor").get("/console/receivables/INV-2026-0001")
    assert page.status_code == 200
    assert ("/evidence" in page.text) == (served and "supervisor" in VIEW_ROLES.get("evidence.read", ()))
    if not served:
        assert console.as_("supervisor").get("/console/receivables/INV-2026-0001/evidence").status_code in (404, 405)


def test_the_receivable_page_links_the_evidence_bundle_for_the_roles_that_may_read_it(console):
    """The console's evidence route over the API's (`api.routes.evidence.evidence_bundle`, issue 14):
    the same bundle through the session, for the roles of `evidence.read` only."""
    from collections_es.application import evidence

    readers = VIEW_ROLES["evidence.read"]
    assert readers == frozenset({"supervisor", "auditor", "legal"})
    issue(console)
    for role in ROLES:
        page = console.as_(role).get("/console/receivables/INV-2026-0001")
        assert ('id="evidence-link"' in page.text) == (role in readers), role
        bundle = console.as_(role).get("/console/receivables/INV-2026-0001/evidence")
        if role in readers:
            assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
            assert bundle.headers["content-disposition"] == 'attachment; filename="evidence-INV-2026-0001.zip"'
            assert bundle.headers["x-frame-options"] == "DENY"
            assert evidence.check(bundle.content).ok  # the API's own bundle, checkable offline
        else:
            assert bundle.status_code == 403 and bundle.headers["content-type"].startswith("text/html")
    assert console.as_("auditor").get("/console/receivables/INV-NOBODY/evidence").status_code == 404
    old = console.as_("auditor").get("/console/receivables/INV-2026-0001?version=1")
    assert 'id="evidence-link"' not in old.text, "a past page offers nothing"


# ---- policy -----------------------------------------------------------------------------


def test_the_policy_page_lists_versions_and_each_ones_changes_field_by_field(console):
    current = console.browser(Authorization=f"Bearer {console.tokens['auditor']}").get("/policy").json()["policy"]
    document = current | {"version": "2026.2", "escalate_after_days": current["escalate_after_days"] + 5}
    document["contact"] = current["contact"] | {"max_phone_per_day": current["contact"]["max_phone_per_day"] + 1}
    console.services.clock.at = START + timedelta(days=3)
    api_post(console, "/policy", document, method="PUT")
    page = console.as_("sales").get("/console/policy")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Policy version 2026.2" in text and "2026.2 (in force)" in text
    assert "supervisor-1" in text and "system:startup" in text
    changes = text.split("Version 2026.2: changes to the version before", 1)[1].split("Version 2026.1", 1)[0]
    assert f"contact.max_phone_per_day {current['contact']['max_phone_per_day']} {current['contact']['max_phone_per_day'] + 1}" in changes
    assert f"escalate_after_days {current['escalate_after_days']} {current['escalate_after_days'] + 5}" in changes
    assert changes.count(" ") < 40, "only the two fields that changed"
    first = text.split("Version 2026.1", 1)[1]
    assert "The first version: every field below is what it set." in first and "contact.max_attempts_per_receivable" in first
    assert "<script>" not in page.text
    assert "版本" in text_of(console.as_("sales").get("/console/policy?lang=zh-CN").text)


# ---- sandbox clock ----------------------------------------------------------------------


def test_the_sandbox_clock_page_is_only_in_sandbox_mode(console):
    supervisor = console.as_("supervisor")
    assert supervisor.get("/console/sandbox/clock").status_code == 404
    assert 'href="/console/sandbox/clock"' not in supervisor.get("/console/policy").text
    assert console.as_("collector").get("/console/sandbox/clock").status_code == 403


def test_the_sandbox_clock_moves_forward_with_a_csrf_token_and_lists_what_fired(sandbox):
    issue(sandbox)
    supervisor = sandbox.as_("supervisor")
    page = supervisor.get("/console/sandbox/clock")
    assert page.status_code == 200 and 'href="/console/sandbox/clock"' in page.text
    refused = supervisor.post("/console/sandbox/clock/advance", data={"to": "2026-05-01T00:00"})
    assert refused.status_code == 403 and sandbox.services.sandbox.now() == START
    moved = supervisor.post("/console/sandbox/clock/advance", data={"to": "2026-05-01T00:00", "csrf": sandbox.csrf("supervisor")})
    assert moved.status_code == 303 and moved.headers["location"] == "/console/sandbox/clock"
    assert sandbox.services.sandbox.now().isoformat() == "2026-05-01T00:00:00+00:00"
    after = supervisor.get("/console/sandbox/clock")
    text = text_of(after.text)
    assert "The clock was moved; timers fired:" in text and "What fired" in text
    assert "fall due" in text  # the invoice fell due on the way (2026-04-01)
    back = supervisor.post("/console/sandbox/clock/advance", data={"to": "2026-04-01T00:00", "csrf": sandbox.csrf("supervisor")})
    assert back.status_code == 303
    assert "only moves forward" in text_of(supervisor.get("/console/sandbox/clock").text)
    assert sandbox.services.sandbox.now().isoformat() == "2026-05-01T00:00:00+00:00"
