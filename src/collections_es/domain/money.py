"""Money: Decimal amounts in an ISO 4217 currency with that currency's minor units.

The currency table (codes and minor units) comes from CLDR through Babel, not a
hand-typed list.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

from .errors import RuleViolationError

MAX_AMOUNT = Decimal("1000000000000")  # one trillion: far above any real invoice
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # no spaces, no underscores


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def check_currency(code: str, *, field: str = "currency") -> str:
    """Return the code if it is an ISO 4217 currency, else raise."""
    if not isinstance(code, str) or len(code) != 3 or code.upper() != code:
        raise RuleViolationError(
            "money.currency", f"'{code}' is not an ISO 4217 code (three capital letters)", field=field
        )
    if code not in _known_currencies():
        raise RuleViolationError("money.currency", f"'{code}' is not a known ISO 4217 currency", field=field)
    return code


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """Number of decimal places of the currency (CNY 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(check_currency(currency)))


def to_money(value: object, currency: str, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """Parse a decimal amount, refusing floats, excess precision and non-positive values.

    The result is quantized to the currency's minor units, so `Decimal("5")` in CNY
    becomes `Decimal("5.00")`. Nothing is ever rounded: more decimals than the
    currency has is an error.
    """
    if isinstance(value, float | bool):
        raise RuleViolationError("money.not_decimal", "money must be a decimal string, never a float", field=field)
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise RuleViolationError("money.format", f"'{value}' is not a plain decimal amount such as 1200.50", field=field)
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RuleViolationError("money.format", f"'{value}' is not a decimal amount", field=field) from None
    if not amount.is_finite():
        raise RuleViolationError("money.format", f"'{value}' is not a finite amount", field=field)
    if amount > MAX_AMOUNT or amount < -MAX_AMOUNT:
        raise RuleViolationError("money.too_large", f"'{value}' exceeds {MAX_AMOUNT}", field=field)
    places = minor_units(currency)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise RuleViolationError(
            "money.precision", f"{currency} has {places} decimal places; '{value}' has more", field=field
        )
    if amount < 0 or (amount == 0 and not allow_zero):
        raise RuleViolationError("money.positive", f"'{value}' must be greater than zero", field=field)
    # `+ 0` turns a negative zero into zero.
    return amount.quantize(Decimal(1).scaleb(-places)) + 0


def format_money(amount: Decimal) -> str:
    """The wire form: a plain decimal string with no exponent."""
    return f"{amount:f}"
