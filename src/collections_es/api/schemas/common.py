"""What every schema module shares: the If-Match header's format and schema helpers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

IF_MATCH = r'^(W/)?"?[0-9]{1,12}"?$'
"""An If-Match header: a version, quoted as the ETag gives it (deps.parse_if_match reads it)."""


def inline_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` substituted in place, for an `openapi_extra`
    (the OpenAPI document's components cannot hold a schema's own `$defs`)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
