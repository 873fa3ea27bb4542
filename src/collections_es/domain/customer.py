"""The Customer aggregate: the customer file the procedure asks for."""

from __future__ import annotations

import uuid
from typing import Any

from .aggregate import TrailedAggregate
from .calendar import check_timezone
from .errors import RuleViolationError
from .policy import CHANNELS
from .trail import Context

CUSTOMER_NAMESPACE = uuid.UUID("0f4d6a3e-8a37-4f0c-b6a5-7d0c1e2b9a44")
CONTACT_FIELDS: tuple[str, ...] = ("email", "phone", "address")


def customer_uuid(customer_id: str) -> uuid.UUID:
    return uuid.uuid5(CUSTOMER_NAMESPACE, customer_id)


class Customer(TrailedAggregate):
    """A customer: who they are, how and when to reach them."""

    class Registered(TrailedAggregate.Created):
        customer_id: str
        name: str
        timezone: str
        tier: str
        preferred_channel: str
        contacts: dict[str, Any]

        def evolve(self, c: Customer) -> None:
            c.customer_id = self.customer_id
            c.name = self.name
            c.timezone = self.timezone
            c.tier = self.tier
            c.preferred_channel = self.preferred_channel
            c.contacts = dict(self.contacts)

    @classmethod
    def register(
        cls,
        ctx: Context,
        *,
        customer_id: str,
        name: str,
        timezone: str,
        tier: str,
        preferred_channel: str,
        contacts: dict[str, Any],
    ) -> Customer:
        if not name.strip():
            raise RuleViolationError("field.required", "'name' must not be empty", field="name")
        check_timezone(timezone)
        if preferred_channel not in CHANNELS:
            raise RuleViolationError(
                "field.choice", f"'{preferred_channel}' is not one of {', '.join(CHANNELS)}", field="preferred_channel"
            )
        return cls._start(
            cls.Registered,
            ctx,
            id=customer_uuid(customer_id),
            customer_id=customer_id,
            name=name,
            timezone=timezone,
            tier=tier,
            preferred_channel=preferred_channel,
            contacts={k: v for k, v in contacts.items() if v is not None},
        )
