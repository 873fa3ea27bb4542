"""Fixtures for tests in a real browser: Debian's chromium under Playwright for Python, against
the real app served by uvicorn on a loopback port (ADR 0042).

- `browser`: one chromium for the whole session.
- `site`: the app on a temporary SQLite file over a fixed clock, with one API key per role
  (`site.token("collector")`, `site.api.as_("service").post(...)` to set up data,
  `site.sign_in(page, role)` through the console's sign-in form).
- `page`: a new browser context per test (its own cookies), `base_url` the site, so
  `page.goto("/console/worklist")` works. Console errors and uncaught page errors fail the
  test; allow expected ones with `browser_errors.allow("substring")` or
  `@pytest.mark.allow_browser_errors("substring", ...)`.
- `take_screenshot(page, folder, name)` (from .harness) saves a PNG.

Every test using these is marked `browser` (`-m "not browser"` leaves them out). Without
chromium or playwright they skip, but under CI=true they fail: CI must run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import IN_CI
from .harness import VIEWPORT, BrowserErrors, Site, browser_unavailable, launched_chromium, running_site

HERE = Path(__file__).resolve().parent
BROWSER_FIXTURES = {"browser", "page", "site"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `browser` every test of this folder that uses the browser or the live site."""
    for item in items:
        if HERE in Path(item.path).resolve().parents and BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


def require_browser() -> None:
    reason = browser_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(reason + " (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian chromium for the session (a new context per test keeps tests apart)."""
    require_browser()
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    """The real app over a fixed clock at tests/conftest.py START, on a SQLite file in tmp_path."""
    require_browser()  # no server for a test that would skip anyway
    with running_site(tmp_path) as running:
        yield running


@pytest.fixture
def browser_errors(request) -> BrowserErrors:
    errors = BrowserErrors()
    for marker in request.node.iter_markers("allow_browser_errors"):
        errors.allow(*marker.args)
    return errors


@pytest.fixture
def page(browser, site: Site, browser_errors: BrowserErrors) -> Iterator[Any]:
    """A page in a new context (viewport 1280×800, en-US) whose relative URLs go to `site`."""
    context = browser.new_context(base_url=site.url, viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    browser_errors.watch(page)
    yield page
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """After the test body: console or page errors it did not allow fail it (in the call phase,
    so they count as the test's failure, not as a teardown error)."""
    result = yield
    errors: BrowserErrors | None = getattr(item, "funcargs", {}).get("browser_errors")
    page = getattr(item, "funcargs", {}).get("page")
    if errors is not None:
        if page is not None and not page.is_closed():
            try:
                page.evaluate("0")  # a round trip, so events still queued are delivered
            except Exception as exc:  # noqa: BLE001 - a crashed page is itself an error to report
                errors.seen.append(f"page unusable after the test: {exc}")
        unexpected = errors.unexpected()
        if unexpected:
            raise AssertionError("the browser reported errors:\n" + "\n".join(unexpected))
    return result
