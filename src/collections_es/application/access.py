"""Who may do what: the role → command and role → view matrix.

This is the one place access is decided; the API enforces it and
`docs/access.md` is generated from it.
"""

from __future__ import annotations

from ..domain import lifecycle
from ..domain.errors import PermissionDeniedError

ROLES: tuple[str, ...] = ("service", "collector", "supervisor", "legal", "sales", "customer_service", "auditor")
PII_ROLES: frozenset[str] = frozenset({"service", "collector", "supervisor", "legal", "customer_service"})

_PAYMENTS = frozenset({"service", "collector", "supervisor"})
_COLLECTION = frozenset({"collector", "supervisor"})
_TIME = frozenset({"service", "supervisor"})

COMMAND_ROLES: dict[str, frozenset[str]] = {
    "issue": frozenset({"service", "supervisor"}),
    "send_reminder": frozenset({"service", "collector", "supervisor"}),
    "fall_due": _TIME,
    "start_follow_up": frozenset({"service", "collector", "supervisor"}),
    "record_contact": frozenset({"collector", "supervisor", "sales", "customer_service", "legal"}),
    "promise_to_pay": _COLLECTION | {"sales"},
    "agree_installment_plan": _COLLECTION,
    "break_promise": _TIME | {"collector"},
    "escalate": frozenset({"service", "collector", "supervisor"}),
    "approve_legal_referral": frozenset({"supervisor"}),
    "refer_to_legal": frozenset({"legal", "supervisor"}),
    "record_payment": _PAYMENTS,
    # The policy narrows these further (write_off_approver_roles, legal_referral_roles):
    # the compliance rules refuse a role the policy in force does not name.
    "request_write_off": frozenset({"collector", "supervisor", "legal"}),
    "approve_write_off": frozenset({"supervisor", "legal"}),
    "raise_dispute": frozenset({"collector", "supervisor", "customer_service", "sales"}),
    "resolve_dispute": frozenset({"supervisor", "customer_service"}),
    "assign_collector": frozenset({"supervisor"}),
    "record_recovery": _PAYMENTS | {"legal"},
    "warn_limitation": _TIME,
}

VIEW_ROLES: dict[str, frozenset[str]] = {
    "customers.write": frozenset({"service", "supervisor", "sales"}),
    "customers.read": frozenset(ROLES),
    "customers.credit_record": frozenset(ROLES),
    "contacts.read": frozenset(ROLES),
    "letters.read": frozenset({"service", "collector", "supervisor", "legal", "customer_service"}),
    "notifications.read": frozenset({"service", "collector", "supervisor", "customer_service", "auditor"}),
    "receivables.read": frozenset(ROLES),
    "sandbox.clock": frozenset({"service", "supervisor"}),
    "admin.tick": frozenset({"service", "supervisor"}),
    "reports.aging": frozenset({"service", "collector", "supervisor", "legal", "auditor"}),
    "reports.kpis": frozenset({"supervisor", "auditor"}),
    "worklist.read": frozenset({"collector", "supervisor", "legal"}),
    "policy.read": frozenset(ROLES),
    "policy.write": frozenset({"supervisor"}),
    "audit.read": frozenset({"supervisor", "auditor"}),
    "compliance.rules": frozenset(ROLES),
    # A collector sees the findings about their own work only.
    "compliance.findings": frozenset({"collector", "supervisor", "auditor"}),
    "reports.collectors": frozenset({"supervisor", "auditor"}),
}

missing = set(lifecycle.COMMANDS) - set(COMMAND_ROLES)
assert not missing, f"commands without roles: {missing}"


def check_command(role: str, command: str) -> None:
    if role not in COMMAND_ROLES.get(command, frozenset()):
        allowed = ", ".join(sorted(COMMAND_ROLES.get(command, ())))
        raise PermissionDeniedError(f"role '{role}' may not {command}; allowed roles: {allowed}")


def commands_for(role: str, commands: list[str]) -> list[str]:
    """Those of `commands` the role may send."""
    return [c for c in commands if role in COMMAND_ROLES.get(c, frozenset())]


def check_view(role: str, view: str) -> None:
    if role not in VIEW_ROLES[view]:
        allowed = ", ".join(sorted(VIEW_ROLES[view]))
        raise PermissionDeniedError(f"role '{role}' may not use {view}; allowed roles: {allowed}")


def render_docs() -> str:
    """The generated `docs/access.md`."""
    lines = [
        "# Roles and access",
        "",
        "Generated from `collections_es.application.access` by `collections-es docs`;",
        "a test fails when this file differs from the code that enforces it.",
        "",
        "| command | " + " | ".join(ROLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]
    for command, roles in COMMAND_ROLES.items():
        lines.append(f"| `{command}` | " + " | ".join("yes" if r in roles else "" for r in ROLES) + " |")
    lines += ["", "| view | " + " | ".join(ROLES) + " |", "|---|" + "---|" * len(ROLES)]
    for view, roles in VIEW_ROLES.items():
        lines.append(f"| `{view}` | " + " | ".join("yes" if r in roles else "" for r in ROLES) + " |")
    lines += ["", "Contact details (PII) are shown in full to: " + ", ".join(r for r in ROLES if r in PII_ROLES)
              + "; masked for the others.", ""]
    return "\n".join(lines)
