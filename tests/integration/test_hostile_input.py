"""Hostile input (ADR 0032): every string the API reads is bounded, no request body takes a
field it does not declare, over-long or unknown input is refused with problem details naming
the field and changes nothing, bodies are JSON within the size limit. The OpenAPI document
is walked, so a new route or field is held to the same rules without a new test."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice

INVOICE = "INV-2026-0001"
BOUNDING_FORMATS = {"date", "date-time", "time", "uuid"}


# ---- fixtures and helpers ---------------------------------------------------------


@pytest.fixture
def doc_api(sqlite_url: str, clock: Any) -> Iterator[Api]:
    """The API on SQLite, for what does not depend on the database (the document, validation)."""
    services = make_services(sqlite_url, clock)
    yield Api(services)
    services.close()


@pytest.fixture
def issued(doc_api: Api) -> Api:
    """A customer and a receivable (SQLite: what is tested here happens before anything is stored)."""
    api = doc_api
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice(INVOICE)).status_code == 201
    return api


def document(api: Api) -> dict[str, Any]:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def alternatives(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's non-null alternatives (anyOf/oneOf flattened, refs resolved)."""
    schema = resolve(doc, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [alt for part in schema[key] for alt in alternatives(doc, part)]
    return [] if schema.get("type") == "null" else [schema]


def pattern_is_bounded(pattern: str) -> bool:
    """Anchored at both ends, with no unbounded repetition (`*`, `+`, `{n,}`) outside a class."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    outside_classes = re.sub(r"\\.|\[(?:\\.|[^\]])*\]", "x", pattern)
    return not re.search(r"[*+]|\{\d+,\}", outside_classes)


def string_is_bounded(schema: dict[str, Any]) -> bool:
    return (
        "maxLength" in schema
        or "enum" in schema
        or "const" in schema
        or schema.get("format") in BOUNDING_FORMATS
        or pattern_is_bounded(schema.get("pattern", ""))
    )


def unbounded_strings(doc: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every place under `schema` where a string of any length would be read."""
    for alt in alternatives(doc, schema):
        kind = alt.get("type")
        if kind == "string" or (kind is None and ("enum" in alt or "pattern" in alt)):
            if not string_is_bounded(alt):
                yield where
        elif kind == "array":
            yield from unbounded_strings(doc, alt.get("items", {}), f"{where}[]")
        elif kind == "object" or "properties" in alt:
            for name, prop in alt.get("properties", {}).items():
                yield from unbounded_strings(doc, prop, f"{where}.{name}")
            extra = alt.get("additionalProperties")
            if isinstance(extra, dict):
                keys = alt.get("propertyNames", {"type": "string"})
                if not string_is_bounded({"type": "string", **keys}):
                    yield f"{where}{{key}}"
                yield from unbounded_strings(doc, extra, f"{where}{{value}}")
        elif kind is None:
            yield f"{where} (no type)"


def open_objects(doc: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """Every object under `schema` with named properties that would accept others too."""
    for alt in alternatives(doc, schema):
        if alt.get("type") == "array":
            yield from open_objects(doc, alt.get("items", {}), f"{where}[]")
        elif alt.get("type") == "object" or "properties" in alt:
            extra = alt.get("additionalProperties", True)
            if "properties" in alt and extra is not False:
                yield where
            if not alt.get("properties") and extra is True:
                yield f"{where} (an object of anything)"
            for name, prop in alt.get("properties", {}).items():
                yield from open_objects(doc, prop, f"{where}.{name}")
            if isinstance(extra, dict):
                yield from open_objects(doc, extra, f"{where}{{value}}")


def body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body's schema; None for none, and for a file (a CSV import is bounded by
    COLLECTIONS_IMPORT_MAX_BYTES, 413 beyond: tests/integration/test_imports.py)."""
    body = operation.get("requestBody")
    if body is None or "application/json" not in body["content"]:
        return None
    return body["content"]["application/json"]["schema"]


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem["status"] == status
    if field is not None:
        assert problem["field"] == field, problem
    return problem


@contextmanager
def receivable_unchanged(api: Api, ref: str = INVOICE) -> Iterator[None]:
    before = api.as_("auditor").get(f"/receivables/{ref}")
    yield
    after = api.as_("auditor").get(f"/receivables/{ref}")
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]


@contextmanager
def customer_unchanged(api: Api, customer_id: str = CUSTOMER["customer_id"]) -> Iterator[None]:
    before = api.as_("supervisor").get(f"/customers/{customer_id}")
    yield
    after = api.as_("supervisor").get(f"/customers/{customer_id}")
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]


# ---- every string bounded ------------------------------------------------------------


def test_every_string_a_request_carries_is_bounded_in_the_document(doc_api):
    doc = document(doc_api)
    unbounded = []
    for method, path, operation in operations(doc):
        for parameter in operation.get("parameters", []):
            where = f"{method} {path} {parameter['in']} {parameter['name']}"
            unbounded += unbounded_strings(doc, parameter["schema"], where)
        schema = body_schema(operation)
        if schema is not None:
            unbounded += unbounded_strings(doc, schema, f"{method} {path} body")
    assert unbounded == []


def test_the_walk_over_the_document_notices_an_unbounded_string():
    doc: dict[str, Any] = {"components": {"schemas": {"M": {"properties": {"a": {"type": "string"}}}}}}
    nested = {"type": "object", "properties": {"m": {"$ref": "#/components/schemas/M"}}}
    assert list(unbounded_strings(doc, nested, "body")) == ["body.m.a"]
    assert list(unbounded_strings(doc, {"type": "object", "additionalProperties": {"type": "integer"}}, "q")) == ["q{key}"]
    assert not pattern_is_bounded(r"^[^@\s]+@[^@\s]+$") and pattern_is_bounded(r"^[A-Z]{3}$")
    assert pattern_is_bounded(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$") and not pattern_is_bounded("[A-Z]{3}")


def test_every_request_body_refuses_fields_it_does_not_declare_in_the_document(doc_api):
    doc = document(doc_api)
    bodies = [(f"{m} {p}", body_schema(op)) for m, p, op in operations(doc) if body_schema(op) is not None]
    assert len(bodies) >= 20
    assert [where for name, schema in bodies for where in open_objects(doc, schema, name)] == []


def over_long(schema: dict[str, Any]) -> str:
    return "A" * (schema["maxLength"] + 1)


def test_every_over_long_path_or_query_string_is_422_naming_the_parameter(doc_api):
    """Derived from the document: each string parameter with a maxLength, one character over."""
    doc = document(doc_api)
    checked = 0
    for method, path, operation in operations(doc):
        if method != "GET":
            continue
        parameters = operation.get("parameters", [])
        defaults = {p["name"]: p["schema"].get("examples", ["x"])[0] for p in parameters if p["in"] == "path"}
        defaults.update({p["name"]: "reminder" for p in parameters if p["name"] == "kind"})
        for parameter in parameters:
            strings = [s for s in alternatives(doc, parameter["schema"]) if s.get("type") == "string" and "maxLength" in s]
            if parameter["in"] not in ("path", "query") or not strings:
                continue
            values = dict(defaults)
            values[parameter["name"]] = over_long(strings[0])
            url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
            params = {parameter["name"]: values[parameter["name"]]} if parameter["in"] == "query" else None
            response = doc_api.as_("supervisor").get(url, params=params)
            assert_problem(response, 422, parameter["name"])
            checked += 1
    assert checked >= 15


def test_an_over_long_body_string_is_422_naming_the_field(doc_api):
    for path, body, field in [
        ("/customers", {**CUSTOMER, "name": "名" * 201}, "name"),
        ("/customers", {**CUSTOMER, "contacts": {"address": "a" * 501}}, "contacts.address"),
        ("/customers", {**CUSTOMER, "contact_persons": [{"name": "n", "role": "r" * 101}]}, "contact_persons.0.role"),
        ("/customers", {**CUSTOMER, "timezone": "T" * 65}, "timezone"),
        ("/receivables", invoice(collector="c" * 129), "collector"),
        ("/receivables", invoice("I" * 129), "invoice_number"),
    ]:
        assert_problem(doc_api.as_("supervisor").post(path, json=body), 422, field)


def test_an_over_long_command_field_is_422_naming_it_and_changes_nothing(issued):
    api = issued
    for command, body, field in [
        ("raise-dispute", {"reason": "r" * 2001}, "reason"),
        ("assign-collector", {"collector": "c" * 129}, "collector"),
        ("record-contact", {"channel": "phone", "outcome": "reached", "note": "n", "next_step": "s" * 2001}, "next_step"),
        ("raise-dispute", {"reason": "r", "override": {"rule_id": "x" * 129, "reason": "r"}}, "override.rule_id"),
    ]:
        with receivable_unchanged(api):
            assert_problem(api.as_("supervisor").post(f"/receivables/{INVOICE}/{command}", json=body), 422, field)


def test_an_over_long_header_is_a_malformed_request_naming_the_header(issued):
    api = issued
    path = f"/receivables/{INVOICE}/raise-dispute"
    with receivable_unchanged(api):
        for headers, field in (({"Idempotency-Key": "k" * 256}, "idempotency-key"), ({"If-Match": '"' + "1" * 40 + '"'}, "if-match")):
            assert_problem(api.as_("supervisor").post(path, json={"reason": "r"}, headers=headers), 400, field)


# ---- no unknown fields (mass assignment) --------------------------------------------------


def test_registering_a_customer_with_a_field_it_does_not_take_is_422_and_registers_nothing(doc_api):
    for extra, field in [
        ({"version": 7}, "version"),
        ({"state": "closed"}, "state"),
        ({"notes": [{"topic": "t", "text": "x"}]}, "notes"),
        ({"contacts_masked": False}, "contacts_masked"),
        ({"contacts": {"email": "a@b.c", "verified": True}}, "contacts.verified"),
        ({"credit_limit": {"amount": "1.00", "currency": "CNY", "approved_by": "me"}}, "credit_limit.approved_by"),
    ]:
        response = doc_api.as_("supervisor").post("/customers", json={**CUSTOMER, **extra})
        assert_problem(response, 422, field)
    assert_problem(doc_api.as_("supervisor").get(f"/customers/{CUSTOMER['customer_id']}"), 404)


def test_patching_a_customer_with_a_field_it_does_not_take_is_422_and_changes_nothing(issued):
    api = issued
    customer = f"/customers/{CUSTOMER['customer_id']}"
    for patch, field in [
        ({"customer_id": "C-OTHER"}, "customer_id"),
        ({"version": 1}, "version"),
        ({"name": "New name", "notes": []}, "notes"),
        ({"contact_persons": [{"name": "n", "admin": True}]}, "contact_persons.0.admin"),
    ]:
        with customer_unchanged(api):
            assert_problem(api.as_("supervisor").patch(customer, json=patch), 422, field)


def test_a_command_with_a_field_it_does_not_take_is_422_and_changes_nothing(issued):
    for command, body, field in [
        ("record-payment", {"amount": "1.00", "method": "cash", "paid_on": "2026-03-02", "reference": "R", "state_after": "paid"}, "state_after"),
        ("raise-dispute", {"reason": "r", "actor_id": "supervisor-2"}, "actor_id"),
        ("raise-dispute", {"reason": "r", "policy_version": "0.0"}, "policy_version"),
        ("assign-collector", {"collector": "c", "version": 99}, "version"),
        ("send-reminder", {"channel": "email", "balance": "0.00"}, "balance"),
        ("fall-due", {"occurred_at": "2026-04-02T00:00:00Z"}, "occurred_at"),
        ("raise-dispute", {"reason": "r", "override": {"rule_id": "x", "reason": "y", "approved_by": "boss"}}, "override.approved_by"),
    ]:
        with receivable_unchanged(issued):
            assert_problem(issued.as_("supervisor").post(f"/receivables/{INVOICE}/{command}", json=body), 422, field)


def test_issuing_a_receivable_with_its_state_or_balance_is_422_and_issues_nothing(doc_api):
    api = doc_api
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    for extra, field in (({"state": "paid"}, "state"), ({"balance": "0.00"}, "balance"), ({"id": "x"}, "id")):
        assert_problem(api.as_("service").post("/receivables", json={**invoice(), **extra}), 422, field)
    assert_problem(api.as_("auditor").get(f"/receivables/{INVOICE}"), 404)


# ---- bodies: JSON only, size limit ------------------------------------------------------


def test_a_body_that_is_not_declared_json_is_415_and_changes_nothing(issued):
    api = issued
    body = json.dumps({"reason": "r"}).encode()
    with receivable_unchanged(api):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml", None):
            headers = {"Content-Type": content_type} if content_type else {}
            response = api.as_("supervisor").post(f"/receivables/{INVOICE}/raise-dispute", content=body, headers=headers)
            assert_problem(response, 415)
    ok = api.as_("supervisor").post(
        f"/receivables/{INVOICE}/raise-dispute", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200, ok.text


def padded(body: dict[str, Any], size: int) -> bytes:
    """The JSON of `body`, padded with spaces to exactly `size` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_a_body_exactly_at_the_limit_is_read_and_one_byte_over_is_413_declared_or_chunked(issued):
    api = issued
    limit = api.services.settings.max_body_bytes
    path = f"/receivables/{INVOICE}/raise-dispute"
    headers = {"Content-Type": "application/json"}

    def chunked(raw: bytes) -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield from (raw[i : i + 10_000] for i in range(0, len(raw), 10_000))

    with receivable_unchanged(api):
        for over in (padded({"reason": "r"}, limit + 1), padded({"reason": "r"}, limit + 50_000)):
            assert_problem(api.as_("supervisor").post(path, content=over, headers=headers), 413)
            assert_problem(api.as_("supervisor").post(path, content=chunked(over), headers=headers), 413)
    at_limit = padded({"reason": "r"}, limit)
    assert len(at_limit) == limit
    first = api.as_("supervisor").post(path, content=chunked(at_limit), headers=headers)
    assert first.status_code == 200, first.text
    again = api.as_("supervisor").post(path, content=at_limit, headers=headers)
    assert assert_problem(again, 422)["rule_id"] == "dispute.already_open"  # read and judged, not refused for its size


# ---- what schemathesis found (regressions) --------------------------------------------------


def test_every_error_response_is_documented_as_problem_details(doc_api):
    doc = document(doc_api)
    assert "HTTPValidationError" not in json.dumps(doc)
    assert doc["components"]["schemas"]["ProblemDetails"]["additionalProperties"] is True
    for method, path, operation in operations(doc):
        statuses = {int(s) for s in operation["responses"] if s.isdigit()}
        assert 400 in statuses, (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert 422 in statuses, (method, path)
        if operation.get("security"):
            assert {401, 403, 429} <= statuses, (method, path)
        if "{" in path:
            assert 404 in statuses, (method, path)
        if "requestBody" in operation:
            assert {413, 415} <= statuses, (method, path)
        for status, response in operation["responses"].items():
            if status.isdigit() and int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
    commands = doc["paths"]["/receivables/{receivable_ref}/record-payment"]["post"]["responses"]
    assert {"404", "409", "412", "503"} <= set(commands)
    assert {"404", "409"} <= set(doc["paths"]["/receivables"]["post"]["responses"])


def test_a_command_with_required_fields_documents_its_body_as_required_and_not_null(doc_api):
    doc = document(doc_api)
    payment = doc["paths"]["/receivables/{receivable_ref}/record-payment"]["post"]["requestBody"]
    assert payment["required"] is True
    assert payment["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RecordPayment"}
    fall_due = doc["paths"]["/receivables/{receivable_ref}/fall-due"]["post"]["requestBody"]
    assert not fall_due.get("required", False)


def test_a_null_body_for_a_command_that_needs_one_is_422(issued):
    with receivable_unchanged(issued):
        response = issued.as_("supervisor").post(
            f"/receivables/{INVOICE}/raise-dispute", content=b"null", headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 422, "body")


def test_headers_are_documented_with_the_formats_the_server_accepts(doc_api, issued):
    doc = document(doc_api)
    parameters = {p["name"]: p for p in doc["paths"]["/receivables/{receivable_ref}/raise-dispute"]["post"]["parameters"]}
    key = alternatives(doc, parameters["idempotency-key"]["schema"])[0]
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    if_match = alternatives(doc, parameters["if-match"]["schema"])[0]
    for value in ('"3"', "3", 'W/"3"'):
        assert re.match(if_match["pattern"], value)
    with receivable_unchanged(issued):
        for headers in ({"If-Match": "0" * 32}, {"If-Match": "B"}, {"Idempotency-Key": ""}):
            response = issued.as_("supervisor").post(f"/receivables/{INVOICE}/raise-dispute", json={"reason": "r"}, headers=headers)
            assert_problem(response, 400)


def test_a_number_for_a_date_or_an_instant_is_422_not_a_unix_time(issued):
    for url, field in [
        ("/audit/export?to=0.5", "to"),
        ("/audit/export?from=1700000000", "from"),
        (f"/receivables/{INVOICE}?as_of=1700000000", "as_of"),
        ("/reports/aging?as_of=20000", "as_of"),
        ("/reports/kpis?from=0&to=2026-03-02", "from"),
    ]:
        assert_problem(issued.as_("supervisor").get(url), 422, field)
    assert_problem(issued.as_("service").post("/receivables", json=invoice("INV-2", issued_on=0)), 422, "issued_on")
    assert_problem(issued.as_("service").post("/receivables", json=invoice("INV-2", due_on=1775000000)), 422, "due_on")
    with receivable_unchanged(issued):
        payment = {"amount": "1.00", "method": "cash", "paid_on": 20260302, "reference": "R"}
        assert_problem(issued.as_("service").post(f"/receivables/{INVOICE}/record-payment", json=payment), 422, "paid_on")


def current_policy(api: Api) -> dict[str, Any]:
    return api.as_("auditor").get("/policy").json()["policy"]


def test_a_policy_document_is_read_strictly_and_without_nul(api):
    """On both databases: PostgreSQL text cannot hold NUL, and the policy is written into events."""
    before = current_policy(api)
    for changes, at_fault in [
        ({"legal_referral_requires_approval": 0}, "legal_referral_requires_approval"),
        ({"escalate_after_days": "40"}, "escalate_after_days"),
        ({"version": "v\u00002"}, "version"),
        ({"write_off_approver_roles": ["super\u0000visor"]}, "write_off_approver_roles.0"),
        ({"channels_by_state": {"over\u0000due": ["sms"]}}, "channels_by_state"),
        ({"write_off_approver_roles": ["r" * 65]}, "write_off_approver_roles.0"),
    ]:
        response = api.client.put("/policy", json={**before, "version": "2026.9", **changes}, headers=api.headers("supervisor"))
        problem = assert_problem(response, 422)
        assert problem["rule_id"] == "policy.invalid"
        assert f"field '{at_fault}" in problem["detail"]
        assert current_policy(api) == before
    adopted = api.client.put("/policy", json={**before, "version": "2026.9"}, headers=api.headers("supervisor"))
    assert adopted.status_code == 200, adopted.text


def test_the_policy_body_is_documented_as_the_policy_document(doc_api):
    doc = document(doc_api)
    body = doc["paths"]["/policy"]["put"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert schema["additionalProperties"] is False
    assert {"version", "contact"} <= set(schema["required"])
    assert schema["properties"]["contact"]["additionalProperties"] is False
