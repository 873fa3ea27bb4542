"""The report pages' charts (console/charts.py): SVG drawn on the server, a mark per bucket or
month, no style attribute or script (the CSP), every text escaped; and the KPI page's months."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from collections_es.console import charts
from collections_es.console.reports import Figures, month_periods


def test_a_bar_chart_has_a_titled_bar_per_mark_and_escapes_its_texts():
    marks = [charts.Mark(k, f"<i>{k}</i>", Decimal(v), f"{k}: {v} <b>") for k, v in (("current", "10"), ("1-30", "0"), ("31-60", "25.5"))]
    svg = str(charts.bars(marks, label="Aging · <CNY>", axis=str))
    assert svg.startswith('<svg class="chart bars"') and svg.count("<rect ") == 3
    assert svg.count('data-bucket="') == 3 and 'data-bucket="1-30"' in svg
    assert "<i>" not in svg and "&lt;i&gt;current&lt;/i&gt;" in svg and "&lt;b&gt;" in svg and "&lt;CNY&gt;" in svg
    assert "style=" not in svg and "<script" not in svg
    heights = [float(h) for h in re.findall(r'<rect class="bar bar-\d" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg)]
    assert heights[2] > heights[0] > heights[1], "bars in proportion, the empty one a hairline"


def test_a_line_chart_leaves_a_gap_where_a_figure_is_undefined():
    values = ["10", None, "12", "14", None]
    marks = [charts.Mark(f"2026-{i + 1:02d}", f"M{i + 1}", None if v is None else Decimal(v), "t") for i, v in enumerate(values)]
    svg = str(charts.line(marks, label="DSO", axis=str))
    assert svg.count("<circle ") == 3 and svg.count('class="label"') == 5
    assert svg.count("<polyline ") == 1, "only the run of two points is joined"
    assert str(charts.line([charts.Mark("m", "m", None, "t")], label="x", axis=str)).count("<circle") == 0


def test_the_months_are_the_last_twelve_or_a_years_cut_at_today():
    last = month_periods(date(2026, 3, 20), None)
    assert len(last) == 12 and last[0] == (date(2025, 4, 1), date(2025, 4, 30)) and last[-1] == (date(2026, 3, 1), date(2026, 3, 20))
    assert month_periods(date(2026, 3, 20), 2025)[1] == (date(2025, 2, 1), date(2025, 2, 28))
    assert [p[0].month for p in month_periods(date(2026, 3, 20), 2026)] == [1, 2, 3]
    assert month_periods(date(2026, 3, 20), 2027) == []


def test_kpi_figures_in_the_readers_locale():
    assert Figures("en").kpi("dso", "1234.5") == "1,234.5"
    assert Figures("en").kpi("promise_kept_rate", "0.5000") == "50.0%"
    assert Figures("zh-CN").kpi("cei", None) == "—"
    assert Figures("en").axis(Decimal("12500")) == "12.5K"
