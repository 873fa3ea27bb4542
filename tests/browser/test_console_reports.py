"""The report pages in Debian's chromium against the live app (aging, KPIs, compliance), on the
generated scenario: a supervisor sees each chart (an SVG with its bucket or month marks) and its
table, a finding's link opens the receivable's page at that event, and the zh-CN pages have
Chinese headings. A console error on any of these pages fails the test (the harness)."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.sync_api import expect

from .scenario import seed

NIGHT = datetime(2026, 3, 20, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai: outside the contact window


def _with_a_finding(site) -> dict[str, str]:
    """The scenario, and a collector's contact at night on the overdue receivable: a finding."""
    ids = seed(site)
    site.services.clock.at = NIGHT
    response = site.api.as_("collector").post(
        f"/receivables/{ids['overdue']}/record-contact",
        json={"channel": "phone", "outcome": "reached", "note": "called late", "next_step": "call Monday"},
    )
    assert response.status_code == 200, response.text
    assert [f["rule_id"] for f in response.json()["findings"]] == ["contact.outside_window"]
    return ids


def test_a_supervisor_sees_the_aging_chart_per_currency_and_its_table(page, site):
    seed(site)
    site.sign_in(page, "supervisor")
    page.goto("/console/reports/aging")
    expect(page.locator("h1")).to_have_text("Aging")
    charts = page.locator("svg.chart.bars")
    expect(charts).to_have_count(2)  # CNY and USD, never added
    for chart in charts.all():
        expect(chart).to_be_visible()
        expect(chart.locator("g.mark[data-bucket]")).to_have_count(7)
    bar = page.locator('section[data-currency="CNY"] g.mark[data-bucket="1-30"] rect')
    assert bar.bounding_box()["height"] > 5, "an overdue balance is a visible bar"
    expect(page.locator('section[data-currency="CNY"] table.buckets tbody tr')).to_have_count(7)
    page.select_option("#group_by", "collector")
    page.locator("form.pick button[type=submit]").click()
    expect(page).to_have_url("/console/reports/aging?group_by=collector&as_of=2026-03-20&currency=")
    expect(page.locator("section.aging-groups tbody tr")).to_have_count(3)  # collector-1 and collector-2 in CNY, collector-1 in USD
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == "aging-2026-03-20-collector.csv"


def test_a_supervisor_sees_the_kpis_month_by_month_in_charts_and_tables(page, site):
    seed(site)
    site.sign_in(page, "supervisor")
    page.goto("/console/reports/kpis")
    expect(page.locator("h1")).to_have_text("KPIs")
    expect(page.locator("section.kpi-period table.kpis")).to_be_visible()
    everyone = page.locator('section.kpi-series[data-collector=""][data-currency="CNY"]')
    for kpi in ("dso", "cei"):
        chart = everyone.locator(f'figure[data-kpi="{kpi}"] svg.chart.line')
        expect(chart).to_be_visible()
        expect(chart.locator("text.label")).to_have_count(12)  # April 2025 to March 2026
    expect(everyone.locator('svg circle.point[data-month="2026-03"]').first).to_be_visible()
    expect(everyone.locator("table.months tbody tr")).to_have_count(12)
    expect(page.locator('section.kpi-series[data-collector="collector-1"]').first).to_be_visible()


def test_a_findings_link_opens_the_receivable_page_at_that_event(page, site):
    _with_a_finding(site)
    site.sign_in(page, "supervisor")
    page.goto("/console/compliance/findings")
    expect(page.locator("h1")).to_have_text("Compliance findings")
    row = page.locator('section.findings tr[data-rule="contact.outside_window"]')
    expect(row).to_have_count(1)
    expect(page.locator('section.by-rule tr[data-rule="contact.outside_window"] td')).to_have_text("1")
    link = row.locator("a.to-event")
    href = link.get_attribute("href")
    assert href and "#v" in href
    link.click()
    anchor = href.split("#", 1)[1]
    expect(page).to_have_url(href)
    target = page.locator(f"tr#{anchor}")
    expect(target).to_be_in_viewport()
    expect(target).to_contain_text("called late")


def test_the_report_pages_in_chinese(page, site):
    _with_a_finding(site)
    site.sign_in(page, "supervisor")
    for path, heading in (("/console/reports/aging", "账龄"), ("/console/reports/kpis", "关键指标"),
                          ("/console/compliance/findings", "合规发现")):
        page.goto(f"{path}?lang=zh-CN")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator("header.top nav")).to_contain_text("账龄")
    expect(page.locator("section.by-rule h2")).to_have_text("按规则")
    expect(page.locator('section.findings tr[data-rule="contact.outside_window"]')).to_contain_text("在客户联系时段之外联系")
