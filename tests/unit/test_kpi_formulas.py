"""The KPI formulas against published worked examples (docs/kpis.md cites each one) and the
month cutting of the countback."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from projections.kpis import (
    average_days_delinquent,
    best_possible_dso,
    countback_dso,
    countback_months,
    days_sales_outstanding,
)


def test_creditguru_add_example_dso_45_best_possible_12_delinquent_33():
    """CreditGuru, "Average Days Delinquent (ADD)": total receivables 15,000, current 4,000,
    credit sales 10,000 in a 30-day period → DSO 45, BPDSO 12, ADD 33."""
    dso = days_sales_outstanding(15_000, 10_000, 30)
    bpdso = best_possible_dso(4_000, 10_000, 30)
    assert (dso, bpdso, average_days_delinquent(dso, bpdso)) == (Decimal("45.0"), Decimal("12.0"), Decimal("33.0"))


def test_quadient_add_example_dso_50_best_possible_12_delinquent_38():
    """Quadient, "What Is Average Days Delinquent?": total receivables 25,000, current 6,000,
    credit sales 15,000 in 30 days → DSO 50, best DSO 12, ADD 38."""
    dso = days_sales_outstanding(25_000, 15_000, 30)
    bpdso = best_possible_dso(6_000, 15_000, 30)
    assert (dso, bpdso, average_days_delinquent(dso, bpdso)) == (Decimal("50.0"), Decimal("12.0"), Decimal("38.0"))


def test_the_briefs_quarter_example_best_possible_35():
    """The figures the issue's brief gives (its attribution not verified, docs/kpis.md):
    current receivables 70,000, credit sales 180,000 over 90 days → BPDSO 35."""
    assert best_possible_dso(70_000, 180_000, 90) == Decimal("35.0")


def test_benji_pays_countback_example_73_7_days():
    """Benji Pays, "Mastering DSO Calculation: The Count-Back Method Explained" (30-day months):
    receivables 212,000; sales 100,000 (month 3), 80,000 (month 2), 70,000 (month 1)
    → 30 + 30 + 30 × 32,000 ÷ 70,000 = 73.7."""
    assert countback_dso(212_000, [(30, 100_000), (30, 80_000), (30, 70_000)]) == Decimal("73.7")


def test_the_briefs_calendar_countback_example_69_3_days():
    """The brief's figures (attribution not verified): receivables 1,000,000; March 500,000 (31
    days), February 400,000 (28), January 300,000 (31) → 31 + 28 + 31 × 100,000 ÷ 300,000 = 69.3,
    with the months cut by countback_months at 31 March."""
    months = list(countback_months(date(2026, 3, 31), date(2026, 1, 1)))
    assert months == [
        (date(2026, 3, 1), date(2026, 3, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 1, 1), date(2026, 1, 31)),
    ]
    sales = {1: 300_000, 2: 400_000, 3: 500_000}
    steps = [((last - first).days + 1, sales[first.month]) for first, last in months]
    assert steps == [(31, 500_000), (28, 400_000), (31, 300_000)]
    assert countback_dso(1_000_000, steps) == Decimal("69.3")


def test_a_countback_in_the_middle_of_a_month_starts_with_that_month_to_date():
    assert list(countback_months(date(2026, 3, 15), date(2025, 12, 20))) == [
        (date(2026, 3, 1), date(2026, 3, 15)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2025, 12, 1), date(2025, 12, 31)),
    ]


def test_a_countback_uses_up_months_without_sales_and_stops_where_the_remainder_ends():
    assert countback_dso(300, [(31, 0), (28, 300), (31, 1_000)]) == Decimal("59.0")  # 31 + 28, exactly used up
    assert countback_dso(0, [(31, 100)]) == Decimal("0.0")


def test_receivables_beyond_every_sale_on_record_have_no_countback():
    assert countback_dso(1_000, [(31, 400), (28, 500)]) is None
    assert countback_dso(1, []) is None


def test_without_credit_sales_dso_and_best_possible_dso_and_add_are_undefined():
    assert days_sales_outstanding(1_000, 0, 30) is None
    assert best_possible_dso(0, 0, 30) is None
    assert average_days_delinquent(None, None) is None


def test_add_is_the_difference_of_the_figures_shown_so_they_add_up():
    """1,006 ÷ 100 × 1 = 10.06 → 10.1; 504 ÷ 100 × 1 = 5.04 → 5.0: ADD 5.1 as shown, where the
    unrounded difference 5.02 would round to 5.0 (ADR 0041)."""
    dso, bpdso = days_sales_outstanding(1_006, 100, 1), best_possible_dso(504, 100, 1)
    assert (dso, bpdso) == (Decimal("10.1"), Decimal("5.0"))
    assert average_days_delinquent(dso, bpdso) == Decimal("5.1")
