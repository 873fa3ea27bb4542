"""Signed checkpoints of every chain's head (issue 16, ADR 0061): what the hash chains alone
cannot see — a re-hashed tail, deleted last events, a deleted chain, the last event deleted
and another recorded — is named by verify once a checkpoint was taken before it, and a
checkpoint changed in the database does not check. Tampering is done with SQL on the store,
the way someone with database access would."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from collections_es.adapters.signing import new_key
from collections_es.application import audit
from collections_es.application.checkpoints import Head, merkle_root, root_of

from ..conftest import make_services
from .conftest import Api
from .test_audit import Store, cli, ok, pay, tell_story  # noqa: F401 - cli is a fixture

KEY = new_key()


def _signed(url: str, clock: Any) -> Iterator[tuple[Api, dict[str, str], str]]:
    services = make_services(url, clock, COLLECTIONS_SIGNING_KEY=KEY)
    api = Api(services)
    story = tell_story(api)
    first = ok(api.as_("auditor").post("/audit/checkpoints"), 201)
    assert (first["number"], first["up_to"], first["chains"], first["previous_root"]) == (1, 8, 4, None)
    yield api, story, url
    services.close()


@pytest.fixture
def signed(sqlite_url: str, clock: Any) -> Iterator[tuple[Api, dict[str, str], str]]:
    """The audit's story (8 chained events, 4 chains) on SQLite with a signing key, checkpoint 1 taken."""
    yield from _signed(sqlite_url, clock)


@pytest.fixture
def signed_both(database_url: str, clock: Any) -> Iterator[tuple[Api, dict[str, str], str]]:
    """The same on SQLite and on PostgreSQL."""
    yield from _signed(database_url, clock)


def verified(api: Api) -> dict[str, Any]:
    return ok(api.as_("auditor").get("/audit/verify"))


def kinds(report: dict[str, Any]) -> list[tuple[str, str | None, int]]:
    return [(b["kind"], b["aggregate_type"], b["version"]) for b in report["breaks"]]


def chain_of(api: Api, aggregate_type: str) -> str:
    document = ok(api.as_("auditor").get("/audit/checkpoints/1"))
    return next(h["aggregate_id"] for h in document["heads"] if h["aggregate_type"] == aggregate_type)


def test_a_clean_store_verifies_against_its_checkpoint(signed, cli) -> None:
    api, _, url = signed
    report = verified(api)
    assert report["ok"] is True
    assert report["checkpoint"]["number"] == 1 and report["checkpoint"]["compared"] is True
    assert report["checkpoint"]["signature_checked"] is True
    result = cli(url, "verify")  # without the key in this shell: compared, the signature not checked, said so
    assert result.exit_code == 0, result.output
    assert "checkpoint 1 (log up to 8, 4 chains): compared" in result.output
    assert "signature was not checked" in result.output


def test_a_re_hashed_tail_is_invisible_to_the_chain_and_named_by_the_checkpoint(signed_both) -> None:
    from collections_es.domain.trail import stored_event_hash

    api, story, _ = signed_both
    services, store = api.services, Store(api.services.engine)
    topic, _ = store.row(story["A"], 4)  # the last event: no later link to break
    forged = next(e for e in services.app.events.get(uuid.UUID(story["A"])) if e.originator_version == 4)
    object.__setattr__(forged, "amount", Decimal("20.00"))
    object.__setattr__(forged, "hash", stored_event_hash(forged))
    store.write(story["A"], 4, state=services.app.mapper.to_stored_event(forged).state, topic=topic)

    assert audit.verify(services.app).ok is True  # the chain alone: valid
    report = verified(api)
    assert kinds(report) == [("rehashed", "Receivable", 4)]
    assert report["first_break"]["receivable_id"] == story["A"] and "re-hashed" in report["first_break"]["detail"]
    # The next checkpoint goes on from the last one's heads: the forgery never enters it.
    assert ok(api.as_("auditor").post("/audit/checkpoints"), 201)["number"] == 2
    again = verified(api)
    assert again["checkpoint"]["number"] == 2 and kinds(again) == [("rehashed", "Receivable", 4)]
    # Events after the last checkpoint are checked before a checkpoint vouches for them.
    ok(api.as_("service").post("/receivables/INV-B/record-payment", json=pay("10.00", "P-3")))
    _, state = store.row(story["B"], 2)
    store.write(story["B"], 2, state=state.replace(b'"10.00"', b'"90.00"'))
    refused = api.as_("auditor").post("/audit/checkpoints")
    assert refused.status_code == 409 and "does not verify" in refused.json()["detail"]


def test_deleted_last_events_and_a_deleted_chain_are_named(signed) -> None:
    api, _, _ = signed
    store = Store(api.services.engine)
    book, customer = chain_of(api, "PolicyBook"), chain_of(api, "Customer")
    store.delete(book, 2)  # the policy book's last event: no read model to compare with
    store.delete(customer, 1)  # the customer's only event

    assert audit.verify(api.services.app).ok is True  # the chains alone: nothing to see
    report = verified(api)
    assert sorted(kinds(report)) == [("chain_deleted", "Customer", 1), ("truncated", "PolicyBook", 2)]


def test_the_last_event_deleted_and_another_recorded_is_named(signed) -> None:
    api, story, _ = signed
    Store(api.services.engine).delete(story["A"], 4)
    ok(api.as_("service").post("/receivables/INV-A/record-payment", json=pay("50.00", "P-9")))  # a new version 4

    assert audit.verify(api.services.app).ok is True
    assert kinds(verified(api)) == [("rehashed", "Receivable", 4)]


def test_a_checkpoint_changed_in_the_database_does_not_check(signed) -> None:
    api, _, _ = signed
    with api.services.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_checkpoint_heads SET hash = :h WHERE version = 2"), {"h": "f" * 64})
    report = verified(api)
    assert report["checkpoint"]["compared"] is False
    assert [(b["kind"], b["detail"]) for b in report["breaks"]] == [
        ("checkpoint", "checkpoint 1: its heads do not make its Merkle root")
    ]
    with api.services.engine.begin() as conn:
        header = conn.execute(sa.text("SELECT header FROM audit_checkpoints")).scalar_one()
        conn.execute(sa.text("UPDATE audit_checkpoints SET header = :h"), {"h": header.replace('"up_to":8', '"up_to":9')})
    details = [b["detail"] for b in verified(api)["breaks"]]
    assert "checkpoint 1: its signature does not match its content" in details


def test_checkpoints_follow_each_other_and_are_taken_when_due(signed) -> None:
    api, _, _ = signed
    checkpoints = api.services.checkpoints
    assert checkpoints.take_if_due() is None  # an hour has not passed
    api.services.clock.at += timedelta(hours=1)
    assert checkpoints.take_if_due() is None  # nothing new in the log
    ok(api.as_("service").post("/receivables/INV-B/record-payment", json=pay("10.00", "P-3")))
    second = checkpoints.take_if_due()
    assert second is not None and (second.number, second.up_to, second.chains) == (2, 9, 4)
    first = ok(api.as_("auditor").get("/audit/checkpoints"))[0]
    assert second.previous_root == first["root"]
    assert [c["number"] for c in ok(api.as_("supervisor").get("/audit/checkpoints"))] == [1, 2]
    assert api.as_("collector").post("/audit/checkpoints").status_code == 403
    assert verified(api)["checkpoint"]["number"] == 2


def test_an_exported_checkpoint_is_checked_offline_and_compared_by_the_command_line(signed, cli, tmp_path) -> None:
    api, story, url = signed
    document = ok(api.as_("auditor").get("/audit/checkpoints/1"))
    heads = [Head(h["aggregate_id"], h["aggregate_type"], h["version"], h["hash"]) for h in document["heads"]]
    assert root_of(heads) == document["checkpoint"]["root"]
    signed_bytes = json.dumps(document["checkpoint"], sort_keys=True, separators=(",", ":")).encode()
    from collections_es.adapters.signing import is_valid, load_public_pem

    assert is_valid(load_public_pem(document["public_key"]), base64.b64decode(document["signature"]), signed_bytes)
    exported = tmp_path / "checkpoint-1.json"
    exported.write_text(json.dumps(document), encoding="utf-8")

    Store(api.services.engine).delete(story["A"], 4)
    with api.services.engine.begin() as conn:  # and the checkpoints kept in the database with it
        conn.execute(sa.text("DELETE FROM audit_checkpoint_heads"))
        conn.execute(sa.text("DELETE FROM audit_checkpoints"))
    result = cli(url, "verify", "--checkpoint", str(exported))
    assert result.exit_code == 1, result.output
    assert "truncated at Receivable" in result.output and "version 4" in result.output


def test_no_checkpoint_is_taken_without_a_signing_key(sqlite_url: str, clock: Any) -> None:
    api = Api(make_services(sqlite_url, clock))
    refused = api.as_("auditor").post("/audit/checkpoints")
    assert refused.status_code == 409 and "COLLECTIONS_SIGNING_KEY" in refused.json()["detail"]
    assert api.services.checkpoints.take_if_due() is None
    assert verified(api)["checkpoint"] is None
    api.services.close()


def test_the_merkle_root_is_rfc_6962s() -> None:
    import hashlib

    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    a, b, c = (h(b"\x00" + x) for x in (b"a", b"b", b"c"))
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root([a]) == a.hex()
    assert merkle_root([a, b, c]) == h(b"\x01" + h(b"\x01" + a + b) + c).hex()
