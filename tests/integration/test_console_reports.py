"""The console's report pages over HTTP — aging, KPIs, compliance findings — on a generated
history (`collections_es.demo.build` over a sandbox clock): each page shows the figures its API
route gives for the same query, its forms filter, the aging CSV is the API's, a collector sees
their own findings only, every finding links to its event on the receivable's timeline, free
text is escaped and the pages speak zh-CN. Which role may open which page is checked in
test_access_matrix.py (these routes are among the console's there)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from collections_es import demo
from collections_es.application.clock import SandboxClock
from collections_es.console import i18n
from collections_es.console.reports import BUCKET_LABELS, KPIS, Figures, month_periods

from ..conftest import make_services
from .console import Console, text_of

END = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # the demo's last day: 09:00 in Shanghai
SCRIPT = "<script>alert('x')</script>"
EN = i18n.Formats("en")
FIGURES = Figures("en")


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[Console]:
    """A demo history of 150 days to END, a contact exception's contact (an `override.used`
    finding whose reason holds markup), and a console with one signed-in browser per role."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reports')}/collections.db"
    services = make_services(url, SandboxClock(demo.start_for(END, 150)))
    try:
        demo.build(services, customers=8, days=150, seed=7)
        console = Console(services)
        _contact_under_an_exception(console)
        yield console
    finally:
        services.close()


def api_get(console: Console, path: str, role: str = "supervisor", **params: Any) -> Any:
    response = console.browser(Authorization=f"Bearer {console.tokens[role]}").get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def page(console: Console, path: str, role: str = "supervisor", **params: Any) -> str:
    response = console.as_(role).get(path, params={"lang": "en", **params})
    assert response.status_code == 200, response.text[:2000]
    return response.text


def _contact_under_an_exception(console: Console) -> None:
    """A supervisor grants a contact exception whose reason holds markup; the collector calls
    outside the window under it: an `override.used` finding (the reason in its detail)."""
    sh = [r for r in api_get(console, "/receivables", limit=200, collector="collector-1").json()["items"]
          if r["state"] in ("overdue_escalated", "following_up", "promised") and r["collector"] == "collector-1"]
    assert sh, "the demo gives collector-1 an open receivable"
    rid = sh[0]["id"]
    client = console.browser(Authorization=f"Bearer {console.tokens['supervisor']}")
    now = console.services.clock.now()
    granted = client.post(f"/receivables/{rid}/grant-contact-exception", json={
        "channel": "phone", "reason": f"{SCRIPT} call back tonight", "valid_until": (now + timedelta(days=2)).isoformat()})
    assert granted.status_code == 200, granted.text
    for hours in range(1, 48):  # the first hour outside the customer's contact window
        console.services.sandbox.advance(now + timedelta(hours=hours))
        called = console.browser(Authorization=f"Bearer {console.tokens['collector']}").post(
            f"/receivables/{rid}/record-contact", json={"channel": "phone", "outcome": "reached", "note": "late call", "next_step": "wait"})
        assert called.status_code == 200, called.text
        if api_get(console, "/compliance/findings", rule_id="override.used").json():
            return
    raise AssertionError("no hour outside the contact window in two days")


def section(html: str, css_class: str) -> str:
    found = re.search(rf'<section class="{re.escape(css_class)}"[^>]*>(.*?)</section>', html, flags=re.DOTALL)
    assert found, f"no section {css_class}"
    return found.group(1)


def rows(html: str, where: str = "tbody") -> list[list[str]]:
    """The text of each cell of each row in the `tbody` (or `tfoot`) parts of `html`."""
    out = []
    for part in re.findall(rf"<{where}>(.*?)</{where}>", html, flags=re.DOTALL):
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", part, flags=re.DOTALL):
            out.append([text_of(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.DOTALL)])
    return out


# ---- aging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [{}, {"group_by": "collector"}, {"group_by": "customer", "currency": "USD"}, {"group_by": "collector", "as_of": "2026-09-30"}],
)
def test_the_aging_page_shows_the_api_figures_a_chart_per_currency_and_the_table(console, query):
    expected = api_get(console, "/reports/aging", **query).json()
    html = page(console, "/console/reports/aging", **query)
    assert len(expected["totals"]) >= 1
    assert html.count('<svg class="chart bars"') == len(expected["totals"]), "one chart per currency, never added"
    for total in expected["totals"]:
        cur = total["currency"]
        block = re.search(rf'<section class="aging-currency" data-currency="{cur}">(.*?)</section>', html, flags=re.DOTALL).group(1)
        assert block.count("data-bucket=") == 2 * len(BUCKET_LABELS), "a bar and a table row per bucket"
        assert rows(block) == [[BUCKET_LABELS[b["bucket"]], EN.money(b["balance"], cur), str(b["count"])] for b in total["buckets"]]
        for b in total["buckets"]:
            assert f"<title>{BUCKET_LABELS[b['bucket']]}: {EN.money(b['balance'], cur)} ({b['count']})</title>" in block
    keyed = expected["group_by"] != "currency"
    table = section(html, "aging-groups")
    assert rows(table) == [
        ([g["key"] or "unassigned"] if keyed else []) + [g["currency"], *(EN.money(b["balance"], g["currency"]) for b in g["buckets"]),
                                                         EN.money(g["balance"], g["currency"]), str(g["count"])]
        for g in expected["groups"]
    ]
    if keyed:
        assert rows(table, "tfoot") == [
            ["Total", t["currency"], *(EN.money(b["balance"], t["currency"]) for b in t["buckets"]),
             EN.money(t["balance"], t["currency"]), str(t["count"])] for t in expected["totals"]
        ]
    assert EN.day(date.fromisoformat(expected["as_of"])) in text_of(html)


def test_the_aging_form_filters_by_currency_and_keeps_every_currency_to_choose(console):
    html = page(console, "/console/reports/aging", currency="USD", group_by="customer")
    assert 'data-currency="USD"' in html and 'data-currency="CNY"' not in html
    assert '<option value="CNY">CNY</option>' in html and '<option value="USD" selected>USD</option>' in html
    assert '<option value="customer" selected>' in html


def test_the_aging_csv_is_the_apis_for_the_same_query_with_the_session(console):
    query = {"group_by": "collector", "as_of": "2026-10-31"}
    html = page(console, "/console/reports/aging", **query)
    link = re.search(r'<a href="([^"]+)" download>', html).group(1).replace("&amp;", "&")
    assert link.startswith("/console/reports/aging?") and "format=csv" in link
    served = console.as_("collector").get(link)
    expected = api_get(console, "/reports/aging", format="csv", **query)
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/csv")
    assert served.text == expected.text and served.text.startswith("as_of,collector,currency,current,")
    assert served.headers["content-disposition"] == 'attachment; filename="aging-2026-10-31-collector.csv"'
    assert console.browser().get(link).status_code == 303, "without a session: to the sign-in page"


def test_a_day_the_form_cannot_take_is_a_422_page(console):
    response = console.as_("supervisor").get("/console/reports/aging", params={"as_of": "31/10/2026"})
    assert response.status_code == 422 and "as_of" in text_of(response.text)
    response = console.as_("supervisor").get("/console/reports/aging", params={"currency": "usd"})
    assert response.status_code == 422


# ---- KPIs -----------------------------------------------------------------------------------


def kpi_row(block: dict[str, Any]) -> list[str]:
    return [FIGURES.kpi(key, block[key]) for key in KPIS]


def test_the_kpi_page_shows_the_apis_period_figures_per_collector_and_overall(console):
    query = {"from": "2026-09-01", "to": "2026-10-31"}
    expected = api_get(console, "/reports/kpis", **query).json()
    html = page(console, "/console/reports/kpis", **query)
    table = section(html, "kpi-period")
    shown = rows(table)
    assert shown == [["Everyone", b["currency"], *kpi_row(b)] for b in expected["overall"]] + [
        [b["collector"] or "unassigned", b["currency"], *kpi_row(b)] for b in expected["collectors"]
    ]
    assert {"collector-1", "collector-2", "collector-3"} <= {b["collector"] for b in expected["collectors"]}
    assert any(b["dso"] is not None and b["cei"] is not None for b in expected["overall"]), "figures, not only dashes"


def test_the_kpis_month_by_month_are_the_apis_for_each_month_with_a_chart_per_kpi(console):
    html = page(console, "/console/reports/kpis")
    periods = month_periods(END.date(), None)
    assert len(periods) == 12 and periods[-1] == (date(2026, 11, 1), date(2026, 11, 20))
    series = re.findall(r'<section class="kpi-series" data-collector="([^"]*)" data-currency="([^"]*)">(.*?)</section>', html, flags=re.DOTALL)
    everyone = {cur: body for who, cur, body in series if who == ""}
    assert set(everyone) == {"CNY", "USD"}
    for first, last in periods:
        expected = api_get(console, "/reports/kpis", **{"from": first.isoformat(), "to": last.isoformat()}).json()
        for block in expected["overall"]:
            body = everyone[block["currency"]]
            row = re.search(rf'<tr data-month="{first:%Y-%m}">(.*?)</tr>', body, flags=re.DOTALL).group(1)
            cells = [text_of(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.DOTALL)]
            assert cells[1:] == kpi_row(block), (first, block["currency"])
    for who, cur, body in series:
        assert body.count('<svg class="chart line"') == 4, (who, cur)
        for kpi in ("dso", "cei"):
            chart = re.search(rf'<figure class="chart small" data-kpi="{kpi}">(.*?)</figure>', body, flags=re.DOTALL).group(1)
            assert chart.count('class="label"') == 12, "a label per month"
    per_collector = {(who, cur) for who, cur, _ in series if who}
    assert ("collector-1", "CNY") in per_collector or ("collector-1", "USD") in per_collector


def test_the_kpi_form_takes_a_collector_and_a_year(console):
    expected = api_get(console, "/reports/kpis", collector="collector-2").json()
    html = page(console, "/console/reports/kpis", collector="collector-2", year="2026")
    shown = rows(section(html, "kpi-period"))
    assert shown == [["Everyone", b["currency"], *kpi_row(b)] for b in expected["overall"]] + [
        [b["collector"], b["currency"], *kpi_row(b)] for b in expected["collectors"]
    ]
    assert {row[0] for row in shown} == {"Everyone", "collector-2"}
    months = re.findall(r'<tr data-month="([^"]+)">', html)
    assert months and set(months) == {f"2026-{m:02d}" for m in range(1, 12)}, "January to this month of 2026"
    assert '<option value="2026" selected>' in html
    assert console.as_("supervisor").get("/console/reports/kpis", params={"year": "19"}).status_code == 422


# ---- compliance -----------------------------------------------------------------------------


def links(html: str) -> list[str]:
    return re.findall(r'<a class="to-event" href="([^"]+)"', html)


def expected_link(finding: dict[str, Any]) -> str:
    anchor = f"#v{finding['event_version']}" if finding["event_version"] else ""
    return f"/console/receivables/{finding['receivable_id']}{anchor}"


def test_the_findings_page_lists_the_apis_findings_with_counts_by_collector_and_rule(console):
    expected = api_get(console, "/compliance/findings", limit=1000).json()
    html = page(console, "/console/compliance/findings")
    listed, overrides = section(html, "findings"), section(html, "overrides")
    assert links(listed) == [expected_link(f) for f in expected if f["rule_id"] != "override.used"]
    assert links(overrides) == [expected_link(f) for f in expected if f["rule_id"] == "override.used"] != []
    by_rule: dict[str, int] = {}
    by_collector: dict[str, int] = {}
    for f in expected:
        by_rule[f["rule_id"]] = by_rule.get(f["rule_id"], 0) + 1
        by_collector[f["collector"] or "unassigned"] = by_collector.get(f["collector"] or "unassigned", 0) + 1
    shown_rules = rows(section(html, "by-rule"))
    assert {row[0].split(" ", 1)[0]: int(row[1]) for row in shown_rules} == by_rule
    assert rows(section(html, "by-rule"), "tfoot") == [["Total", str(len(expected))]]
    assert {row[0]: int(row[1]) for row in rows(section(html, "by-collector"))} == by_collector
    assert "Contact outside the customer's contact window" in html, "rules by their titles"
    assert 'id="rule-limitation.no_action"' in html, "the rules catalogue"


def test_each_findings_link_opens_the_receivable_at_that_event(console):
    html = page(console, "/console/compliance/findings")
    for link in links(html)[:5]:
        path, _, anchor = link.partition("#")
        target = console.as_("supervisor").get(path)
        assert target.status_code == 200
        if anchor:
            assert f'<tr id="{anchor}"' in target.text


def test_the_findings_form_filters_by_collector_rule_and_period_as_the_api_does(console):
    for query in ({"collector": "collector-2"}, {"rule_id": "contact.without_outcome_or_next_step"},
                  {"from": "2026-08-01", "to": "2026-09-30"}, {"collector": "collector-3", "rule_id": "contact.outside_window"}):
        expected = api_get(console, "/compliance/findings", limit=1000, **query).json()
        html = page(console, "/console/compliance/findings", **query)
        assert links(section(html, "findings")) + links(section(html, "overrides")) == [expected_link(f) for f in
            [f for f in expected if f["rule_id"] != "override.used"] + [f for f in expected if f["rule_id"] == "override.used"]], query
        assert sum(int(r[1]) for r in rows(section(html, "by-rule"))) == len(expected) if expected else "No finding." in html


def test_a_collector_sees_their_own_findings_only_even_when_naming_another(console):
    expected = api_get(console, "/compliance/findings", role="collector", limit=1000).json()
    assert expected and {f["collector"] for f in expected} == {"collector-1"}
    for query in ({}, {"collector": "collector-2"}):
        html = page(console, "/console/compliance/findings", role="collector", **query)
        assert links(section(html, "findings")) + links(section(html, "overrides")) == [
            expected_link(f) for f in [f for f in expected if f["rule_id"] != "override.used"] + [f for f in expected if f["rule_id"] == "override.used"]]
        assert {row[0] for row in rows(section(html, "by-collector"))} == {"collector-1"}
        assert 'name="collector"' not in html, "no collector to pick"


def test_free_text_on_the_findings_page_is_escaped(console):
    html = page(console, "/console/compliance/findings", rule_id="override.used")
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


# ---- languages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "heading"),
    [("/console/reports/aging", "<h1>账龄</h1>"), ("/console/reports/kpis", "<h1>关键指标</h1>"),
     ("/console/compliance/findings", "<h1>合规发现</h1>")],
)
def test_the_report_pages_speak_chinese(console, path, heading):
    client = console.browser(**{"Accept-Language": "zh-CN"})
    assert console.sign_in(client, console.tokens["auditor"]).status_code == 303
    html = client.get(path).text
    assert heading in html
    assert "按逾期天数的余额" in html or "逐月" in html or "按规则" in html
    assert 'href="/console/reports/aging"' in html and ">账龄<" in html, "in the navigation"


def test_an_auditor_still_lands_on_the_page_to_find_a_receivable(console):
    assert console.as_("auditor").get("/console/").status_code == 200
    assert console.as_("collector").get("/console/").headers["location"] == "/console/worklist"
