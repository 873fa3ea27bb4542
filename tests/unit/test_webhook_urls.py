"""The webhook URL rule (ADR 0045): http(s) only, and every address the host resolves to
public, unless private addresses are allowed. The resolver is a fake: no DNS here."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from collections_es.application.webhooks import check_url
from collections_es.domain.errors import RuleViolationError


def resolving(*addresses: str) -> Any:
    def resolve(host: str, port: int, **kw: Any) -> list[Any]:
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


def refused(url: str, resolve: Any) -> RuleViolationError:
    with pytest.raises(RuleViolationError) as caught:
        check_url(url, allow_private=False, resolve=resolve)
    assert caught.value.field == "url"
    return caught.value


def test_a_host_with_only_public_addresses_is_accepted() -> None:
    check_url("https://erp.example.com/hooks", allow_private=False, resolve=resolving("93.184.216.34", "2606:2800:220:1::1"))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.8", "172.16.4.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "224.0.0.1"])
def test_a_host_resolving_to_a_non_public_address_is_refused(address: str) -> None:
    error = refused("https://hooks.example.com/x", resolving("93.184.216.34", address))
    assert error.rule_id == "webhook.url_not_public"


def test_a_host_that_does_not_resolve_is_refused() -> None:
    assert refused("https://nowhere.invalid/x", resolving()).rule_id == "webhook.url_unresolved"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "https:///no-host", "example.com/x",
                                 "http://[::1/x"])
def test_only_http_and_https_urls_with_a_host_are_taken(url: str) -> None:
    assert refused(url, resolving("93.184.216.34")).rule_id == "webhook.url_invalid"


def test_the_setting_allows_private_addresses_without_resolving() -> None:
    check_url("http://127.0.0.1:8080/x", allow_private=True, resolve=resolving())
