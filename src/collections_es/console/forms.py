"""HTML forms generated from the command declaration (`application.commands`).

Each input comes from a field of the command's body model: a choice (`Literal`)
is a select, a day a date input, an instant a date-and-time input read in the
customer's time zone, money a text input beside the currency, long text a
textarea, a list of installments a textarea of lines; optional fields are
optional. What a form posts is turned back into the body and validated by the
same model the HTTP API validates with.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Union
from zoneinfo import ZoneInfo

from annotated_types import MaxLen
from pydantic import AwareDatetime, BaseModel
from pydantic.types import StringConstraints

from ..application import fields as field_types
from ..application.commands import Command

MONEY_PATTERN = next(m.pattern for m in typing.get_args(field_types.Money)[1:] if isinstance(m, StringConstraints))
#: The longest text a single-line input is used for.
SHORT = 128


@dataclass(frozen=True)
class Input:
    """One input of a generated form."""

    name: str
    kind: str  # select, date, datetime, money, text, textarea, lines
    required: bool
    options: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # for `lines`: the fields of each line, in order
    max_length: int | None = None

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The type under Optional and Annotated, with the Annotated metadata found on the way."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin in (Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata += extra
        else:
            return annotation, metadata


def input_for(name: str, info: Any) -> Input:
    base, metadata = _unwrap(info.annotation)
    metadata += list(info.metadata)
    required = info.is_required()
    if typing.get_origin(base) is Literal:
        return Input(name, "select", required, tuple(str(v) for v in typing.get_args(base)))
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        columns = tuple(item.model_fields) if isinstance(item, type) and issubclass(item, BaseModel) else ("value",)
        return Input(name, "lines", required, columns=columns)
    if base is AwareDatetime or (isinstance(base, type) and issubclass(base, datetime)):
        return Input(name, "datetime", required)
    if isinstance(base, type) and issubclass(base, date):
        return Input(name, "date", required)
    constraints = [m for m in metadata if isinstance(m, StringConstraints)]
    if any(c.pattern == MONEY_PATTERN for c in constraints):
        return Input(name, "money", required)
    longest = min((c.max_length for c in constraints if c.max_length), default=None)
    longest = longest or min((m.max_length for m in metadata if isinstance(m, MaxLen)), default=None)
    kind = "text" if longest is not None and longest <= SHORT else "textarea"
    return Input(name, kind, required, max_length=longest)


def inputs(command: Command) -> list[Input]:
    """The inputs of a command's form, in the body model's order (the override left out)."""
    return [input_for(name, info) for name, info in command.fields().items()]


class FormError(ValueError):
    """A posted value that cannot become a body field (before the model validates it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def body_data(command: Command, form: dict[str, str], timezone: str) -> dict[str, Any]:
    """The JSON-like body a posted form stands for: empty optional inputs left out,
    date-and-time inputs read in `timezone`, lines split into their columns."""
    data: dict[str, Any] = {}
    for spec in inputs(command):
        raw = form.get(spec.name, "").strip()
        if not raw:
            continue
        if spec.kind == "datetime":
            try:
                local = datetime.fromisoformat(raw)
            except ValueError:
                raise FormError(spec.name, "must be a date and time") from None
            at = local if local.tzinfo else local.replace(tzinfo=ZoneInfo(timezone))
            data[spec.name] = at.isoformat()
        elif spec.kind == "lines":
            rows = []
            for number, line in enumerate(raw.splitlines(), 1):
                values = line.split()
                if not values:
                    continue
                if len(values) != len(spec.columns):
                    raise FormError(spec.name, f"line {number} needs {len(spec.columns)} values: {' '.join(spec.columns)}")
                rows.append(dict(zip(spec.columns, values, strict=True)))
            data[spec.name] = rows
        else:
            data[spec.name] = form.get(spec.name, "") if spec.kind == "textarea" else raw
    rule_id, reason = form.get("override_rule_id", "").strip(), form.get("override_reason", "").strip()
    if rule_id or reason:
        data["override"] = {"rule_id": rule_id, "reason": reason}
    return data
