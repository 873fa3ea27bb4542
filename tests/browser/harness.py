"""The browser harness: the real app on a loopback port, Debian's chromium driven by Playwright
for Python (ADR 0042). Used by tests/browser/conftest.py and tests/browser/screenshots.py.

Never `playwright install`: the browser is Debian's `chromium` (scripts/test.sh installs it),
found on PATH or at COLLECTIONS_CHROMIUM.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn

from collections_es.application.clock import FixedClock
from collections_es.bootstrap import Services

from ..conftest import START, make_services
from ..integration.conftest import Api

# Flags for a headless chromium that talks to nobody but the app under test. --no-sandbox:
# the tests run as root in a container, where chromium's sandbox cannot start.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str | None:
    """Debian's chromium: COLLECTIONS_CHROMIUM if set, else `chromium` on PATH."""
    return shutil.which(os.environ.get("COLLECTIONS_CHROMIUM", "chromium"))


def browser_unavailable() -> str | None:
    """None when the browser tests can run, else why not."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "chromium is not installed (as root: apt-get install chromium; scripts/test.sh does it)"
    return None


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Debian chromium under Playwright, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class LiveServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))  # the port is ours from here: no race with another process
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self, timeout: float = 15.0) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            if self._server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError(f"uvicorn did not start on {self.url}")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@dataclass
class Site:
    """The running app: `url`; `api`, the same app in-process with one API key per role
    (tests/integration/conftest.py `Api`: `site.api.as_("service").post(...)` to set up data,
    `site.api.tokens[role]` for a key); `services`, its composition root."""

    url: str
    api: Api
    services: Services
    ids: dict[str, str] = field(default_factory=dict)  # what a scenario made: name → receivable ref

    def token(self, role: str) -> str:
        return self.api.tokens[role]

    def sign_in(self, page: Any, role: str, *, path: str = "/console/login") -> None:
        """Sign `page`'s context in with the role's API key through the console's sign-in form
        (`GET/POST /console/login`, form field `token`, then a redirect into the console): fill
        the field, press the form's submit button, wait for the page it leads to."""
        page.goto(f"{self.url}{path}")
        form = page.locator("form:has(input[name=token])")  # not the page's other forms (search, language)
        form.locator("input[name=token]").fill(self.token(role))
        with page.expect_navigation():
            form.locator("[type=submit]").first.click()


@contextmanager
def running_site(folder: Path | None = None, *, at: datetime = START, **settings: Any) -> Iterator[Site]:
    """The real app (`create_app(build(Settings(...)))`) on a SQLite file in `folder` (a temporary
    one if None), over a fixed clock at `at` (tests move it: `site.services.clock.at = ...`), served
    on a free loopback port. `COLLECTIONS_CLOCK="sandbox"` in `settings` gives the sandbox clock
    instead (and its routes)."""
    with tempfile.TemporaryDirectory(prefix="collections-browser-") as tmp:
        db = Path(folder or tmp) / "collections.db"
        clock = None if settings.get("COLLECTIONS_CLOCK") == "sandbox" else FixedClock(at)
        services = make_services(f"sqlite:///{db}", clock, **settings)
        try:
            api = Api(services)
            server = LiveServer(api.client.app).start()  # one app: the keys and data of `api` are the server's
            try:
                yield Site(url=server.url, api=api, services=services)
            finally:
                server.stop()
        finally:
            services.close()


class BrowserErrors:
    """What a page reported as broken: console errors and uncaught page errors. A test expecting
    some calls `allow(substring)` (or is marked `@pytest.mark.allow_browser_errors("...")`)."""

    # Chromium asks for /favicon.ico by itself on a page that declares no icon (a JSON answer,
    # say); its 404 is the browser's guess, not the page's request. A declared icon is checked.
    ALWAYS_ALLOWED = ("/favicon.ico]",)

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[str] = list(self.ALWAYS_ALLOWED)

    def allow(self, *substrings: str) -> None:
        self.allowed.extend(substrings)

    def watch(self, page: Any) -> None:
        def on_console(message: Any) -> None:
            if message.type == "error":
                where = (message.location or {}).get("url") or ""
                seen = f"console.error: {message.text}" + (f" [{where}]" if where else "")
                # The browser's own guesses (see ALWAYS_ALLOWED) come when they come: never recorded.
                if not any(a in seen for a in self.ALWAYS_ALLOWED):
                    self.seen.append(seen)

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.seen.append(f"pageerror: {error}"))

    def unexpected(self) -> list[str]:
        return [e for e in self.seen if not any(a in e for a in self.allowed)]


def take_screenshot(page: Any, folder: Path, name: str, *, full_page: bool = True) -> Path:
    """Save what `page` shows as `<folder>/<name>.png` (the folder is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
