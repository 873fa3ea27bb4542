"""The customer portal in Debian's chromium against the live app: a customer with only the link,
on a phone and on a desktop, sees what they owe and promises to pay; a plan they propose is
accepted by a collector in the console and shows on their page as their plan. The page runs no
script; any console or page error fails a test (conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ..integration.conftest import CUSTOMER, invoice
from .harness import VIEWPORT

PHONE = {"width": 390, "height": 844}


def seed(site: Any) -> str:
    """A customer with one receivable past due, and a link to their page (its path)."""
    service = site.api.as_("service")
    assert service.post("/customers", json=CUSTOMER).status_code == 201
    body = invoice("INV-P-1", issued_on="2026-01-20", due_on="2026-02-20")
    assert service.post("/receivables", json=body).status_code == 201
    assert service.post("/receivables/INV-P-1/fall-due", json={}).status_code == 200
    issued = site.api.as_("collector").post("/customers/C-SH-1/portal-link", json={})
    assert issued.status_code == 201
    return issued.json()["url"].removeprefix("http://testserver")


@pytest.fixture
def open_context(browser, site, browser_errors):
    """A new browser context with the given viewport and locale (closed after the test)."""
    contexts = []

    def make(viewport: dict[str, int], locale: str) -> Any:
        context = browser.new_context(base_url=site.url, viewport=viewport, locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        browser_errors.watch(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize(("viewport", "locale"), [(PHONE, "zh-CN"), (VIEWPORT, "en-US")], ids=["phone-zh", "desktop-en"])
def test_a_customer_with_the_link_sees_the_balance_and_promises_to_pay(site, open_context, viewport, locale):
    path = seed(site)
    page = open_context(viewport, locale)
    page.goto(path)
    invoice_section = page.locator("section#r-INV-P-1")
    assert invoice_section.locator("[data-balance]").inner_text() in ("¥1,200.50", "CN¥1,200.50")
    # Readable on a phone: nothing wider than the screen, the QR code within it.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    qr = page.locator("img[data-qr=transfer]").bounding_box()
    assert qr is not None and qr["width"] <= viewport["width"]
    invoice_section.locator("details:has(input[name=amount]) summary").click()
    page.fill("#amount-INV-P-1", "1200.50")
    page.fill("#promised_on-INV-P-1", "2026-03-10")
    with page.expect_navigation():
        page.locator("form:has(#amount-INV-P-1) button[type=submit]").click()
    assert page.locator("[role=status]").is_visible()
    promise = page.locator("section#r-INV-P-1 [data-promise]").inner_text()
    assert "1,200.50" in promise and ("2026年3月10日" in promise or "Mar 10, 2026" in promise)
    assert page.locator("details:has(input[name=amount])").count() == 0  # promised: nothing more to promise


def test_a_proposal_accepted_by_a_collector_in_the_console_shows_as_the_customers_plan(site, page, open_context):
    path = seed(site)
    customer = open_context(PHONE, "en-US")
    customer.goto(path)
    customer.locator("details:has(textarea[name=installments]) summary").click()
    customer.fill("#installments-INV-P-1", "2026-03-20 600.50\n2026-04-20 600.00")
    customer.fill("#note-i-INV-P-1", "salary comes on the 20th")
    with customer.expect_navigation():
        customer.locator("form:has(#installments-INV-P-1) button[type=submit]").click()
    assert customer.locator("[data-proposal=pending]").is_visible()

    site.sign_in(page, "collector")
    page.goto("/console/receivables/INV-P-1")
    assert "salary comes on the 20th" in page.locator(".proposal").inner_text()
    form = page.locator("form[data-command=accept_installment_proposal]")
    page.locator("details:has(form[data-command=accept_installment_proposal]) summary").click()
    with page.expect_navigation():
        form.locator("[type=submit]").click()
    # Every action on the receivable's timeline, the customer's with their own actor and role.
    rows = page.locator("section.timeline tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].slice(2, 5).map(c => c.innerText.trim()))"
    )
    assert ["InstallmentPlanProposed", "customer:C-SH-1", "customer"] in rows
    assert ["InstallmentProposalAccepted", "collector-1", "collector"] in rows
    assert ["InstallmentPlanAgreed", "collector-1", "collector"] in rows

    customer.reload()
    plan = customer.locator("[data-plan]").inner_text()
    assert "Your installment plan" in plan and "600.50" in plan and "600.00" in plan
    assert customer.locator("[data-proposal=accepted]").is_visible()
