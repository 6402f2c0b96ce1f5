"""Walking an OpenAPI v3 schema (a CRD's, or the one the API server publishes for kubectl explain)."""

from __future__ import annotations

from typing import Any


def undocumented(schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields without a description: `kubectl explain` would show `<empty>` for them."""
    missing = []
    for name, field in (schema.get("properties") or {}).items():
        where = f"{path}.{name}"
        documented = field.get("description") or any(part.get("description") for part in field.get("allOf", []))
        if not documented:
            missing.append(where)
        missing += undocumented(field, where)
    for nested, suffix in ((schema.get("items"), "[]"), (schema.get("additionalProperties"), "{}")):
        if isinstance(nested, dict):
            missing += undocumented(nested, path + suffix)
    return missing
