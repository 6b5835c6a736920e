"""Defaults and id forms come from the registered plugins, not from the core.

The core names no built-in component. A plugin marks what it offers as a default when it
registers it: `register(id, factory, default_for=("backbone", "training-free-backbone"))`
(a role, or several); `default_id(kind, role)` finds it (the built-ins load first, so theirs wins
unless `VDI_PREFER` or `VDI_PLUGINS` says otherwise). A component whose ids carry parts also
registers `id_prefix="open_clip:"` and `parse_id=` (a callable or a lazy "module:function" that
turns the whole id into its config values): `prefixed_component` finds it for an id such as
`open_clip:ViT-B-32@openai`. Other facts the core asks about a component are registry extras
too (`synthetic_only=True`: a backbone that knows only a synthetic world).

Roles the core asks for: backbone (`vdi extract`, `load_backbone`, `vdi train`), head and
objective (`vdi train`: the head, and the objectives trained when none is named),
training-free-backbone and training-free-head (`vdi retrieve` without a checkpoint),
offline-backbone (the hint when the training-free default cannot be loaded offline), parser
(`vdi parse`, `vdi train`, evaluation of Qs / Qd). A head may offer `train_defaults=` (a
callable of its options giving (preset name, training options)): what `vdi train` takes for
the options a run leaves unset (its learning rate, epochs, milestones, freeze epochs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from vdi_cli.errors import VdiError


def _roles(component: Any) -> tuple[str, ...]:
    roles = component.extra.get("default_for", ())
    return (roles,) if isinstance(roles, str) else tuple(roles)


def with_role(kind: str, role: str | None = None) -> list[Any]:
    """The components of `kind` registered with `default_for` naming `role` (default: the
    kind's own name), in registration order (built-ins first)."""
    from vdi_cli.registry import get_registry

    role = role or kind
    registry = get_registry(kind)
    return [registry.get(i) for i in registry.registered()
            if role in _roles(registry.get(i))]


def default_id(kind: str, role: str | None = None) -> str:
    """The id of the default `kind` for `role`; a VdiError when no plugin offers one."""
    found = with_role(kind, role)
    if not found:
        from vdi_cli.registry import KINDS

        raise VdiError(
            f"no installed plugin registers a default {role or kind}",
            hint=f"name one explicitly (`vdi {KINDS[kind].command}` lists them), or install "
            "the plugin that provides it")
    return str(found[0].id)


def default_ids(kind: str, role: str | None = None) -> list[str]:
    """Every id registered with `default_for` naming `role` (the default set of a kind that is
    used several at once, as objectives are), in registration order."""
    return [str(c.id) for c in with_role(kind, role)]


def component_hook(component: Any, name: str) -> Callable[..., Any] | None:
    """A callable a component offers in its registration extras (`name=` a callable or a lazy
    "module:function"), or None."""
    return _resolve(component.extra.get(name))


def default_or_none(kind: str, role: str | None = None) -> str | None:
    """`default_id`, or None when no plugin offers one (for hints and notices)."""
    found = with_role(kind, role)
    return str(found[0].id) if found else None


def prefixed_component(kind: str, component_id: str) -> tuple[Any, dict[str, Any]] | None:
    """(component, config values) for an id in a registered prefixed form, else None."""
    from vdi_cli.registry import get_registry

    registry = get_registry(kind)
    for cid in registry.registered():
        component = registry.get(cid)
        prefix = component.extra.get("id_prefix")
        if prefix and component_id.startswith(prefix):
            parse = _resolve(component.extra.get("parse_id"))
            return component, dict(parse(component_id)) if parse is not None else {}
    return None


def registry_id(kind: str, component_id: str) -> str:
    """The registered id behind an id (a prefixed form is its component's id)."""
    found = prefixed_component(kind, component_id)
    return str(found[0].id) if found is not None else component_id


def _resolve(fn: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    if fn is None or callable(fn):
        return fn
    module, _, attr = fn.partition(":")
    return getattr(importlib.import_module(module), attr)
