"""Contact details (PII) in what we show and log: masking and redaction (ADR 0030).

Contact details are the customer file's `contacts` (e-mail, phone, address) and
`contact_persons` (name, e-mail, phone; their role is not personal). They are
shown in full to `access.PII_ROLES` and masked for the other roles.

Free text (contact notes, reasons, sales' notes) and identifiers people type (a payment's
`reference`) may quote them too. For roles
without need, `Redactor.text` masks every contact detail it has been told of
(the customer's, over the file's whole history where the caller has it) and
anything that looks like an e-mail address or a phone number (9+ digits). It is
best effort: a person's name that is not on file is not recognised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..domain.customer import CONTACT_FIELDS, CONTACT_PERSON_FIELDS, Customer

PERSON_PII: tuple[str, ...] = tuple(f for f in CONTACT_PERSON_FIELDS if f != "role")
# Event and note fields that hold free text written by a person.
FREE_TEXT: frozenset[str] = frozenset(
    {
        "note",
        "reason",
        "resolution",
        "customer_attitude",
        "next_step",
        "reason_for_non_payment",
        "text",
        "action",
        "feedback",
        "needs",
        "ability_to_pay",
        "willingness_to_pay",
    }
)
# Identifiers a payer or a bank writes (a payment's reference): people put phone numbers in them.
IDENTIFIERS: frozenset[str] = frozenset({"reference"})
_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"']+@[^@\s<>()\[\],;:\"']+\.[^@\s<>()\[\],;:\"']+")
# ASCII look-arounds: Chinese text writes numbers right after characters (电话13900001111).
_PHONE = re.compile(r"(?<![A-Za-z0-9_.+\-])\+?\d(?:[ ()\-]{0,2}\d){8,}(?![A-Za-z0-9_])")
_DATE_TIME = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
# In an identifier, only what could be dialled: at most 15 digits (E.164). A longer run of digits
# is a bank's transaction number, which auditors need whole.
_DIALLABLE = re.compile(r"(?<![A-Za-z0-9_.+\-])\+?\d(?:[ ()\-]{0,2}\d){8,14}(?![A-Za-z0-9_])")


def mask(field: str, value: str) -> str:
    """`13812345678` → `138****5678`; `zhang@example.com` → `z****@example.com`;
    a name or an address → its first characters and `****`."""
    if field == "email" and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local[:1]}****@{domain}"
    if field == "phone":
        digits = value.replace(" ", "")
        return f"{digits[:3]}****{digits[-4:]}" if len(digits) > 7 else "****"
    if field == "name":
        return value[:1] + "****" if len(value) > 1 else "****"
    return value[:6] + "****" if len(value) > 6 else "****"


class Redactor:
    """Masks contact details, and contact details quoted in free text, for one response."""

    def __init__(self, known: Iterable[tuple[str, str]] = ()) -> None:
        self._known: dict[str, str] = {}
        for field, value in known:
            self.learn(field, value)

    def learn(self, field: str, value: str) -> str:
        """Remember a contact detail (to find it in free text later); return it masked."""
        masked = mask(field, value)
        if value.strip() and len(value.strip()) >= 2:
            self._known[value.strip()] = masked
        return masked

    def learn_customer(self, contacts: dict[str, Any] | None, persons: list[dict[str, Any]] | None) -> None:
        for field, value in (contacts or {}).items():
            if field in CONTACT_FIELDS and isinstance(value, str):
                self.learn(field, value)
        for person in persons or []:
            for field in PERSON_PII:
                value = person.get(field)
                if isinstance(value, str):
                    self.learn(field, value)

    def learn_events(self, events: Iterable[Any]) -> Redactor:
        """Every contact detail a customer file ever held (old numbers appear in old notes)."""
        for event in events:
            if isinstance(event, Customer.Registered | Customer.ContactsChanged):
                self.learn_customer(event.contacts, event.contact_persons)
        return self

    def contacts(self, contacts: dict[str, str]) -> dict[str, str]:
        return {k: self.learn(k, v) if isinstance(v, str) else v for k, v in contacts.items()}

    def persons(self, persons: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {k: self.learn(k, v) if k in PERSON_PII and isinstance(v, str) else v for k, v in p.items()}
            for p in persons
        ]

    def text(self, value: str | None) -> str | None:
        """Free text with every known contact detail, e-mail address and phone number masked."""
        if not value:
            return value
        for known in sorted(self._known, key=len, reverse=True):
            value = _replace_folded(value, known, self._known[known])
        value = _EMAIL.sub(lambda m: mask("email", m.group(0)), value)
        return _PHONE.sub(_mask_phone, value)

    def identifier(self, value: str | None) -> str | None:
        """An identifier (a payment reference) with known contact details, e-mail addresses and
        phone numbers masked; long digit runs (transaction numbers) kept."""
        if not value:
            return value
        for known in sorted(self._known, key=len, reverse=True):
            value = _replace_folded(value, known, self._known[known])
        value = _EMAIL.sub(lambda m: mask("email", m.group(0)), value)
        return _DIALLABLE.sub(_mask_phone, value)

    def data(self, data: dict[str, Any]) -> dict[str, Any]:
        """An event's data (as shown in history and export): contacts masked, free text redacted."""
        out = dict(data)
        if isinstance(out.get("contacts"), dict):
            out["contacts"] = self.contacts(out["contacts"])
        if isinstance(out.get("contact_persons"), list):
            out["contact_persons"] = self.persons(out["contact_persons"])
        for field in FREE_TEXT & set(out):
            if isinstance(out[field], str):
                out[field] = self.text(out[field])
        for field in IDENTIFIERS & set(out):
            if isinstance(out[field], str):
                out[field] = self.identifier(out[field])
        if isinstance(out.get("changes"), dict):
            out["changes"] = self.data(out["changes"])
        if isinstance(out.get("override"), dict):
            out["override"] = self.data(out["override"])
        return out


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group(0)
    if _DATE_TIME.match(found):
        return found  # a date (and an hour): 2026-04-30 10:00
    return mask("phone", re.sub(r"[ ()\-]", "", found))


def _replace_folded(text: str, needle: str, replacement: str) -> str:
    """Replace `needle` in `text` ignoring case (e-mail addresses come in any case)."""
    return re.sub(re.escape(needle), lambda _m: replacement, text, flags=re.IGNORECASE)


def scrub(text: str, *secrets: str | None) -> str:
    """`text` (an error message, say) with each of `secrets` (a recipient) masked, in any case."""
    for secret in secrets:
        if secret and secret.strip():
            field = "email" if "@" in secret else "phone"
            text = _replace_folded(text, secret, mask(field, secret))
            if field == "phone":
                digits = re.sub(r"\D", "", secret)
                if len(digits) >= 5:
                    text = text.replace(digits, mask("phone", digits))
    return Redactor().text(text) or text
