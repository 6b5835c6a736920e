"""Component configs: pydantic models, filled from a config file and `-o key=value` overrides.

Override values are parsed as JSON when they parse (numbers, booleans, lists), else taken as
strings, so `-o num_clips=64 -o pooling_counts=[15,8,8] -o name=foo` all do what they look like.
Dotted keys (`-o decoder.layers=2`) build nested dictionaries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vdi_cli.errors import ConfigError


def parse_overrides(items: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """Turn ["a=1", "b.c=x"] into {"a": 1, "b": {"c": "x"}}."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"override '{item}' is not of the form key=value",
                hint="write it as -o key=value, e.g. -o num_clips=16",
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override")
        node[parts[-1]] = value
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file (a dict of component settings)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file '{p}' does not exist", hint="check the path") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config file '{p}' is not valid JSON: {exc}", hint="fix the file"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a JSON object")
    return data


def validate_config(component: Any, values: dict[str, Any]) -> Any:
    """Build `component.config` from `values`; validation errors become a ConfigError."""
    cls = component.config
    if cls is None:
        if values:
            raise ConfigError(
                f"{component.kind} '{component.id}' takes no options, got {sorted(values)}"
            )
        return None
    from pydantic import ValidationError

    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"invalid options for {component.kind} '{component.id}': {problems}",
            hint=f"`vdi {_command_of(component.kind)} show {component.id}` prints the options "
            "and defaults",
        ) from exc


def _command_of(kind: str) -> str:
    from vdi_cli.registry import KINDS

    return KINDS[kind].command if kind in KINDS else kind


def config_schema(component: Any) -> dict[str, Any]:
    """The options of a component: name -> {type, default, description}."""
    cls = component.config
    if cls is None:
        return {}
    schema = cls.model_json_schema()
    out: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        field = cls.model_fields[name]
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        out[name] = {
            "type": prop.get("type") or _any_of(prop),
            "default": default,
            "required": field.is_required(),
            "description": field.description or prop.get("description", ""),
        }
    return out


def _any_of(prop: dict[str, Any]) -> str:
    kinds = [p.get("type", "?") for p in prop.get("anyOf", [])]
    if kinds:
        return "|".join(kinds)
    if "enum" in prop:
        return "enum"
    return "object"
