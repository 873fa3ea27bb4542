"""The credit rule (domain/credit.py): rating and hold from figures, today as an argument."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from collections_es.domain.credit import CreditHistory, hold_reasons, rate


def history(**kw: object) -> CreditHistory:
    base = dict(settled_on_time=0, settled_late=0, days_late_total=0, promises_made=0, promises_kept=0,
                promises_broken=0, unrecovered_write_off=False, any_write_off=False)
    return CreditHistory(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("figures", "rating"),
    [
        ({}, "unrated"),
        ({"settled_on_time": 3, "promises_made": 1, "promises_kept": 1}, "A"),
        ({"settled_on_time": 3, "settled_late": 1, "days_late_total": 5}, "B"),
        ({"settled_on_time": 2, "promises_made": 2, "promises_kept": 1, "promises_broken": 1}, "B"),
        ({"settled_on_time": 1, "settled_late": 2, "days_late_total": 6}, "C"),
        ({"settled_on_time": 3, "settled_late": 1, "days_late_total": 130}, "C"),
        ({"promises_made": 2, "promises_broken": 2}, "C"),
        ({"promises_made": 3, "promises_kept": 5, "promises_broken": 3}, "D"),
        ({"settled_on_time": 9, "any_write_off": True, "unrecovered_write_off": True}, "D"),
        ({"settled_on_time": 9, "any_write_off": True}, "A"),
    ],
)
def test_the_rating_follows_the_documented_rule(figures: dict[str, object], rating: str) -> None:
    assert rate(history(**figures)) == rating


def test_the_average_counts_on_time_settlements_as_zero_days() -> None:
    assert history(settled_on_time=2, settled_late=1, days_late_total=10).average_days_late == Decimal("3.3")
    assert history().average_days_late == Decimal("0.0")


def test_a_hold_comes_from_exposure_over_the_limit_or_a_write_off_within_the_window() -> None:
    today = date(2026, 6, 1)
    none = hold_reasons(exposure=Decimal("100"), credit_limit=Decimal("100"), last_write_off_on=None, today=today, hold_days=365)
    assert none == []
    over = hold_reasons(exposure=Decimal("100.01"), credit_limit=Decimal("100"), last_write_off_on=None, today=today, hold_days=365)
    assert over == ["over_credit_limit"]
    edge = hold_reasons(exposure=None, credit_limit=None, last_write_off_on=date(2025, 6, 1), today=today, hold_days=365)
    assert edge == ["recent_write_off"]
    past = hold_reasons(exposure=None, credit_limit=None, last_write_off_on=date(2025, 5, 31), today=today, hold_days=365)
    assert past == []
