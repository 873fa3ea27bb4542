"""Every refusal over HTTP: RFC 9457 problem details that name the rule, the
field or the state at fault, and a receivable left exactly as it was (same
body, same version, same history). Bad input is never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from collections_es.domain import lifecycle

from .conftest import CUSTOMER, Api, invoice

INVOICE = "INV-2026-0001"
DUE_DAY = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)  # 10:00 on the due date in Shanghai


def pay(amount: str = "100.00", reference: str = "BANK-1", paid_on: str = "2026-03-02", **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "method": "bank_transfer", "paid_on": paid_on, "reference": reference, **extra}


def assert_problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


@pytest.fixture
def issued(api: Api) -> str:
    """A CNY 1200.50 receivable in Shanghai, issued 2026-03-02 and due 2026-04-01; its id."""
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    response = api.as_("service").post("/receivables", json=invoice(INVOICE))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def escalate(api: Api, ref: str) -> None:
    api.services.clock.at = DUE_DAY
    for who, command, body in (("service", "fall-due", None), ("collector", "escalate", {"reason": "no answer"})):
        assert api.as_(who).post(f"/receivables/{ref}/{command}", json=body).status_code == 200


@contextmanager
def unchanged(api: Api, ref: str = INVOICE) -> Iterator[None]:
    """The receivable and its history are the same after the block as before it."""
    before = api.as_("auditor").get(f"/receivables/{ref}")
    history = api.as_("auditor").get(f"/receivables/{ref}/history").json()
    yield
    after = api.as_("auditor").get(f"/receivables/{ref}")
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]
    assert api.as_("auditor").get(f"/receivables/{ref}/history").json() == history


# ---- 409: not allowed in this state ------------------------------------------


def test_a_command_the_state_does_not_allow_is_409_naming_the_state_and_what_is_allowed_now(api, issued):
    with unchanged(api):
        problem = assert_problem(api.as_("collector").post(f"/receivables/{issued}/escalate", json={"reason": "impatient"}), 409)
    assert problem["state"] == "issued"
    assert problem["command"] == "escalate"
    assert problem["allowed_commands"] == lifecycle.allowed_commands("issued")
    assert "send_reminder" in problem["allowed_commands"] and "escalate" not in problem["allowed_commands"]
    assert "issued" in problem["detail"]
    assert api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay("1200.50")).status_code == 200
    with unchanged(api):
        problem = assert_problem(api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay("1.00", "BANK-2")), 409)
    assert (problem["state"], problem["allowed_commands"]) == ("settled", ["record_complaint", "resolve_complaint"])


def promised(api: Api, ref: str = INVOICE) -> None:
    """Due today, and the customer promised to pay it all in nine days."""
    api.services.clock.at = DUE_DAY
    assert api.as_("service").post(f"/receivables/{ref}/fall-due").status_code == 200
    promise = {"amount": "1200.50", "promised_on": "2026-04-10"}
    assert api.as_("collector").post(f"/receivables/{ref}/promise-to-pay", json=promise).status_code == 200


NOT_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("an empty object", {"json": {}}),
    ("no body", {}),
    ("JSON null", {"content": b"null", "headers": {"Content-Type": "application/json"}}),
    ("malformed JSON", {"content": b'{"channel": ', "headers": {"Content-Type": "application/json"}}),
    ("unknown fields", {"json": {"channel": "email", "urgency": "high"}}),
    ("a wrong type", {"json": {"channel": 7}}),
    ("not JSON at all", {"content": b"channel=email", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
]


@pytest.mark.parametrize("label, request_kwargs", NOT_BODIES, ids=[label for label, _ in NOT_BODIES])
def test_a_command_the_state_does_not_allow_is_409_whatever_its_body(api, issued, label, request_kwargs):
    promised(api)
    with unchanged(api):
        problem = assert_problem(api.as_("service").post(f"/receivables/{INVOICE}/send-reminder", **request_kwargs), 409)
    assert (problem["command"], problem["state"]) == ("send_reminder", "promised"), label
    assert problem["allowed_commands"] == lifecycle.allowed_commands("promised")
    assert [a["command"] for a in problem["allowed_actions"]] == problem["allowed_commands"]


def test_credentials_and_role_come_before_the_state_and_an_unknown_receivable_is_404(api, issued):
    promised(api)
    path = f"/receivables/{INVOICE}/send-reminder"
    with unchanged(api):
        assert_problem(api.client.post(path, json={}), 401)
        assert_problem(api.as_("auditor").post(path, json={}), 403)
        assert_problem(api.as_("service").post("/receivables/INV-NEVER-ISSUED/send-reminder", json={}), 404)
        assert_problem(api.as_("service").post("/receivables/INV-NEVER-ISSUED/send-reminder", content=b"{", headers={"Content-Type": "application/json"}), 404)


def test_a_command_the_state_allows_still_has_its_body_validated(api, issued):
    promised(api)
    with unchanged(api):
        problem = assert_problem(api.as_("collector").post(f"/receivables/{INVOICE}/record-contact", json={}), 422)
    assert problem["field"] == "channel"


def test_allowed_actions_give_the_method_and_path_of_each_allowed_command_with_the_real_id(api, issued):
    promised(api)
    receivable = api.as_("auditor").get(f"/receivables/{INVOICE}").json()
    actions = receivable["allowed_actions"]
    assert [a["command"] for a in actions] == receivable["allowed_commands"] == lifecycle.allowed_commands("promised")
    for action in actions:
        assert action["method"] == "POST"
        assert action["path"] == f"/receivables/{issued}/{action['command'].replace('_', '-')}"
    (record_contact,) = [a for a in actions if a["command"] == "record_contact"]
    contact = {"channel": "email", "outcome": "reached", "note": "asked when the payment leaves"}
    response = api.as_("collector").post(record_contact["path"], json=contact)
    assert response.status_code == 200, response.text
    problem = assert_problem(api.as_("service").post(f"/receivables/{INVOICE}/send-reminder", json={"channel": "email"}), 409)
    assert {"command": "break_promise", "method": "POST", "path": f"/receivables/{issued}/break-promise"} in problem["allowed_actions"]


# ---- 422: rules of the procedure and invariants -----------------------------


RULE_BREAKERS = [
    ("service", "record-payment", pay("1200.51"), "payment.overpayment", "amount"),
    ("service", "record-payment", pay("10.001"), "money.precision", "amount"),
    ("service", "record-payment", pay("0.00"), "money.positive", "amount"),
    ("service", "record-payment", pay(paid_on="2026-03-03"), "payment.future_date", "paid_on"),
    ("service", "send-reminder", {"channel": "email"}, "reminder.too_early", None),
    ("service", "fall-due", None, "fall_due.not_yet", None),
    ("supervisor", "resolve-dispute", {"resolution": "nothing to resolve"}, "dispute.not_open", None),
    ("collector", "record-contact", {"channel": "phone", "outcome": "reached", "note": "   "}, "field.required", "note"),
]


def test_a_command_that_breaks_a_rule_is_422_naming_the_rule_and_changes_nothing(api, issued):
    for who, command, body, rule_id, field in RULE_BREAKERS:
        with unchanged(api):
            problem = assert_problem(api.as_(who).post(f"/receivables/{issued}/{command}", json=body), 422)
        assert (problem["rule_id"], problem.get("field"), problem["type"]) == (rule_id, field, "/problems/rule-violation"), command
    assert api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay("100.00", "BANK-1")).status_code == 200
    with unchanged(api):
        problem = assert_problem(api.as_("collector").post(f"/receivables/{issued}/record-payment", json=pay("50.00", "BANK-1")), 422)
    assert (problem["rule_id"], problem["field"]) == ("payment.duplicate_reference", "reference")


def test_a_write_off_is_approved_only_after_a_request_and_by_a_second_supervisor(api, issued):
    escalate(api, issued)
    path = f"/receivables/{issued}/approve-write-off"
    with unchanged(api):
        assert assert_problem(api.as_("supervisor-2").post(path), 422)["rule_id"] == "write_off.not_requested"
    assert api.as_("supervisor").post(f"/receivables/{issued}/request-write-off", json={"reason": "insolvent"}).status_code == 200
    with unchanged(api):
        assert "approve_write_off" in assert_problem(api.as_("collector").post(path, json={"note": "fine"}), 403)["detail"]
        assert assert_problem(api.as_("supervisor").post(path, json={"note": "ok"}), 422)["rule_id"] == "write_off.four_eyes"
    approved = api.as_("supervisor-2").post(path, json={"note": "ok"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["written_off_amount"]) == ("written_off", "1200.50")


def test_an_invalid_invoice_is_422_naming_the_rule_or_the_field_and_is_not_issued(api):
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    for overrides, rule_id, field in [
        ({"currency": "ABC"}, "money.currency", "currency"),
        ({"currency": "cny"}, None, "currency"),
        ({"currency": "CNYY"}, None, "currency"),
        ({"currency": None}, None, "currency"),
        ({"amount": "10.001"}, "money.precision", "amount"),
        ({"amount": "10.5", "currency": "JPY"}, "money.precision", "amount"),
        ({"amount": "0"}, "money.positive", "amount"),
        ({"amount": 1200.5}, None, "amount"),
        ({"due_on": "2026-03-01"}, "receivable.due_before_issue", "due_on"),
        ({"invoice_number": "INV 1"}, None, "invoice_number"),
        ({"collector": "c" * 129}, None, "collector"),
    ]:
        body = invoice("INV-BAD", **overrides)
        problem = assert_problem(api.as_("service").post("/receivables", json=body), 422)
        assert (problem.get("rule_id"), problem["field"]) == (rule_id, field), overrides
    assert_problem(api.as_("auditor").get("/receivables/INV-BAD"), 404)


def test_a_customer_in_an_unknown_time_zone_is_refused(api):
    problem = assert_problem(api.as_("supervisor").post("/customers", json={**CUSTOMER, "timezone": "Mars/Olympus"}), 422)
    assert problem["field"] == "timezone" and "timezone" in problem["rule_id"]
    assert "Mars/Olympus" in problem["detail"]
    assert_problem(api.as_("auditor").get(f"/customers/{CUSTOMER['customer_id']}"), 404)


# ---- 422: the request's shape ------------------------------------------------


def test_a_body_of_the_wrong_shape_is_422_naming_the_field(api, issued):
    for body, field in [
        (pay(surcharge="5.00"), "surcharge"),
        (pay(amount=100), "amount"),
        (pay(amount=100.5), "amount"),
        (pay(amount="1,000.00"), "amount"),
        (pay(amount="-5.00"), "amount"),
        (pay(reference="R" * 129), "reference"),
        (pay(paid_on="2026-02-30"), "paid_on"),
        ({**pay(), "method": "paypal"}, "method"),
        ({"amount": "1.00", "method": "cash", "paid_on": "2026-03-02"}, "reference"),
    ]:
        with unchanged(api):
            problem = assert_problem(api.as_("service").post(f"/receivables/{issued}/record-payment", json=body), 422)
        assert (problem["field"], problem["type"]) == (field, "/problems/validation"), body
        assert field in problem["detail"]
    with unchanged(api):
        long_note = {"channel": "phone", "outcome": "reached", "note": "很" * 2001}
        assert assert_problem(api.as_("collector").post(f"/receivables/{issued}/record-contact", json=long_note), 422)["field"] == "note"
        bad_override = {"channel": "phone", "outcome": "reached", "note": "n", "override": {"rule_id": "x"}}
        response = api.as_("supervisor").post(f"/receivables/{issued}/record-contact", json=bad_override)
        assert assert_problem(response, 422)["field"] == "override.reason"


# ---- 400, 404, 409 duplicate, 412, 413 -----------------------------------------


def test_a_body_that_is_not_json_is_400(api, issued):
    with unchanged(api):
        truncated = b'{"amount": "1.00",'
        response = api.as_("service").post(
            f"/receivables/{issued}/record-payment", content=truncated, headers={"Content-Type": "application/json"}
        )
        problem = assert_problem(response, 400)
    assert "JSON" in problem["detail"]
    assert problem["field"] == "body"


def test_malformed_json_is_400_naming_the_body_with_the_line_and_column(api, issued):
    broken = b'{\n  "amount": "1.00",\n  "method" "cash"\n}'
    with unchanged(api):
        response = api.as_("service").post(
            f"/receivables/{issued}/record-payment", content=broken, headers={"Content-Type": "application/json"}
        )
        problem = assert_problem(response, 400)
    assert problem["field"] == "body" and problem["errors"] == [{"field": "body", "message": problem["detail"]}]
    assert problem["detail"] == "invalid JSON at line 3, column 12: Expecting ':' delimiter"
    # A route whose body FastAPI reads says it the same way.
    response = api.as_("supervisor").post("/customers", content=b'{"customer_id": "C-1",,}', headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 400)
    assert (problem["field"], problem["detail"]) == ("body", "invalid JSON at line 1, column 23: Expecting property name enclosed in double quotes")


def test_unknown_receivables_customers_and_routes_are_404(api, issued):
    unknown = "00000000-0000-0000-0000-000000000000"
    assert "no receivable" in assert_problem(api.as_("auditor").get(f"/receivables/{unknown}"), 404)["detail"]
    assert_problem(api.as_("auditor").get(f"/receivables/{unknown}/history"), 404)
    assert_problem(api.as_("auditor").get("/receivables/INV-NEVER-ISSUED"), 404)
    assert_problem(api.as_("service").post(f"/receivables/{unknown}/record-payment", json=pay()), 404)
    assert "no customer 'C-NOBODY'" in assert_problem(api.as_("auditor").get("/customers/C-NOBODY"), 404)["detail"]
    problem = assert_problem(api.as_("service").post("/receivables", json=invoice("INV-ORPHAN", customer_id="C-NOBODY")), 404)
    assert "C-NOBODY" in problem["detail"]
    assert_problem(api.as_("auditor").get("/receivables/INV-ORPHAN"), 404)
    with unchanged(api):
        assert_problem(api.as_("supervisor").post(f"/receivables/{issued}/frobnicate", json={}), 404)
        assert_problem(api.as_("supervisor").post(f"/receivables/{issued}/record_payment", json=pay()), 404)
    assert_problem(api.as_("auditor").get("/no-such-route"), 404)


def test_issuing_an_invoice_or_registering_a_customer_twice_is_409_and_keeps_the_first(api, issued):
    with unchanged(api):
        problem = assert_problem(api.as_("service").post("/receivables", json=invoice(INVOICE, amount="999.00")), 409)
    assert problem["type"] == "/problems/duplicate"
    assert INVOICE in problem["detail"]
    assert api.as_("auditor").get(f"/receivables/{issued}").json()["amount"] == "1200.50"
    again = api.as_("supervisor").post("/customers", json={**CUSTOMER, "name": "Someone else"})
    assert assert_problem(again, 409)["type"] == "/problems/duplicate"
    assert api.as_("auditor").get(f"/customers/{CUSTOMER['customer_id']}").json()["name"] == CUSTOMER["name"]


def test_if_match_with_a_stale_version_is_412_and_with_the_current_version_succeeds(api, issued):
    assert api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay("100.00", "BANK-1")).status_code == 200
    current = api.as_("auditor").get(f"/receivables/{issued}")
    assert current.headers["etag"] == '"2"'
    with unchanged(api):
        stale = api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay("50.00", "BANK-2"), headers={"If-Match": '"1"'})
        problem = assert_problem(stale, 412)
    assert (problem["expected_version"], problem["current_version"]) == (1, 2)
    with unchanged(api):
        garbled = api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay("50.00", "BANK-2"), headers={"If-Match": "two"})
        assert_problem(garbled, 400)
    ok = api.as_("service").post(
        f"/receivables/{issued}/record-payment",
        json=pay("50.00", "BANK-2"),
        headers={"If-Match": current.headers["etag"]},
    )
    assert ok.status_code == 200, ok.text
    assert (ok.json()["version"], ok.json()["balance"], ok.headers["etag"]) == (3, "1050.50", '"3"')


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(api, issued):
    limit = api.services.settings.max_body_bytes
    big = json.dumps(pay(reference="R", note="x" * limit)).encode()
    with unchanged(api):
        declared = api.as_("service").post(
            f"/receivables/{issued}/record-payment",
            content=big,
            headers={"Content-Type": "application/json"},
        )
        assert_problem(declared, 413)
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        streamed = api.as_("service").post(
            f"/receivables/{issued}/record-payment",
            content=chunks,
            headers={"Content-Type": "application/json"},
        )
        assert_problem(streamed, 413)


# ---- 401 and 403 ---------------------------------------------------------------


def test_no_token_a_wrong_token_and_a_revoked_token_are_401(api, issued):
    client = api.client
    path = f"/receivables/{issued}/record-payment"
    with unchanged(api):
        for headers in ({}, {"Authorization": "Bearer ces_not-a-real-token"}, {"Authorization": f"Basic {api.tokens['service']}"}):
            assert_problem(client.post(path, json=pay(), headers=headers), 401)
        assert_problem(client.get(f"/receivables/{issued}"), 401)
        (key,) = [k for k in api.services.keys.list() if k.actor == "service-1"]
        api.services.keys.revoke(key.id, api.services.clock.now())
        revoked = api.as_("service").post(path, json=pay())
        assert "revoked" in assert_problem(revoked, 401)["detail"]
        assert revoked.headers["www-authenticate"] == "Bearer"
    assert api.as_("collector").post(path, json=pay()).status_code == 200, "other keys still work"


def test_a_role_that_may_not_send_a_command_is_403_naming_the_role(api, issued):
    for who, command, body in [
        ("auditor", "record-payment", pay()),
        ("sales", "record-payment", pay()),
        ("customer_service", "record-payment", pay()),
        ("collector", "fall-due", None),
        ("service", "record-contact", {"channel": "phone", "outcome": "reached", "note": "n"}),
        ("collector", "assign-collector", {"collector": "me"}),
        ("auditor", "raise-dispute", {"reason": "r"}),
    ]:
        with unchanged(api):
            problem = assert_problem(api.as_(who).post(f"/receivables/{issued}/{command}", json=body), 403)
        assert problem["type"] == "/problems/forbidden"
        assert f"role '{who}'" in problem["detail"] and command.replace("-", "_") in problem["detail"]
    override = {"rule_id": "contact.window", "reason": "urgent"}
    with unchanged(api):
        body = {"channel": "phone", "outcome": "reached", "note": "late call", "override": override}
        assert "supervisor" in assert_problem(api.as_("collector").post(f"/receivables/{issued}/record-contact", json=body), 403)["detail"]
    assert_problem(api.as_("auditor").post("/customers", json={**CUSTOMER, "customer_id": "C-NEW"}), 403)
    assert_problem(api.as_("collector").post("/receivables", json=invoice("INV-X")), 403)
    assert_problem(api.as_("auditor").get("/customers/C-NEW"), 404)
    assert_problem(api.as_("auditor").get("/receivables/INV-X"), 404)


# ---- never a 500 ------------------------------------------------------------


MALFORMED: list[bytes] = [
    b"[]",
    b'"a string"',
    b"42",
    b"{",
    b"{'amount': '1.00'}",
    b'{"amount": "1.00", "amount": 2}',
    b'{"amount": NaN, "method": "cash", "paid_on": "2026-03-02", "reference": "r"}',
    b'{"amount": "NaN", "method": "cash", "paid_on": "2026-03-02", "reference": "r"}',
    b'{"amount": "Infinity", "method": "cash", "paid_on": "2026-03-02", "reference": "r"}',
    b'{"amount": "99999999999999999999", "method": "cash", "paid_on": "2026-03-02", "reference": "r"}',
    b'{"amount": "999999999999999.999999", "method": "cash", "paid_on": "2026-03-02", "reference": "r"}',
    b'{"amount": "1.00", "method": "cash", "paid_on": "0000-00-00", "reference": "r"}',
    b'{"amount": "1.00", "method": "cash", "paid_on": "9999-12-31", "reference": "r"}',
    b'{"amount": "1.00", "method": "cash", "paid_on": 20260302, "reference": "r"}',
    b'{"amount": "1.00", "method": ["cash"], "paid_on": "2026-03-02", "reference": {"a": 1}}',
    b'{"amount": true, "method": null, "paid_on": false, "reference": 1e999}',
    b'{"amount": "1.00", "method": "cash", "paid_on": "2026-03-02", "reference": "\\ud800"}',
    b"\xff\xfe\x00garbage",
    "{\"amount\": \"１.００\", \"method\": \"cash\", \"paid_on\": \"2026-03-02\", \"reference\": \"全角\"}".encode(),
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
]


def test_no_malformed_body_is_a_500_and_none_changes_the_receivable(api, issued):
    paths = [f"/receivables/{issued}/{c}" for c in ("record-payment", "agree-installment-plan", "resolve-dispute", "start-follow-up")]
    with unchanged(api):
        for path in paths:
            for body in MALFORMED:
                response = api.as_("supervisor").post(path, content=body, headers={"Content-Type": "application/json"})
                assert response.status_code in (400, 409, 422), (path, body[:80], response.status_code, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")


def test_no_malformed_query_or_header_is_a_500(api, issued):
    for path in (
        f"/receivables/{issued}?version=0",
        f"/receivables/{issued}?version=-1",
        f"/receivables/{issued}?version=abc",
        f"/receivables/{issued}?as_of=yesterday",
        f"/receivables/{issued}?as_of=2026-03-02T01:00:00",
        f"/receivables/{issued}?as_of=2026-03-02T01:00:00Z&version=1",
        "/receivables?state=lost",
        "/receivables?currency=cny",
        "/receivables?limit=0",
        "/receivables?limit=100000",
        "/receivables?overdue=perhaps",
    ):
        assert_problem(api.as_("auditor").get(path), 422)
    with unchanged(api):
        for headers in ({"Idempotency-Key": "k" * 256}, {"Idempotency-Key": ""}, {"If-Match": '"-1"'}, {"If-Match": '"1' + "0" * 40 + '"'}):
            response = api.as_("service").post(f"/receivables/{issued}/record-payment", json=pay(), headers=headers)
            assert_problem(response, 400)


def test_a_command_with_required_fields_sent_without_a_body_is_422_not_500(api, issued, request):
    path = f"/receivables/{issued}/record-payment"
    with unchanged(api):
        for kwargs in ({}, {"content": b"null", "headers": {"Content-Type": "application/json"}}):
            response = api.as_("service").post(path, **kwargs)
            assert response.status_code == 422, (kwargs, response.status_code, response.text)
            assert response.json()["field"] in ("body", "amount")


def test_a_receivable_due_on_the_first_day_of_the_calendar_is_refused_or_reminded_without_a_500(api, request):
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    issued = api.as_("service").post("/receivables", json=invoice("INV-ANCIENT", issued_on="0001-01-01", due_on="0001-01-01"))
    assert issued.status_code in (201, 422), issued.text
    if issued.status_code == 201:
        reminded = api.as_("service").post("/receivables/INV-ANCIENT/send-reminder", json={"channel": "email"})
        assert reminded.status_code < 500, reminded.text


def test_a_version_beyond_any_integer_column_is_404_not_500(api, issued, request):
    assert_problem(api.as_("auditor").get(f"/receivables/{issued}?version=99999999999999999999"), 404)


def test_a_nul_character_in_a_list_filter_is_refused_or_matches_nothing_but_is_never_a_500(api, issued, request):
    for query in ("cursor=%00", "collector=a%00b", "customer_id=%00"):
        response = api.as_("auditor").get(f"/receivables?{query}")
        assert response.status_code in (200, 400, 422), (query, response.status_code)


def test_a_nul_character_in_a_collector_name_does_not_break_the_receivables_list(api, issued, request):
    issued_nul = api.as_("service").post("/receivables", json=invoice("INV-NUL", collector="bad\u0000name"))
    assert issued_nul.status_code in (201, 422), issued_nul.text
    listing = api.as_("auditor").get("/receivables")
    assert listing.status_code == 200, listing.text
    assert INVOICE in [item["invoice_number"] for item in listing.json()["items"]]
