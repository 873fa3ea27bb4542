"""The business calendar: days, contact windows and the start of a local day,
in the customer's time zone, from the policy. Pure functions of their inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from .errors import RuleViolationError
from .policy import CollectionPolicy

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration_in_words(delta: timedelta) -> str:
    """A duration as a message shows it: `3 days`, `2 hours 30 minutes`, `1 day 1 second`
    (`str(timedelta)` would show `3 days, 0:00:00`)."""
    seconds = int(abs(delta).total_seconds())
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}" + ("" if count == 1 else "s"))
    if not parts:
        return "less than a second" if delta else "0 seconds"
    return ("minus " if delta < timedelta(0) else "") + " ".join(parts)


def start_of_day(day: date, tz: str) -> datetime:
    """The first instant of `day` in time zone `tz`, as UTC."""
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def local_moment(day: date, at: time, tz: str) -> datetime:
    return datetime.combine(day, at, ZoneInfo(tz)).astimezone(UTC)


def is_business_day(day: date, policy: CollectionPolicy) -> bool:
    """A day with contact windows that is not a policy holiday."""
    return bool(policy.contact.windows.get(WEEKDAYS[day.weekday()])) and day not in policy.holidays  # type: ignore[call-overload]


def business_day_on_or_before(day: date, policy: CollectionPolicy) -> date:
    for _ in range(370):
        if is_business_day(day, policy):
            return day
        day -= timedelta(days=1)
    raise ValueError("the policy has no business day in a year")


def business_day_on_or_after(day: date, policy: CollectionPolicy) -> date:
    for _ in range(370):
        if is_business_day(day, policy):
            return day
        day += timedelta(days=1)
    raise ValueError("the policy has no business day in a year")


def next_contact_moment(after: datetime, tz: str, policy: CollectionPolicy) -> datetime:
    """The earliest instant at or after `after` inside a contact window on a business day."""
    local = after.astimezone(ZoneInfo(tz))
    day = local.date()
    for _ in range(370):
        if is_business_day(day, policy):
            for window in sorted(policy.contact.windows[WEEKDAYS[day.weekday()]], key=lambda w: w.start):  # type: ignore[index]
                start = local_moment(day, window.start, tz)
                end = local_moment(day, window.end, tz)
                if after < end:
                    return max(start, after)
        day += timedelta(days=1)
    raise ValueError("the policy has no contact window in a year")


def first_contact_moment_on(day: date, tz: str, policy: CollectionPolicy) -> datetime:
    """The first window start of `day`, or of the next business day if `day` is not one."""
    return next_contact_moment(start_of_day(day, tz), tz, policy)


def is_within_contact_window(at: datetime, tz: str, policy: CollectionPolicy) -> bool:
    return next_contact_moment(at, tz, policy) == at


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(name: str) -> str:
    """The name if it is an IANA time zone, else a rule violation on `timezone`."""
    if name not in _timezones():
        raise RuleViolationError("timezone.unknown", f"'{name}' is not an IANA time zone", field="timezone")
    return name
