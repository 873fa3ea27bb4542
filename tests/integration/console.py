"""A browser's view of the console over FastAPI's TestClient: one signed-in client per role,
a movable wall clock for the sessions, and a way to read a form's CSRF token from a page."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from collections_es.api.app import create_app
from collections_es.application.access import ROLES
from collections_es.bootstrap import Services

WALL_START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class WallClock:
    """The sessions' clock, moved by tests."""

    def __init__(self) -> None:
        self.at = WALL_START

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class Console:
    """The app, a key per role, and a signed-in browser per role (`console.as_("collector")`)."""

    def __init__(self, services: Services, *, base_url: str = "http://testserver", lang: str = "en") -> None:
        self.services = services
        self.wall = WallClock()
        self.app = create_app(services, wall_clock=self.wall)
        self.base_url = base_url
        self.lang = lang
        now = services.clock.now()
        self.tokens = {role: services.keys.add(f"{role}-1", role, now) for role in ROLES}
        self.browsers: dict[str, TestClient] = {}

    def browser(self, **headers: str) -> TestClient:
        """A new browser, signed in as nobody."""
        client = TestClient(self.app, base_url=self.base_url, raise_server_exceptions=False, follow_redirects=False)
        client.headers["Accept-Language"] = self.lang
        client.headers.update(headers)
        return client

    def sign_in(self, client: TestClient, token: str) -> Any:
        page = client.get("/console/login")
        return client.post("/console/login", data={"token": token, "csrf": csrf_of(page.text)})

    def as_(self, role: str) -> TestClient:
        if role not in self.browsers:
            client = self.browser()
            response = self.sign_in(client, self.tokens[role])
            assert response.status_code == 303, response.text
            self.browsers[role] = client
        return self.browsers[role]

    def csrf(self, role: str) -> str:
        """The CSRF token of a role's session, as its pages' forms carry it."""
        return csrf_of(self.as_(role).get("/console/receivables?ref=x", follow_redirects=True).text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return unescape(found.group(1))


def text_of(html: str) -> str:
    """The page's text, tags removed and entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
