"""Stored settings: their ids (one hashing scheme for new and migrated rows) and their description in words
for the dashboard's captions and the CLI summary."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(values: dict[str, Any]) -> str:
    """Sorted keys, no whitespace: the same settings always give the same text (and id)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def setting_id(eval_name: str, values: dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over (measurement, canonical settings JSON)."""
    return hashlib.sha256(canonical_json({"eval": eval_name, "settings": values}).encode()).hexdigest()[:16]


ENGINE_KEYS = ("precision", "device", "decoder", "limit", "subset", "data", "revision")


def describe_setting(values: dict[str, Any] | str) -> str:
    """A one-line description of stored settings: 'templates=clip · fp32 · cpu · pil decoder · all images'."""
    if isinstance(values, str):
        values = json.loads(values)
    if not values.get("recorded", True):
        known = ", ".join(f"{k}={v}" for k, v in values.items() if k != "recorded")
        return f"settings not recorded (stored before schema 3{'; ' + known if known else ''})"
    own = [f"{k}={_short(v)}" for k, v in sorted(values.items()) if k not in ENGINE_KEYS]
    limit = values.get("limit")
    images = "all images" if limit is None else f"≤ {limit} images per set ({values.get('subset')})"
    engine = [values.get("precision"), values.get("device"), f"{values.get('decoder')} decoder", images]
    return " · ".join([*own, *(str(e) for e in engine if e), f"data {values.get('data')}"])


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 4:
        return f"[{value[0]} … {value[-1]}] ({len(value)})"
    if isinstance(value, list) and value and isinstance(value[0], list):
        return ",".join(f"{a}:{b}" for a, b in value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def legacy_setting(eval_name: str, templates: str | None) -> tuple[str, str]:
    """(id, JSON) of the setting given to rows stored before schema 3, which recorded no settings but the
    template set in their variants (schema 2 → 3 migration)."""
    values: dict[str, Any] = {"recorded": False}
    if templates:
        values["templates"] = templates
    return setting_id(eval_name, values), json.dumps(values, sort_keys=True)
