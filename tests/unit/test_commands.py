"""The command declaration: one row per command, everything else derived from it."""

from __future__ import annotations

from pathlib import Path

from collections_es.application import access, commands
from collections_es.domain import compliance, lifecycle
from collections_es.domain.trail import CUSTOMER_ROLE


def test_every_lifecycle_command_is_declared_once_and_nothing_else_is():
    assert list(commands.LIFECYCLE) == list(lifecycle.COMMANDS)
    assert set(commands.COMMANDS) == {"issue", *lifecycle.COMMANDS}


def test_the_access_table_is_read_from_the_declaration():
    assert access.COMMAND_ROLES == {name: c.roles for name, c in commands.COMMANDS.items()}
    # The customer's role is no API key's: a customer acts on their portal page only (docs/portal.md).
    assert all(c.roles <= {*access.ROLES, CUSTOMER_ROLE} for c in commands.COMMANDS.values())
    assert CUSTOMER_ROLE not in access.ROLES


def test_each_preventive_rule_judges_declared_commands():
    for rule in compliance.RULES.values():
        assert set(rule.commands) <= set(commands.COMMANDS), rule.id
        for name in rule.commands:
            assert rule.id in commands.COMMANDS[name].rules


def test_a_command_is_allowed_in_the_states_the_machine_says():
    for c in commands.LIFECYCLE.values():
        assert c.states == tuple(s for s in lifecycle.STATES if c.name in lifecycle.allowed_commands(s))
        assert {t.source for t in c.transitions} == set(c.states)


def test_allowed_actions_give_each_command_its_route():
    actions = commands.allowed_actions("r-1", ["record_payment", "send_reminder"])
    assert actions == [
        {"command": "record_payment", "method": "POST", "path": "/receivables/r-1/record-payment"},
        {"command": "send_reminder", "method": "POST", "path": "/receivables/r-1/send-reminder"},
    ]


def test_the_checked_in_commands_doc_is_generated_from_the_declaration():
    docs = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
    assert docs.exists(), "generate it with `collections-es docs`"
    assert docs.read_text(encoding="utf-8") == commands.render_docs(), "docs/commands.md is stale; run `collections-es docs`"
