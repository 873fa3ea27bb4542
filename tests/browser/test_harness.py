"""The browser harness itself, in Debian's chromium against the live app: the server answers, the
keys and a generated scenario reach the browser, errors on a page fail a test, screenshots are
written. The console's own page tests live beside this file."""

from __future__ import annotations

import json
import struct
from urllib.parse import parse_qs

import pytest
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from .harness import VIEWPORT, take_screenshot
from .scenario import RECEIVABLES, seed
from .screenshots import Shot, take


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_chromium_shows_what_the_live_app_answers_on_healthz(page, browser):
    response = page.goto("/healthz")
    assert response is not None and response.status == 200
    assert json.loads(page.locator("body").inner_text()) == {"status": "ok"}
    user_agent = page.evaluate("navigator.userAgent")
    assert "Chrome/" + browser.version.split(".")[0] in user_agent, user_agent


def test_the_generated_scenario_is_read_through_the_live_server_with_a_roles_key(browser, site):
    ids = seed(site)
    context = browser.new_context(base_url=site.url, extra_http_headers={"Authorization": f"Bearer {site.token('supervisor')}"})
    try:
        page = context.new_page()
        response = page.goto("/receivables?limit=50")
        assert response is not None and response.status == 200
        shown = page.locator("body").inner_text()
        for number in ids.values():
            assert number in shown
        assert len(ids) == len(RECEIVABLES)
        assert page.goto("/reports/kpis").status == 200  # type: ignore[union-attr]
    finally:
        context.close()
    anonymous = browser.new_context(base_url=site.url)
    try:
        assert anonymous.new_page().goto("/receivables").status == 401  # type: ignore[union-attr]
    finally:
        anonymous.close()


def test_an_allowed_console_error_is_collected_and_does_not_fail_the_test(page, browser_errors):
    page.goto("/healthz")
    browser_errors.allow("expected in this test")
    page.evaluate("console.error('expected in this test')")
    page.evaluate("0")
    assert browser_errors.seen == ["console.error: expected in this test"]


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="the harness must fail a test whose page throws")
def test_an_uncaught_page_error_fails_the_test(page):
    page.goto("/healthz")
    page.evaluate("setTimeout(() => { throw new Error('boom from the page') }, 0)")
    page.wait_for_timeout(50)


def test_a_screenshot_is_a_png_of_the_viewport_and_the_page_list_skips_what_is_not_served(page, browser, site, tmp_path):
    page.goto("/healthz")
    path = take_screenshot(page, tmp_path / "shots", "healthz", full_page=False)
    assert png_size(path.read_bytes()) == (VIEWPORT["width"], VIEWPORT["height"])

    done = take(site, browser, [Shot("health", "/healthz", None), Shot("nowhere", "/console/no-such-page", None)], tmp_path / "pages")
    (health, health_png, health_note), (nowhere, nowhere_png, nowhere_note) = done
    assert health_png == tmp_path / "pages" / "health.png" and health_note == "HTTP 200"
    assert png_size(health_png.read_bytes())[0] == VIEWPORT["width"]
    assert nowhere_png is None and "404" in nowhere_note
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["health.png"]


def test_sign_in_fills_the_token_field_and_follows_the_form_to_the_signed_in_page(page, site):
    """Against a stand-in form mounted for this test only (the console's own is tested with it)."""

    def form() -> HTMLResponse:
        return HTMLResponse('<form method="post"><input name="token" type="password"><button type="submit">Sign in</button></form>')

    async def submit(request: Request) -> RedirectResponse:
        [token] = parse_qs((await request.body()).decode())["token"]
        role = next(r for r, t in site.api.tokens.items() if t == token)
        return RedirectResponse(f"/_harness/in?role={role}", status_code=303)

    def signed_in(role: str) -> HTMLResponse:
        return HTMLResponse(f"<h1>signed in as {role}</h1>")

    app = site.api.client.app
    app.add_api_route("/_harness/login", form, methods=["GET"])
    app.add_api_route("/_harness/login", submit, methods=["POST"])
    app.add_api_route("/_harness/in", signed_in, methods=["GET"])
    site.sign_in(page, "auditor", path="/_harness/login")
    assert page.url == f"{site.url}/_harness/in?role=auditor"
    assert page.locator("h1").inner_text() == "signed in as auditor"
