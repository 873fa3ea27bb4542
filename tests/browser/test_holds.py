"""Holds in Debian's chromium (ADR 0052): a supervisor puts a receivable on hold from its
page, the page shows the hold, the worklist marks the item, and the release form ends it."""

from __future__ import annotations

from typing import Any

from .scenario import seed


def test_a_supervisor_holds_a_receivable_from_its_page_and_releases_it(page: Any, site: Any) -> None:
    ids = seed(site)
    site.sign_in(page, "supervisor")
    page.goto(f"/console/receivables/{ids['overdue']}")
    page.locator("section.actions summary", has_text="hold").first.click()
    form = page.locator("form[data-command=hold]")
    form.locator("textarea[name=reason]").fill("the customer's auditors are checking the account")
    form.locator("input[name=until]").fill("2026-04-01T09:00")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    shown = page.locator("p.hold").inner_text()
    assert shown.startswith("On hold: the customer's auditors are checking the account · until Apr 1, 2026")
    assert "placed by supervisor-1" in shown
    assert page.locator(".timeline tbody tr").last.locator("td").nth(2).inner_text() == "HoldPlaced"

    page.goto("/console/worklist")
    item = page.locator("article.item", has=page.locator("h2 a", has_text=ids["overdue"]))
    assert item.locator(".held").inner_text().startswith("On hold until Apr 1, 2026")

    page.goto(f"/console/receivables/{ids['overdue']}")
    page.locator("section.actions summary", has_text="release hold").click()
    form = page.locator("form[data-command=release_hold]")
    form.locator("textarea[name=reason]").fill("the audit is over")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.locator("p.hold").count() == 0
    assert site.api.as_("auditor").get(f"/receivables/{ids['overdue']}").json()["holds"] == []
