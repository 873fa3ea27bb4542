"""The console in Debian's chromium against the live app, with a generated scenario (scenario.py):
signing in, every page the navigation offers each role, a collector's contact from the worklist
to the timeline, an auditor without forms, CSRF, escaping, zh-CN, the keyboard, the sandbox clock.
Any console or page error fails a test (conftest.py); the pages run no script at all."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from collections_es.api.present import resolve_id

from ..integration.conftest import CUSTOMER, invoice
from .harness import VIEWPORT, BrowserErrors, running_site
from .scenario import seed

ROLES_WITH_PAGES = ("collector", "supervisor", "auditor", "sales")


def nav_links(page: Any) -> list[str]:
    return page.locator("header.top nav a").evaluate_all("links => links.map(a => a.getAttribute('href'))")


def item_of(page: Any, number: str) -> Any:
    """The worklist item of a receivable, by its invoice number."""
    return page.locator("article.item", has=page.locator("h2 a", has_text=number))


def focused(page: Any) -> dict[str, str]:
    return page.evaluate(
        "() => { const e = document.activeElement; return {tag: e.tagName.toLowerCase(), id: e.id || '', "
        "name: e.getAttribute('name') || '', type: e.getAttribute('type') || '', text: (e.innerText || '').trim()} }"
    )


@pytest.mark.allow_browser_errors("status of 401 (Unauthorized)")  # the wrong key's answer, as chromium logs it
def test_a_wrong_key_shows_the_error_and_the_right_one_opens_the_console(page, site):
    page.goto("/console/worklist")
    assert page.url.endswith("/console/login?next=%2Fconsole%2Fworklist")
    page.fill("#token", "ces_this-is-not-a-key")
    with page.expect_navigation():
        page.click("form:has(#token) [type=submit]")
    assert page.get_by_role("alert").inner_text() == "This key is not valid, or it was revoked."
    page.fill("#token", site.token("collector"))
    with page.expect_navigation():
        page.press("#token", "Enter")
    assert page.url.endswith("/console/worklist")
    assert page.locator("h1").inner_text().startswith("Worklist")
    assert "collector-1" in page.locator("header .actor").inner_text()


@pytest.mark.parametrize("role", ROLES_WITH_PAGES)
def test_every_page_the_navigation_offers_renders_the_scenario(page, site, role):
    ids = seed(site)
    site.sign_in(page, role)
    links = nav_links(page)
    assert "/console/policy" in links
    if role in ("supervisor", "auditor"):
        assert "/console/audit/verify" in links
    for path in links:  # whatever pages exist: aging, KPIs, compliance are covered once merged
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert page.locator("main h1").first.is_visible(), path
        assert page.locator("script").count() == 0, f"{path}: the console runs no script"
        assert page.locator("header.top nav a[aria-current=page]").get_attribute("href") == path
    response = page.goto(f"/console/receivables/{ids['promised']}")
    assert response is not None and response.status == 200
    assert page.locator("svg.lifecycle .state.current").count() == 1
    assert page.locator(".timeline tbody tr").count() >= 3
    assert page.locator(".verification.ok").is_visible()


def test_the_audit_page_verifies_the_store_and_links_the_exports(page, site):
    ids = seed(site)
    site.sign_in(page, "auditor")
    page.goto("/console/audit/verify")
    with page.expect_navigation():
        page.click("#run-verify")
    assert page.locator("#verify-result").inner_text() == "The store verifies: every hash recomputes and every chain holds."
    with page.expect_download() as download:
        page.click("a[href='/console/audit/export?format=csv']")
    lines = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert lines[0].startswith("position,aggregate_id,") and any(ids["overdue"] in line for line in lines)
    page.goto("/console/policy")
    assert page.locator("h1").inner_text() == "Policy version 2026.1"


def test_a_collector_checks_the_window_logs_a_contact_and_sees_it_on_the_timeline(page, site):
    ids = seed(site)
    site.sign_in(page, "collector")
    item = item_of(page, ids["overdue"])
    item.locator("form.check select").select_option("phone")
    with page.expect_navigation():
        item.locator("form.check button").click()
    item = item_of(page, ids["overdue"])
    assert item.locator(".contact-check").inner_text().startswith("A contact by phone now breaks no rule.")
    item.locator("summary", has_text="record contact").click()
    form = item.locator("form[data-command=record_contact]")
    form.locator("select[name=channel]").select_option("phone")
    form.locator("select[name=outcome]").select_option("promised")
    form.locator("textarea[name=note]").fill("will pay on Monday, said the accountant")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.url.endswith("/console/worklist")
    assert page.locator(".flash.success").inner_text() == f"Recorded: record contact ({ids['overdue']})"
    page.click(f"article.item h2 a:text-is('{ids['overdue']}')")
    row = page.locator(".timeline tbody tr").last
    assert row.locator("td").nth(2).inner_text() == "ContactRecorded"
    assert row.locator("td").nth(3).inner_text() == "collector-1"
    assert row.locator("td.text").inner_text() == "will pay on Monday, said the accountant"
    assert "will pay on Monday" in page.locator("section.contacts").inner_text()


def test_an_auditor_sees_no_action_forms_on_a_receivable(page, site):
    ids = seed(site)
    site.sign_in(page, "auditor")
    page.goto(f"/console/receivables/{ids['overdue']}")
    assert page.locator("h1").inner_text().startswith(f"Receivable {ids['overdue']}")
    assert page.locator("form[method=post]").count() == 1  # signing out, nothing else
    assert page.locator("form.command, section.actions").count() == 0
    site.sign_in(page, "collector")
    page.goto(f"/console/receivables/{ids['overdue']}")
    assert page.locator("section.actions form.command").count() > 0, "the same page offers a collector its forms"


@pytest.mark.allow_browser_errors("status of 403 (Forbidden)")  # the refusal itself, as chromium logs it
def test_a_post_without_the_csrf_token_is_refused(page, site):
    ids = seed(site)
    site.sign_in(page, "collector")
    rid = str(resolve_id(ids["overdue"]))
    versions = len(list(site.services.app.history(resolve_id(ids["overdue"]))))
    refused = page.request.post(
        f"/console/receivables/{rid}/record-contact",
        form={"channel": "phone", "outcome": "reached", "note": "no token"},
        headers={"Accept-Language": "en"},
        max_redirects=0,
    )
    assert refused.status == 403 and "nothing was recorded" in refused.text()
    page.goto(f"/console/receivables/{ids['overdue']}")
    page.click("section.actions summary:text-is('record contact')")
    form = page.locator("section.actions form[data-command=record_contact]")
    form.locator("textarea[name=note]").fill("token removed")
    form.evaluate("f => f.querySelector('input[name=csrf]').remove()")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.locator("h1").inner_text() == "Forbidden"
    assert page.locator("p.status").inner_text() == "HTTP 403"
    assert len(list(site.services.app.history(resolve_id(ids["overdue"])))) == versions, "nothing was recorded"


def test_a_script_in_a_note_is_shown_as_text_and_never_runs(page, site):
    ids = seed(site)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    note = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    site.sign_in(page, "collector")
    page.goto(f"/console/receivables/{ids['overdue']}")
    page.click("section.actions summary:text-is('record contact')")
    form = page.locator("section.actions form[data-command=record_contact]")
    form.locator("textarea[name=note]").fill(note)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.goto(f"/console/receivables/{ids['overdue']}")
    assert page.locator(".timeline td.text", has_text="<script>").first.inner_text() == note
    assert page.locator("section.contacts tbody tr").last.locator("td.text").first.inner_text() == note
    assert page.locator("main script, main img").count() == 0
    page.wait_for_timeout(100)
    assert dialogs == []


def test_zh_cn_pages_render_chinese(page, site):
    ids = seed(site)
    site.sign_in(page, "supervisor")
    page.click("header .languages a[lang=zh-CN]")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text().startswith("工作清单")
    page.goto(f"/console/receivables/{ids['overdue']}")  # the choice is kept in the session
    assert page.locator("section.timeline h2").inner_text() == "时间线"
    for path, heading in (("/console/policy", "政策"), ("/console/audit/verify", "审计")):
        page.goto(path)
        assert page.locator("h1").inner_text().startswith(heading), path
    assert re.search(r"[\u4e00-\u9fff]", page.locator("header nav").inner_text())


def test_the_quick_contact_form_is_reached_and_sent_by_keyboard(page, site):
    ids = seed(site)
    site.sign_in(page, "collector")
    rid = str(resolve_id(ids["overdue"]))
    prefix = f"-{rid[:8]}-record_contact-"
    page.locator("body").focus()
    for _ in range(300):  # Tab from the top of the page to the item's quick contact form
        page.keyboard.press("Tab")
        now = focused(page)
        if now["tag"] == "summary" and now["text"] == "record contact" and page.evaluate(
            f"() => document.activeElement.closest('article').id === 'item-{rid}'"
        ):
            break
    else:
        pytest.fail("Tab never reached the quick contact form")
    page.keyboard.press("Enter")  # opens the form
    page.keyboard.press("Tab")
    assert focused(page)["id"].endswith(prefix + "channel")
    page.keyboard.type("email")  # a select's type-ahead
    page.keyboard.press("Tab")
    assert focused(page)["id"].endswith(prefix + "outcome")
    page.keyboard.press("Tab")
    assert focused(page)["id"].endswith(prefix + "note")
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Tab")
    assert focused(page) | {"id": ""} == {"tag": "button", "id": "", "name": "", "type": "submit", "text": "record contact"}
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".flash.success").inner_text() == f"Recorded: record contact ({ids['overdue']})"
    entries = site.api.as_("auditor").get(f"/receivables/{ids['overdue']}/history").json()
    assert entries[-1]["type"] == "ContactRecorded" and entries[-1]["data"]["note"] == "typed without a mouse"
    assert entries[-1]["data"]["channel"] == "email"


def test_the_sandbox_clock_is_moved_from_its_page_and_lists_what_fired(browser, tmp_path):
    with running_site(tmp_path, COLLECTIONS_CLOCK="sandbox") as site:
        site.api.as_("supervisor").post("/customers", json=CUSTOMER)
        created = site.api.as_("service").post("/receivables", json=invoice())
        assert created.status_code == 201, created.text
        context = browser.new_context(base_url=site.url, viewport=VIEWPORT, locale="en-US")
        errors = BrowserErrors()  # as the `page` fixture watches its page (that one's site has a fixed clock)
        try:
            page = context.new_page()
            errors.watch(page)
            site.sign_in(page, "supervisor")
            assert "/console/sandbox/clock" in nav_links(page)
            page.goto("/console/sandbox/clock")
            before = site.services.sandbox.now()
            suggested = page.input_value("#advance-to")  # a day on from the clock's now, in the company's zone
            assert suggested == (before + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
            with page.expect_navigation():
                page.click("form[action$='/advance'] button")
            assert page.locator(".flash.success").inner_text().startswith("The clock was moved; timers fired:")
            assert site.services.sandbox.now().strftime("%Y-%m-%dT%H:%M") == suggested
            fired = page.locator("section.fired tbody tr")
            assert fired.count() >= 1 and "fall due" in page.locator("section.fired").inner_text()
            page.evaluate("0")
        finally:
            context.close()
        assert errors.unexpected() == []

