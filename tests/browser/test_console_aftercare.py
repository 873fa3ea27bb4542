"""The after-collection pages in Debian's chromium against the live app (docs/aftercare.md), on the
generated scenario plus a reason and a complaint: the reasons chart (a bar per reason of the
vocabulary) and its tables, the complaints list, the open complaint on the receivable's page,
the latest reason on the worklist, a revisit owed recorded from the worklist's form and shown on
the receivable's page; and the reasons page in Chinese."""

from __future__ import annotations

from playwright.sync_api import expect

from .scenario import SEEDED_AT, seed


def _with_a_reason_and_a_complaint(site) -> dict[str, str]:
    # Revisits owed from the settlement day to tier A: the scenario's invoice "paid" owes one.
    document = site.api.as_("supervisor").get("/policy").json()["policy"]
    document.update(version="2026.2", revisits={"tiers": ["A"], "after_days": 0, "within_days": 30})
    assert site.api.client.put("/policy", json=document, headers=site.api.headers("supervisor")).status_code == 200
    ids = seed(site)
    site.services.clock.at = SEEDED_AT
    api = site.api
    contact = {"channel": "phone", "outcome": "reached", "note": "called", "next_step": "call Monday",
               "reason_for_non_payment": "资金周转困难"}
    response = api.as_("collector").post(f"/receivables/{ids['overdue']}/record-contact", json=contact)
    assert response.status_code == 200, response.text
    version = response.json()["version"]
    complaint = {"channel": "phone", "text": "called during lunch", "severity": "high", "about_version": version}
    response = api.as_("customer_service").post(f"/receivables/{ids['overdue']}/record-complaint", json=complaint)
    assert response.status_code == 200, response.text
    return ids


def test_a_supervisor_sees_why_customers_do_not_pay_the_complaints_and_records_an_owed_revisit(page, site):
    ids = _with_a_reason_and_a_complaint(site)
    site.sign_in(page, "supervisor")
    page.goto("/console/reports/non-payment-reasons?from=2026-03-01&to=2026-03-31")
    expect(page.locator("h1")).to_have_text("Reasons for non-payment")
    chart = page.locator("svg.chart.bars")
    expect(chart.locator("g.mark[data-reason]")).to_have_count(8)  # the bundled vocabulary, and unclassified
    bar = chart.locator('g.mark[data-reason="cash_flow_difficulty"] rect')
    assert bar.bounding_box()["height"] > 5, "a recorded reason is a visible bar"
    expect(page.locator('table.reasons-totals tr[data-reason="cash_flow_difficulty"] td.num').first).to_have_text("1")
    expect(page.locator('section.reasons-group[data-key="A"]')).to_be_visible()  # the scenario's customer is tier A

    page.get_by_role("link", name="Complaints").click()
    row = page.locator("tr.complaint")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-collector", "collector-1")
    expect(row).to_contain_text("called during lunch")
    row.get_by_role("link").click()
    expect(page.locator("p.complaint")).to_contain_text("high")

    page.goto("/console/worklist")
    expect(page.locator(f"article.item:has-text('{ids['overdue']}') .latest-reason dd")).to_have_text("cash flow difficulty")
    row = page.locator("section.revisits tr.revisit")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(ids["paid"])
    row.locator("summary").click()
    row.locator("select[name=satisfaction]").select_option("4")
    row.locator("textarea[name=feedback]").fill("满意，希望延长账期")
    row.get_by_role("button", name="Record revisit").click()
    expect(page.locator("section.revisits")).to_have_count(0)
    page.goto(f"/console/receivables/{ids['paid']}")
    expect(page.locator("section.revisits tr.revisit")).to_contain_text("满意，希望延长账期")
    page.goto("/console/reports/kpis")  # satisfaction of the period's revisits, for the collector of the settlement
    expect(page.locator('section.satisfaction tr[data-satisfaction="collector-1"] td').first).to_have_text("1")

    page.goto("/console/reports/non-payment-reasons?from=2026-03-01&to=2026-03-31&lang=zh-CN")
    expect(page.locator("h1")).to_have_text("欠款原因分析")
    expect(page.locator('table.reasons-totals tr[data-reason="cash_flow_difficulty"] td').first).to_have_text("资金周转困难")

