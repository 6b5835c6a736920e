"""Component configs: pydantic models, filled from a config file and `-o key=value` overrides.

Override values are parsed as JSON when they parse (numbers, booleans, lists), else taken as
strings, so `-o num_clips=64 -o pooling_counts=[15,8,8] -o name=foo` all do what they look like.
Dotted keys (`-o decoder.layers=2`) build nested dictionaries.
"""

from __future__ import annotations

import difflib
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


def did_you_mean(word: str, candidates: Any) -> str:
    """" (did you mean 'x'?)" for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def option_names(cls: Any) -> set[str]:
    """The keys a pydantic config class accepts: field names and their aliases."""
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        names.add(name)
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
    return names


def unknown_keys_message(keys: list[str], known: Any, noun: str = "option",
                         where: str = "") -> str:
    """"unknown option 'hiden_size' for head 'mmn' (did you mean 'hidden_size'?)"; several
    unknown keys are listed each with its own suggestion."""
    if len(keys) == 1:
        return f"unknown {noun} '{keys[0]}'{where}{did_you_mean(keys[0], known)}"
    listed = ", ".join(f"'{k}'{did_you_mean(k, known)}" for k in keys)
    return f"unknown {noun}s{where}: {listed}"


def check_option_keys(cls: Any, values: dict[str, Any], hint: str, noun: str = "option",
                      where: str = "") -> None:
    """Refuse keys `cls` does not declare: pydantic would drop them without a word, so a typo
    (`-H hiden_size=64`) would train with the default. A class that allows extra keys
    (`model_config = {"extra": "allow"}`) opts out."""
    if (getattr(cls, "model_config", None) or {}).get("extra") == "allow":
        return
    known = option_names(cls)
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(unknown_keys_message(unknown, known, noun, where), hint=hint)


def show_hint(component: Any) -> str:
    """"`vdi heads show mmn` lists its options": the command that lists a component's keys."""
    return f"`vdi {_command_of(component.kind)} show {component.id}` lists its options"


def validate_config(component: Any, values: dict[str, Any]) -> Any:
    """Build `component.config` from `values`; unknown keys and validation errors become a
    ConfigError naming the component and the command that lists its options."""
    cls = component.config
    if cls is None:
        if values:
            raise ConfigError(
                f"{component.kind} '{component.id}' takes no options, got "
                f"{', '.join(map(repr, sorted(values)))}",
                hint=f"drop them; {show_hint(component)}",
            )
        return None
    from pydantic import ValidationError

    check_option_keys(cls, values, show_hint(component),
                      where=f" for {component.kind} '{component.id}'")

    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"invalid options for {component.kind} '{component.id}': {problems}",
            hint=f"{show_hint(component)} and their defaults",
        ) from exc


def _command_of(kind: str) -> str:
    from vdi_cli.registry import KINDS

    return KINDS[kind].command if kind in KINDS else kind


def config_schema(component: Any) -> dict[str, Any]:
    """The options of a component: name -> {type, default, description}."""
    return class_schema(component.config)


def class_schema(cls: Any) -> dict[str, Any]:
    """The options of a pydantic config class (or None): name -> {type, default, ...}."""
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
