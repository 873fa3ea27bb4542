"""The field types of every command and request body, and their strict base.

Every request model forbids unknown fields and bounds every string; money is a
decimal string, never a JSON number; dates and instants are ISO 8601 text only.
The command declaration (`application.commands`) and the HTTP schemas
(`api.schemas`) both build on these.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

Money = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$", strip_whitespace=False),
    Field(description="A decimal string such as \"1200.50\"; never a JSON number", examples=["1200.50"]),
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(examples=["CNY"])]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]

_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INSTANT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _iso(pattern: re.Pattern[str], what: str) -> Any:
    """Only ISO 8601 text (or the value itself): pydantic would also take a number as a Unix time."""

    def check(value: Any) -> Any:
        if isinstance(value, date) or (isinstance(value, str) and pattern.match(value)):
            return value
        raise ValueError(f"must be {what}")

    return BeforeValidator(check)


EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
INSTANT_RANGE = "between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z"


def in_instant_range(value: datetime) -> bool:
    """Within 1970–2199 (UTC; a naive instant read as UTC), like every date the API takes: far
    outside, converting the instant to a customer's time zone would overflow the calendar."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return EARLIEST_INSTANT <= aware <= LATEST_INSTANT


def _bounded(value: datetime) -> datetime:
    if not in_instant_range(value):
        raise ValueError(f"must be {INSTANT_RANGE}")
    return value


Day = Annotated[date, _iso(_DAY, "a date as YYYY-MM-DD")]
Instant = Annotated[datetime, _iso(_INSTANT, "an ISO 8601 instant, e.g. 2026-03-01T09:00:00Z"), AfterValidator(_bounded)]
AwareInstant = Annotated[
    AwareDatetime, _iso(_INSTANT, "an ISO 8601 instant, e.g. 2026-03-01T09:00:00Z"), AfterValidator(_bounded)
]


def _day_or_instant(value: Any) -> Any:
    """A day as a `date`, an instant left to pydantic's datetime; nothing else (no Unix times)."""
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        if _DAY.match(value):
            return date.fromisoformat(value)
        if _INSTANT.match(value):
            return value
    raise ValueError("must be a date as YYYY-MM-DD or an ISO 8601 instant, e.g. 2026-03-01T09:00:00Z")


DayOrInstant = Annotated[datetime | date, BeforeValidator(_day_or_instant)]
"""`as_of` on a receivable: an instant, or a day meaning the end of that day in the company's time zone."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """NUL characters are refused everywhere: PostgreSQL text cannot hold them."""
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
