"""Fixtures for tests through the HTTP API (FastAPI's TestClient, no server)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from collections_es.api.app import create_app
from collections_es.application.access import ROLES
from collections_es.application.clock import SystemClock
from collections_es.bootstrap import Services

from ..conftest import make_services


class Api:
    """A TestClient with one API key per role: `api.as_("collector").post(...)`."""

    def __init__(self, services: Services, **app_options: Any) -> None:
        self.services = services
        self.client = TestClient(create_app(services, **app_options), raise_server_exceptions=False)
        now = services.clock.now()
        self.tokens = {role: services.keys.add(f"{role}-1", role, now) for role in ROLES}
        self.tokens["supervisor-2"] = services.keys.add("supervisor-2", "supervisor", now)

    def headers(self, who: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **(extra or {})}

    def as_(self, who: str) -> _As:
        return _As(self, who)


class _As:
    def __init__(self, api: Api, who: str) -> None:
        self.api = api
        self.who = who

    def get(self, path: str, **kw: Any):
        return self.api.client.get(path, headers=self.api.headers(self.who, kw.pop("headers", None)), **kw)

    def post(self, path: str, json: Any = None, **kw: Any):
        return self.api.client.post(path, json=json, headers=self.api.headers(self.who, kw.pop("headers", None)), **kw)

    def patch(self, path: str, json: Any = None, **kw: Any):
        return self.api.client.patch(path, json=json, headers=self.api.headers(self.who, kw.pop("headers", None)), **kw)


@pytest.fixture
def api(services: Services) -> Api:
    """The API over a fixed clock (tests move it with `api.services.clock.at = ...`)."""
    return Api(services)


@pytest.fixture
def frozen_api(database_url: str) -> Iterator[Api]:
    """The API over the system clock, for tests that freeze time with freezegun."""
    services = make_services(database_url, SystemClock())
    yield Api(services)
    services.close()


CUSTOMER = {
    "customer_id": "C-SH-1",
    "name": "上海示例贸易有限公司",
    "timezone": "Asia/Shanghai",
    "tier": "A",
    "preferred_channel": "email",
    "contacts": {"email": "zhang.wei@example.com", "phone": "13812345678", "address": "上海市浦东新区世纪大道100号"},
}


def invoice(number: str = "INV-2026-0001", **overrides: Any) -> dict[str, Any]:
    body = {
        "invoice_number": number,
        "customer_id": CUSTOMER["customer_id"],
        "amount": "1200.50",
        "currency": "CNY",
        "issued_on": "2026-03-02",
        "due_on": "2026-04-01",
        "collector": "collector-1",
    }
    body.update(overrides)
    return body
