"""Load and validate a collection policy file (TOML).

A bad file is refused with the line and field at fault; the caller keeps the
policy it had.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from ..domain.errors import CollectionsError
from ..domain.policy import CollectionPolicy


class PolicyFileError(CollectionsError):
    """The policy file cannot be used; the message names the line and field."""


def bundled_policy_text() -> str:
    return resources.files("collections_es").joinpath("policy/default.toml").read_text("utf-8")


def parse_policy(text: str, *, source: str = "policy") -> CollectionPolicy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{source}: not valid TOML: {exc}") from None
    try:
        return CollectionPolicy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(whole policy)"
            line = _line_of(text, err["loc"])
            where = f"line {line}, " if line else ""
            problems.append(f"{where}field '{path}': {err['msg']}")
        raise PolicyFileError(f"{source}: " + "; ".join(problems)) from None


def load_policy(path: Path | None) -> CollectionPolicy:
    if path is None:
        return parse_policy(bundled_policy_text(), source="bundled policy")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(text, source=str(path))


def _line_of(text: str, loc: tuple[object, ...]) -> int | None:
    """Best effort: the line where the path's keys are written, following them in
    order (so `contact.windows.tue.0.start` finds `start` on the `tue` line)."""
    keys = [str(p) for p in loc if isinstance(p, str)]
    pos, line = 0, None
    for key in keys:
        k = re.escape(key)
        pattern = re.compile(rf"^[ \t]*\[[^\]\n]*\b{k}\b[^\]\n]*\]|^[ \t]*{k}[ \t]*=|[{{,][ \t]*{k}[ \t]*=", re.MULTILINE)
        match = pattern.search(text, pos)
        if match is None:
            continue
        pos = match.start()
        line = text.count("\n", 0, pos) + 1 + (1 if text[pos] == "\n" else 0)
    return line
