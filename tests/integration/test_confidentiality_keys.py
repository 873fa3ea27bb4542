"""The cipher key (issue 5, confidentiality): validated when the settings load; a key that
does not fit the database (another key, no key for an encrypted one, a key for an
unencrypted one) stops the service, the server and every CLI command at start-up with
an error naming COLLECTIONS_CIPHER_KEY, never garbage or a 500 later."""

from __future__ import annotations

import base64

import pytest
from eventsourcing.cryptography import AESCipher
from pydantic import ValidationError
from typer.testing import CliRunner

from collections_es.adapters.cipher import CipherKeyError
from collections_es.application.service import Request
from collections_es.cli import app as cli_app
from collections_es.config import Settings, get_settings
from collections_es.domain.trail import Actor

from ..conftest import make_services
from .conftest import CUSTOMER

KEY = AESCipher.create_key(32)
OTHER_KEY = AESCipher.create_key(32)


@pytest.fixture
def cli(monkeypatch):
    """`cli(url, key, *args)` runs the command line with DATABASE_URL and COLLECTIONS_CIPHER_KEY."""

    def invoke(url: str, key: str | None, *args: str):
        monkeypatch.setenv("DATABASE_URL", url)
        if key is None:
            monkeypatch.delenv("COLLECTIONS_CIPHER_KEY", raising=False)
        else:
            monkeypatch.setenv("COLLECTIONS_CIPHER_KEY", key)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(cli_app, list(args))
        finally:
            get_settings.cache_clear()

    return invoke


def store(database_url: str, clock, key: str | None) -> None:
    """A database with a customer in it, written with `key` (or none)."""
    services = make_services(database_url, clock, COLLECTIONS_CIPHER_KEY=key)
    try:
        services.app.register_customer(Request(Actor("supervisor-1", "supervisor")), **CUSTOMER)
    finally:
        services.close()


# ---- the key's format ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("not a key!", "is not base64"),
        (base64.b64encode(b"x" * 20).decode(), "decodes to 20 bytes; an AES key is 16, 24 or 32 bytes"),
    ],
)
def test_a_malformed_key_is_refused_when_the_settings_load_naming_the_variable_but_not_the_key(key, says):
    with pytest.raises(ValidationError) as refused:
        Settings(COLLECTIONS_CIPHER_KEY=key)
    (error,) = refused.value.errors()
    assert "COLLECTIONS_CIPHER_KEY" in error["msg"] and says in error["msg"]
    assert key not in error["msg"]


def test_every_aes_key_size_is_accepted_and_an_empty_value_means_no_key():
    for size in (16, 24, 32):
        key = AESCipher.create_key(size)
        assert Settings(COLLECTIONS_CIPHER_KEY=f" {key}\n").cipher_key == key
    assert Settings(COLLECTIONS_CIPHER_KEY="").cipher_key is None


def test_a_malformed_key_stops_a_cli_command_with_exit_2_and_a_clear_error(sqlite_url, cli):
    result = cli(sqlite_url, "c2VjcmV0", "keys", "list")
    assert result.exit_code == 2
    assert "error: COLLECTIONS_CIPHER_KEY decodes to 6 bytes" in result.output
    assert "c2VjcmV0" not in result.output


def test_keys_cipher_prints_a_new_usable_key_and_how_to_use_it(cli, sqlite_url):
    result = cli(sqlite_url, None, "keys", "cipher")
    assert result.exit_code == 0
    key, *advice = result.output.splitlines()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert Settings(COLLECTIONS_CIPHER_KEY=key).cipher_key == key
    assert "COLLECTIONS_CIPHER_KEY" in "\n".join(advice)
    assert cli(sqlite_url, None, "keys", "cipher").output.splitlines()[0] != key  # a new one each time


# ---- the key against the database, at start-up -----------------------------------------


def test_the_right_key_opens_the_encrypted_database_and_reads_the_customer_back(database_url, clock):
    store(database_url, clock, KEY)
    services = make_services(database_url, clock, COLLECTIONS_CIPHER_KEY=KEY)
    try:
        assert services.app.get_customer(CUSTOMER["customer_id"]).contacts == CUSTOMER["contacts"]
    finally:
        services.close()


@pytest.mark.parametrize(
    ("written_with", "opened_with", "says"),
    [
        (KEY, OTHER_KEY, "COLLECTIONS_CIPHER_KEY does not decrypt this database's events"),
        (KEY, None, "this database's events are encrypted (or damaged): set COLLECTIONS_CIPHER_KEY"),
        (None, KEY, "COLLECTIONS_CIPHER_KEY is set but this database holds unencrypted events"),
    ],
    ids=["another-key", "no-key", "key-on-plaintext"],
)
def test_a_key_that_does_not_fit_the_database_stops_the_start(database_url, clock, cli, monkeypatch, written_with, opened_with, says):
    store(database_url, clock, written_with)

    with pytest.raises(CipherKeyError) as refused:
        make_services(database_url, clock, COLLECTIONS_CIPHER_KEY=opened_with)
    assert says in str(refused.value)

    for command in (["keys", "list"], ["tick"], ["project", "--once"], ["rebuild"], ["export", "-o", "-"]):
        result = cli(database_url, opened_with, *command)
        assert result.exit_code == 2, (command, result.output)
        assert f"error: {says}" in result.output, command

    import uvicorn

    def started(*args, **kwargs):  # pragma: no cover - reached only if the check were missing
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", started)
    result = cli(database_url, opened_with, "serve")
    assert result.exit_code == 2 and f"error: {says}" in result.output

    # verify still walks the log (a damaged first event must not hide the rest) and names the key.
    result = cli(database_url, opened_with, "verify")
    assert result.exit_code == 1
    assert "no stored event decodes; is COLLECTIONS_CIPHER_KEY the key" in result.output

    # Nothing was written by the refused starts: the right key still opens it.
    services = make_services(database_url, clock, COLLECTIONS_CIPHER_KEY=written_with)
    try:
        assert services.app.get_customer(CUSTOMER["customer_id"]).contacts == CUSTOMER["contacts"]
    finally:
        services.close()


def test_a_key_on_an_empty_database_is_adopted_and_then_required(database_url, clock, cli):
    store(database_url, clock, KEY)
    assert cli(database_url, KEY, "verify").exit_code == 0
    assert cli(database_url, None, "keys", "list").exit_code == 2
