"""Evidence bundles (issue 14, ADR 0046): a receivable's whole record in a zip that a third
party checks offline — every file's hash against the manifest, the hash chain recomputed,
the Ed25519 signature — and that fails the check for one altered byte in any file."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from collections_es.adapters.signing import Signer, load_private_key, new_key
from collections_es.application import evidence
from collections_es.cli import app as cli_app
from collections_es.config import Settings, get_settings

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice

KEY = new_key()
RECORD_FILES = ["history.jsonl", "limitation.json", "policies.json", "contacts.jsonl", "messages.jsonl"]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response


def tell(api: Api) -> None:
    """A receivable reminded, fallen due, followed up, contacted (an acknowledgement: the
    limitation period restarts), partly paid, escalated."""
    clock = api.services.clock
    ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
    ok(api.as_("service").post("/receivables", json=invoice("INV-EV-1")), 201)
    clock.at = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)
    ok(api.as_("service").post("/receivables/INV-EV-1/send-reminder", json={"channel": "email"}))
    clock.at = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)
    ok(api.as_("service").post("/receivables/INV-EV-1/fall-due"))
    ok(api.as_("service").post("/receivables/INV-EV-1/start-follow-up"))
    ok(api.as_("collector").post("/receivables/INV-EV-1/record-contact", json={
        "channel": "phone", "outcome": "acknowledged", "note": "will pay part this week",
    }))
    clock.at = datetime(2026, 4, 7, 2, 0, tzinfo=UTC)
    ok(api.as_("service").post("/receivables/INV-EV-1/record-payment", json={
        "amount": "200.00", "method": "bank_transfer", "paid_on": "2026-04-07", "reference": "P-EV-1",
    }))
    clock.at = datetime(2026, 6, 3, 2, 0, tzinfo=UTC)
    ok(api.as_("collector").post("/receivables/INV-EV-1/escalate", json={"reason": "two months overdue"}))


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> Iterator[Api]:
    """One story, in a service with a signing key (SQLite; the bundle reads only the store and read models)."""
    from collections_es.application.clock import FixedClock

    from ..conftest import START

    url = f"sqlite:///{tmp_path_factory.mktemp('evidence')}/collections.db"
    services = make_services(url, FixedClock(START), COLLECTIONS_SIGNING_KEY=KEY)
    api = Api(services)
    tell(api)
    yield api
    services.close()


@pytest.fixture(scope="module")
def bundle(signed: Api) -> bytes:
    response = ok(signed.as_("legal").get("/receivables/INV-EV-1/evidence"))
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="evidence-INV-EV-1.zip"' in response.headers["content-disposition"]
    return response.content


@pytest.fixture(scope="module")
def public_key(signed: Api) -> bytes:
    response = ok(signed.client.get("/audit/public-key"))  # public: no credentials
    assert response.headers["content-type"].startswith("application/x-pem-file")
    return response.content


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def rezip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_the_zip_holds_the_manifest_its_signature_the_record_and_the_letters_in_a_fixed_order(bundle):
    names = list(members(bundle))
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert names[2:7] == RECORD_FILES
    letters = names[7:]
    assert letters == sorted(letters) and all(n.startswith("letters/") for n in letters)
    # Reached: a reminder (before due), a dunning letter (past due), a final notice (escalated); no lawyer's letter.
    kinds = {n.split("/")[1].split(".")[0] for n in letters}
    assert kinds == {"reminder", "dunning", "final_notice"}
    assert {n.rsplit(".", 1)[1] for n in letters} == {"html", "pdf"}


def test_the_manifest_lists_every_file_with_size_and_sha256_and_the_verified_chain(bundle, signed):
    files = members(bundle)
    manifest = json.loads(files["manifest.json"])
    assert manifest["receivable"]["invoice_number"] == "INV-EV-1"
    assert manifest["exported_at"] == "2026-06-03T02:00:00Z"
    assert manifest["software"]["name"] == "collections-es" and manifest["software"]["version"]
    assert [f["name"] for f in manifest["files"]] == [n for n in files if not n.startswith("manifest.")]
    chain = manifest["chain"]
    assert chain["ok"] is True and chain["break_count"] == 0 and chain["checked_events"] == chain["head_version"] == 7
    history = [json.loads(line) for line in files["history.jsonl"].decode().splitlines()]
    assert [row["version"] for row in history] == list(range(1, 8)) and history[-1]["hash"] == chain["head_hash"]
    assert {"hash", "prev_hash", "type", "actor", "data", "hashed"} <= set(history[0])
    assert manifest["signature"]["public_key_sha256"] == signed.services.signer.fingerprint


def test_the_record_files_hold_messages_contacts_policies_and_the_limitation_with_its_interruptions(bundle):
    files = members(bundle)
    messages = [json.loads(line) for line in files["messages.jsonl"].decode().splitlines()]
    assert [m["kind"] for m in messages] == ["pre_due_reminder", "first_dunning"]
    assert all({"subject", "body", "channel", "status", "sent_at", "recipient"} <= set(m) for m in messages)
    assert messages[0]["recipient"] == CUSTOMER["contacts"]["email"]  # as stored
    contacts = [json.loads(line) for line in files["contacts.jsonl"].decode().splitlines()]
    assert [(c["outcome"], c["note"]) for c in contacts] == [("acknowledged", "will pay part this week")]
    policies = json.loads(files["policies.json"])
    assert policies and all({"version", "document", "adopted_at", "adopted_by"} <= set(p) for p in policies)
    record = json.loads(files["limitation.json"])
    assert [i["kind"] for i in record["interruptions"]] == ["acknowledgement", "acknowledgement"]
    assert [i["type"] for i in record["interruptions"]] == ["ContactRecorded", "PaymentRecorded"]
    assert record["started_on"] == "2026-04-07" and record["lapses_on"] == "2029-04-07"
    assert record["periods"][0]["started_on"] == "2026-04-02" and record["periods"][0]["started_by"] is None


def test_a_bundle_checks_offline_with_the_published_public_key(bundle, public_key):
    report = evidence.check(bundle, public_key)
    assert report.ok, report.problems
    assert any(line.startswith("chain: 7 events recomputed") for line in report.summary)
    assert any("signature: Ed25519, valid with the public key given" in line for line in report.summary)


def test_one_altered_byte_in_any_file_fails_the_check(bundle, public_key):
    files = members(bundle)
    assert evidence.check(rezip(files), public_key).ok  # re-zipping alone changes nothing
    for name, data in files.items():
        middle = len(data) // 2
        altered = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
        report = evidence.check(rezip(files | {name: altered}), public_key)
        assert not report.ok, name
        assert any(name in p or "signature" in p for p in report.problems), (name, report.problems)


def test_a_re_hashed_history_still_fails_against_the_manifest_and_a_dropped_file_is_named(bundle, public_key):
    files = members(bundle)
    report = evidence.check(rezip({k: v for k, v in files.items() if k != "contacts.jsonl"}), public_key)
    assert report.problems == ["contacts.jsonl: listed in the manifest but missing"]
    report = evidence.check(rezip(files | {"extra.txt": b"x"}), public_key)
    assert report.problems == ["extra.txt: not listed in the manifest"]


def test_a_wrong_public_key_fails_the_check(bundle):
    other = Signer(load_private_key(new_key())).public_pem.encode()
    report = evidence.check(bundle, other)
    assert not report.ok and any("signature does not verify" in p for p in report.problems)


def test_the_same_record_at_the_same_instant_gives_the_same_bytes(signed, bundle):
    again = ok(signed.as_("auditor").get("/receivables/INV-EV-1/evidence")).content
    assert again == bundle


def test_collectors_and_the_other_roles_without_need_get_403(signed):
    for role in ("collector", "sales", "customer_service", "service"):
        response = signed.as_(role).get("/receivables/INV-EV-1/evidence")
        assert response.status_code == 403, role
    assert signed.as_("supervisor").get("/receivables/INV-NOBODY/evidence").status_code == 404


def test_without_a_signing_key_bundles_are_unsigned_and_no_public_key_is_published(database_url, clock):
    services = make_services(database_url, clock)
    try:
        api = Api(services)
        ok(api.as_("supervisor").post("/customers", json=CUSTOMER), 201)
        ok(api.as_("service").post("/receivables", json=invoice("INV-EV-2")), 201)
        assert api.client.get("/audit/public-key").status_code == 404
        data = ok(api.as_("auditor").get("/receivables/INV-EV-2/evidence")).content
    finally:
        services.close()
    assert "manifest.sig" not in members(data)
    report = evidence.check(data)
    assert report.ok and "signature: none (the bundle is not signed)" in report.summary
    assert not evidence.check(data, Signer(load_private_key(KEY)).public_pem.encode()).ok


def test_a_bad_signing_key_stops_start_up_naming_the_setting_never_the_value(monkeypatch, tmp_path):
    secret = "bm90IGEga2V5IGF0IGFsbA=="
    with pytest.raises(ValidationError) as caught:
        Settings(DATABASE_URL=f"sqlite:///{tmp_path}/x.db", COLLECTIONS_SIGNING_KEY=secret)
    assert "COLLECTIONS_SIGNING_KEY" in str(caught.value) and secret not in str(caught.value).split("input_value")[0]
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    monkeypatch.setenv("COLLECTIONS_SIGNING_KEY", secret)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["evidence", "INV-1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and "COLLECTIONS_SIGNING_KEY" in result.output and secret not in result.output


def test_the_command_line_writes_a_bundle_and_checks_it_offline(signed, public_key, monkeypatch, tmp_path):
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_key)
    runner = CliRunner()
    monkeypatch.setenv("DATABASE_URL", str(signed.services.database.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("COLLECTIONS_SIGNING_KEY", KEY)
    get_settings.cache_clear()
    try:
        out = tmp_path / "bundle.zip"
        result = runner.invoke(cli_app, ["evidence", "INV-EV-1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "chain intact over 7 events, signed (Ed25519)" in result.output
        result = runner.invoke(cli_app, ["evidence", "--check", str(out), "--public-key", str(key_file)])
        assert result.exit_code == 0, result.output
        assert "is sound" in result.output
        files = members(out.read_bytes())
        history = files["history.jsonl"]
        tampered = tmp_path / "tampered.zip"
        tampered.write_bytes(rezip(files | {"history.jsonl": history.replace(b"200.00", b"900.00", 1)}))
        result = runner.invoke(cli_app, ["evidence", "--check", str(tampered), "--public-key", str(key_file)])
        assert result.exit_code == 1 and "history.jsonl" in result.output
        keygen = runner.invoke(cli_app, ["keys", "signing"])
        assert keygen.exit_code == 0 and load_private_key(keygen.stdout.splitlines()[0])
    finally:
        get_settings.cache_clear()
