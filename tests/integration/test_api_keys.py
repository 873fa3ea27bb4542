"""API keys (ADR 0005): `collections-es keys add|list|revoke`; only a SHA-256 of each
token is stored; listing shows no secret; a key added or revoked by another process
is honoured by a running API within COLLECTIONS_API_KEY_CACHE_SECONDS (ADR 0064)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from collections_es.adapters.api_keys import api_keys
from collections_es.application.clock import FixedClock
from collections_es.cli import app as cli_app
from collections_es.config import get_settings

from ..conftest import START, make_services
from .conftest import Api

CLI = Path(sys.executable).with_name("collections-es")


@pytest.fixture
def cli(database_url: str, monkeypatch) -> Iterator[Callable[..., object]]:
    """`cli(*args)` runs the command line in this process with DATABASE_URL set."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli_app, list(args))
    get_settings.cache_clear()


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    services = make_services(database_url, FixedClock(START))
    yield Api(services)
    services.close()


def add_key(cli, actor: str, role: str) -> str:
    result = cli("keys", "add", "--actor", actor, "--role", role)
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("ces_") and len(token) > 40
    return token


def key_id(api: Api, actor: str) -> int:
    (key,) = [k for k in api.services.keys.list() if k.actor == actor]
    return key.id


def test_only_a_sha256_of_each_token_is_stored(database_url, cli, api):
    tokens = [add_key(cli, f"erp-{i}", "service") for i in range(3)]
    with api.services.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys)).all()
    stored = " ".join(str(value) for row in rows for value in row)
    digests = {row.token_sha256 for row in rows}
    for token in tokens:
        assert token not in stored and token[4:] not in stored
        assert hashlib.sha256(token.encode()).hexdigest() in digests
    if database_url.startswith("sqlite:///"):
        # The raw database file and its write-ahead log, as a thief who copied them would read them.
        path = Path(database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        assert raw, "the database file was read"
        for token in tokens:
            assert token[4:].encode() not in raw
            assert hashlib.sha256(token.encode()).hexdigest().encode() in raw


def test_listing_the_keys_shows_who_and_which_role_and_no_secret(cli, api):
    token = add_key(cli, "erp", "service")
    assert cli("keys", "revoke", str(key_id(api, "erp"))).exit_code == 0
    add_key(cli, "erp", "service")
    listed = cli("keys", "list")
    assert listed.exit_code == 0
    lines = [line.split("\t") for line in listed.output.splitlines() if "\terp\t" in line]
    assert [(actor, role, state.split(" ")[0]) for _, actor, role, state in lines] == [
        ("erp", "service", "revoked"), ("erp", "service", "active")
    ]
    digest = hashlib.sha256(token.encode()).hexdigest()
    for stored in api.services.keys.list():
        assert not hasattr(stored, "token_sha256")
    assert token[4:12] not in listed.output and digest[:12] not in listed.output


class Ticker:
    """Monotonic seconds that move only when told (the key cache's clock)."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def ticker(api: Api) -> Ticker:
    ticker = Ticker()
    api.services.keys.ticker = ticker
    return ticker


def test_a_key_revoked_by_the_command_line_in_another_process_is_refused_within_the_cache_seconds(
    database_url, cli, api, ticker, tmp_path
):
    assert api.services.keys.cache_seconds == 2.0, "the default"
    token = add_key(cli, "erp", "service")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/policy", headers=headers).status_code == 200, "a key added elsewhere works at once"
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [str(CLI), "keys", "revoke", str(key_id(api, "erp"))], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ticker.seconds += 1.9
    assert api.client.get("/policy", headers=headers).status_code == 200, "remembered for up to 2 s, no query"
    ticker.seconds += 0.1
    refused = api.client.get("/policy", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "invalid or revoked token"
    assert api.as_("service").get("/policy").status_code == 200, "other keys still work"


def test_a_key_revoked_through_another_services_instance_is_refused_while_the_app_keeps_serving(database_url, api, ticker):
    other = make_services(database_url, FixedClock(START))
    try:
        token = other.keys.add("batch", "collector", START)
        headers = {"Authorization": f"Bearer {token}"}
        assert api.client.get("/worklist", headers=headers).status_code == 200
        other.keys.revoke(key_id(api, "batch"), START)
        ticker.seconds += 2.0
        assert api.client.get("/worklist", headers=headers).status_code == 401
        assert api.as_("collector").get("/worklist").status_code == 200
    finally:
        other.close()


def test_a_key_revoked_through_this_process_is_refused_at_its_next_request(api, ticker):
    token = api.services.keys.add("batch", "collector", START)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/worklist", headers=headers).status_code == 200
    api.services.keys.revoke(key_id(api, "batch"), START)
    assert api.client.get("/worklist", headers=headers).status_code == 401, "no wait: this store forgets it at once"


def test_a_remembered_key_costs_no_query_and_an_unknown_token_is_never_remembered(api, ticker):
    token = api.services.keys.add("batch", "collector", START)
    headers = {"Authorization": f"Bearer {token}"}
    queries: list[str] = []
    listen = lambda conn, cursor, statement, *rest: queries.append(statement)  # noqa: E731
    sa.event.listen(api.services.engine, "before_cursor_execute", listen)
    try:
        for _ in range(3):
            assert api.services.keys.identify(token) is not None
        assert len([q for q in queries if "api_keys" in q]) == 1, queries
        for _ in range(2):
            assert api.services.keys.identify("ces_unknown") is None
        assert len([q for q in queries if "api_keys" in q]) == 3, "an unknown token is asked about every time"
    finally:
        sa.event.remove(api.services.engine, "before_cursor_execute", listen)
    later = make_services(api.services.settings.database_url, FixedClock(START), COLLECTIONS_API_KEY_CACHE_SECONDS=0)
    try:
        assert later.keys.cache_seconds == 0 and later.keys.identify(token) is not None
    finally:
        later.close()


def test_revoking_twice_or_an_unknown_key_and_adding_for_an_unknown_role_are_refused(cli, api):
    add_key(cli, "erp", "service")
    erp = key_id(api, "erp")
    assert cli("keys", "revoke", str(erp)).exit_code == 0
    again = cli("keys", "revoke", str(erp))
    assert again.exit_code == 2 and f"no active key {erp}" in again.output
    assert cli("keys", "revoke", "99999").exit_code == 2
    wrong = cli("keys", "add", "--actor", "x", "--role", "admin")
    assert wrong.exit_code == 2 and "unknown role 'admin'" in wrong.output
