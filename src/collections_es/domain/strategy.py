"""Strategies: which cadence a receivable follows, and the policy that cadence makes.

Pure. Given the policy in force, the customer's facts (tier, segment, its own
strategy if it has one, its preferred contact hours) and the receivable's amount
and currency, `resolve` names the strategy that applies and builds the effective
policy: the policy with that strategy's overrides, its contact windows narrowed to
the customer's hours. Overrides are generic (any top-level policy field but
`version` and `strategies`), so fields added to the policy later are overridable
without a change here; they are checked by building the policy they make.

An event records `policy_version` and `strategy`; the receivable keeps the
customer's contact hours (`Issued`, `Replanned`), so `effective(book[version],
strategy, hours)` recomputes what any past event was decided and planned under.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from .policy import CollectionPolicy, Strategy

#: Policy fields no strategy may set.
FIXED_FIELDS: frozenset[str] = frozenset({"version", "strategies"})
_CACHE_SIZE = 512
_cache: dict[tuple[int, str | None, tuple[tuple[str, str], ...] | None], tuple[CollectionPolicy, CollectionPolicy]] = {}

ContactHours = tuple[tuple[str, str], ...]


class StrategyError(ValueError):
    """A strategy's overrides do not make a valid policy; the message names the strategy and field."""


@dataclass(frozen=True)
class CustomerFacts:
    """What strategies are matched on about a customer."""

    tier: str | None = None
    segment: str | None = None
    strategy: str | None = None  # the customer's own strategy (an id), chosen over matching
    contact_hours: ContactHours | None = None  # ("09:30", "11:00") ranges, every day, in its time zone


@dataclass(frozen=True)
class Resolved:
    """The strategy a receivable follows (None: the policy's own figures) and the policy it makes."""

    strategy: str | None
    policy: CollectionPolicy


def overridable_fields() -> frozenset[str]:
    return frozenset(CollectionPolicy.model_fields) - FIXED_FIELDS


def _merge(base: Any, override: Any) -> Any:
    """`override` over `base`: tables merged key by key, anything else replaced."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return override


def _document(policy: CollectionPolicy) -> dict[str, Any]:
    return policy.model_dump(mode="python", exclude={"strategies"})


def _build(document: dict[str, Any], what: str) -> CollectionPolicy:
    try:
        return CollectionPolicy.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc']) or '(whole policy)'}': {e['msg']}" for e in exc.errors()
        )
        raise StrategyError(f"{what}: {problems}") from None


def apply(policy: CollectionPolicy, strategy: Strategy | None) -> CollectionPolicy:
    """The policy with `strategy`'s overrides (the policy itself without one)."""
    if strategy is None or not strategy.overrides:
        return policy
    overrides = strategy.overrides
    unknown = sorted(set(overrides) - overridable_fields())
    if unknown:
        raise StrategyError(
            f"strategy '{strategy.id}': {', '.join(repr(u) for u in unknown)} "
            f"{'is not a policy field' if len(unknown) == 1 else 'are not policy fields'} a strategy may set"
        )
    document = _document(policy)
    for key, value in overrides.items():
        document[key] = _merge(document.get(key), _plain(value))
    return _build(document, f"strategy '{strategy.id}'")


def _plain(value: Any) -> Any:
    """Overrides as written (a model, if one slipped in, as its fields)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    return value


def check_overrides(policy: CollectionPolicy, strategy: Strategy) -> None:
    """Raise StrategyError unless `strategy`'s overrides build a valid policy from `policy`."""
    apply(policy, strategy)


def matches(strategy: Strategy, facts: CustomerFacts, amount: Decimal, currency: str) -> bool:
    m = strategy.match
    if m.tiers is not None and facts.tier not in m.tiers:
        return False
    if m.segments is not None and facts.segment not in m.segments:
        return False
    if m.currency is not None and currency != m.currency:
        return False
    if m.min_amount is not None and amount < m.min_amount:
        return False
    if m.max_amount is not None and amount >= m.max_amount:
        return False
    return True


def choose(policy: CollectionPolicy, facts: CustomerFacts, amount: Decimal, currency: str) -> Strategy | None:
    """The customer's own strategy if the policy has it, else the first that matches, else none."""
    own = policy.strategy(facts.strategy)
    if own is not None:
        return own
    return next((s for s in policy.strategies if matches(s, facts, amount, currency)), None)


def narrow_windows(policy: CollectionPolicy, hours: ContactHours | None) -> CollectionPolicy:
    """The policy's contact windows narrowed to the customer's preferred hours (every day).
    Hours that leave no window on any day cannot be honoured: the policy's windows stand."""
    if not hours:
        return policy
    ranges = [(time.fromisoformat(start), time.fromisoformat(end)) for start, end in hours]
    narrowed: dict[str, list[dict[str, time]]] = {}
    for day, windows in policy.contact.windows.items():
        narrowed[day] = [
            {"start": max(w.start, start), "end": min(w.end, end)}
            for w in windows
            for start, end in ranges
            if max(w.start, start) < min(w.end, end)
        ]
    if not any(narrowed.values()):
        return policy
    document = _document(policy)
    document["contact"]["windows"] = narrowed
    return _build(document, "contact hours")


def overlaps_windows(policy: CollectionPolicy, hours: ContactHours) -> bool:
    """Whether some of the hours fall in some of the policy's contact windows."""
    return narrow_windows(policy, hours) is not policy


def effective(policy: CollectionPolicy, strategy_id: str | None, hours: ContactHours | None = None) -> CollectionPolicy:
    """The policy a receivable that follows `strategy_id` (an id of `policy`'s; an id it does
    not have means none) with the customer's `hours` is decided and planned under."""
    if strategy_id is None and not hours:
        return policy
    key = (id(policy), strategy_id, hours)
    found = _cache.get(key)
    if found is not None and found[0] is policy:
        return found[1]
    built = narrow_windows(apply(policy, policy.strategy(strategy_id)), hours)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[key] = (policy, built)
    return built


def resolve(policy: CollectionPolicy, facts: CustomerFacts, amount: Decimal, currency: str) -> Resolved:
    """The strategy a receivable of `amount` in `currency` follows for this customer, and its policy."""
    chosen = choose(policy, facts, amount, currency)
    strategy_id = chosen.id if chosen is not None else None
    return Resolved(strategy_id, effective(policy, strategy_id, facts.contact_hours))


def hours_of(windows: Sequence[Mapping[str, str]] | None) -> ContactHours | None:
    """Contact hours as stored on events ([{start, end}] as text) in their hashable form."""
    if not windows:
        return None
    return tuple((str(w["start"]), str(w["end"])) for w in windows)
