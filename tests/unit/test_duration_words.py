"""Durations in messages read as words, never as `str(timedelta)` ("3 days, 0:00:00")."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

from collections_es.domain.calendar import duration_in_words

SOURCES = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "delta, words",
    [
        (timedelta(hours=72), "3 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=2, minutes=30), "2 hours 30 minutes"),
        (timedelta(days=1, seconds=1), "1 day 1 second"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(seconds=45), "45 seconds"),
        (timedelta(0), "0 seconds"),
        (timedelta(milliseconds=10), "less than a second"),
        (timedelta(hours=-3), "minus 3 hours"),
    ],
)
def test_a_duration_is_written_in_words(delta: timedelta, words: str) -> None:
    assert duration_in_words(delta) == words


def timedelta_names(tree: ast.AST) -> set[str]:
    """Names assigned or annotated as a timedelta in a module (`x: timedelta`, `x = timedelta(...)`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and "timedelta" in ast.unparse(node.annotation):
            names.add(ast.unparse(node.target).split(".")[-1])
        elif isinstance(node, ast.arg) and node.annotation is not None and "timedelta" in ast.unparse(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "timedelta":
            names.update(ast.unparse(t).split(".")[-1] for t in node.targets)
    return names


def test_no_message_formats_a_timedelta_with_str() -> None:
    """An f-string or str() of a name that holds a timedelta would show `3 days, 0:00:00`."""
    found = []
    for path in sorted([*SOURCES.joinpath("src").rglob("*.py"), *SOURCES.joinpath("projections").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = timedelta_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FormattedValue) and node.format_spec is None:
                shown = node.value
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "str" and len(node.args) == 1:
                shown = node.args[0]
            else:
                continue
            text = ast.unparse(shown)
            if text.split(".")[-1] in names or text.startswith("timedelta("):
                found.append(f"{path.relative_to(SOURCES)}:{node.lineno}: {text}")
    assert found == []
