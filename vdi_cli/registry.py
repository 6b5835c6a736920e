"""Typed registries of components, built from the `register_*` hooks on first use.

A component is a descriptor: a kebab-case id, a pydantic `Config`, the extras it needs and a lazy
factory. Nothing heavy is imported until `Component.build()` is called. An unknown id suggests
the closest ids and the listing command.

Two plugins registering the same id is a conflict, not an error: one plugin must not stop every
command (the listing its own hint recommends included). The built-in, else the first registered
plugin, keeps the id, unless `VDI_PREFER` names the other; a warning names both plugins and how
to choose, and `vdi plugins` and the listings show the conflict. A plugin that raises in its
hook, or registers an id that is not kebab-case, is reported and the rest keeps working.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vdi_cli.errors import UnknownComponentError, VdiError


@dataclass(frozen=True)
class Kind:
    """One kind of component: its hook, its noun in messages and its listing command."""

    name: str  # noun used in messages: "head"
    hook: str  # "register_heads"
    command: str  # "heads"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("backbone", "register_backbones", "backbones"),
        Kind("parser", "register_query_parsers", "parsers"),
        Kind("sequence-model", "register_sequence_models", "sequence-models"),
        Kind("head", "register_heads", "heads"),
        Kind("objective", "register_objectives", "objectives"),
        Kind("dataset", "register_datasets", "datasets"),
    )
}

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


@dataclass(frozen=True)
class Component:
    """A registered component. `factory` is a callable or a lazy "module:attribute" string."""

    id: str
    kind: str
    factory: Callable[..., Any] | str
    config: type | None = None
    description: str = ""
    requires: tuple[str, ...] = ()
    plugin: str = ""
    distribution: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def resolve_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            needs = ", ".join(self.requires) or "its dependencies"
            raise VdiError(
                f"{self.kind} '{self.id}' needs {needs}, which could not be imported ({exc})",
                hint=f"install them, e.g. pip install -c constraints.txt 'vdi[{self.requires[0]}]'"
                if self.requires
                else "reinstall the plugin that provides it",
            ) from exc
        return getattr(module, attr)

    def make_config(self, values: dict[str, Any] | None = None) -> Any:
        """Validate `values` (e.g. from `-o key=value`) against the component's config class."""
        from vdi_cli.config import validate_config

        return validate_config(self, values or {})

    def build(self, config: Any = None, **kwargs: Any) -> Any:
        if config is None or isinstance(config, dict):
            config = self.make_config(config)
        factory = self.resolve_factory()
        return factory(config, **kwargs) if config is not None else factory(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "requires": list(self.requires),
        }


@dataclass(frozen=True)
class Conflict:
    """One id registered by two plugins: which one is used, and what decided it."""

    kind: str
    id: str
    used: Component
    unused: Component
    chosen_by: str  # "registered first" | "VDI_PREFER"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "used_by": _who(self.used),
                "also_registered_by": _who(self.unused), "chosen_by": self.chosen_by}

    def warning(self) -> str:
        from vdi_cli.plugins import PREFER_ENV

        return (f"Warning: {self.kind} id '{self.id}' is registered by two plugins: "
                f"'{self.used.plugin}' ({self.used.distribution}) and '{self.unused.plugin}' "
                f"({self.unused.distribution}); '{self.used.plugin}' keeps it (registered "
                f"first). Set {PREFER_ENV}={self.unused.plugin} to use the other, or "
                f"{PREFER_ENV}={self.used.plugin} to keep this choice without this warning; "
                "`vdi plugins` lists the conflicts.")


def _who(component: Component) -> dict[str, str]:
    return {"plugin": component.plugin, "distribution": component.distribution}


class Registry:
    """The components of one kind, by id. `prefer(component)` ranks a component's plugin in
    VDI_PREFER (lower wins) or gives None; it decides which of two same-id components stays."""

    def __init__(self, kind: Kind,
                 prefer: Callable[[Component], int | None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, Component] = {}
        self._prefer = prefer or (lambda component: None)
        self.conflicts: list[Conflict] = []

    def add(self, component: Component) -> Conflict | None:
        """Add `component`; a second one with a taken id is a Conflict (returned), not an
        error. An id that is not kebab-case is a VdiError (the caller reports it)."""
        if not _ID_RE.match(component.id):
            raise VdiError(
                f"plugin '{component.plugin}' registered {self.kind.name} id '{component.id}', "
                "which is not kebab-case",
                hint="ids use lower-case letters, digits, '-' and '.', e.g. 'my-backbone-v2'",
            )
        old = self._items.get(component.id)
        if old is None:
            self._items[component.id] = component
            return None
        rank_old, rank_new = self._prefer(old), self._prefer(component)
        if rank_new is not None and (rank_old is None or rank_new < rank_old):
            used, unused, why = component, old, "VDI_PREFER"
        else:
            used, unused = old, component
            why = "VDI_PREFER" if rank_old is not None else "registered first"
        self._items[component.id] = used
        conflict = Conflict(self.kind.name, component.id, used, unused, why)
        self.conflicts.append(conflict)
        return conflict

    def shadowed(self, component_id: str) -> list[Component]:
        """The components registered under `component_id` that lost a conflict."""
        return [c.unused for c in self.conflicts if c.id == component_id]

    def ids(self) -> list[str]:
        return sorted(self._items)

    def registered(self) -> list[str]:
        """The ids in registration order (built-ins first): what `vdi_cli.defaults` ranks by."""
        return list(self._items)

    def all(self) -> list[Component]:
        return [self._items[i] for i in self.ids()]

    def __contains__(self, component_id: str) -> bool:
        return component_id in self._items

    def get(self, component_id: str) -> Component:
        try:
            return self._items[component_id]
        except KeyError:
            pass
        close = difflib.get_close_matches(component_id, self.ids(), n=3, cutoff=0.5)
        suggestion = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownComponentError(
            f"unknown {self.kind.name} '{component_id}'{suggestion}",
            hint=f"`vdi {self.kind.command}` lists the available ones"
            + (f": {', '.join(self.ids())}" if self.ids() else ""),
        )


_registries: dict[str, Registry] = {}


def reset_registries() -> None:
    _registries.clear()


def get_registry(kind: str) -> Registry:
    """The registry of `kind` ("head", "backbone", ...), built from the plugins on first use."""
    if kind in _registries:
        return _registries[kind]
    from vdi_cli.plugins import get_host

    spec = KINDS[kind]
    host = get_host()
    registry = Registry(spec, prefer=lambda c: host.preference(c.plugin, c.distribution))
    caller = getattr(host.hook, spec.hook)
    for impl in caller.get_hookimpls():  # registration order: built-ins first (plugins.py)
        plugin_name = host.plugin_name_of(impl.plugin)
        dist = host.dist_of(impl.plugin)

        def register(
            id: str,  # noqa: A002 - the natural name for plugin authors
            factory: Callable[..., Any] | str,
            *,
            config: type | None = None,
            description: str = "",
            requires: tuple[str, ...] | list[str] = (),
            _plugin: str = plugin_name,
            _dist: str = dist,
            **extra: Any,
        ) -> None:
            component = Component(id=id, kind=kind, factory=factory, config=config,
                                  description=description, requires=tuple(requires),
                                  plugin=_plugin, distribution=_dist, extra=extra)
            try:
                conflict = registry.add(component)
            except VdiError as exc:  # a bad id: leave that one component out, keep the rest
                host.warn_once(f"Warning: {exc.message}; it is left out ({exc.hint})")
                return
            if conflict is not None and conflict.chosen_by != "VDI_PREFER":
                host.warn_once(conflict.warning())

        kwargs = {name: register for name in impl.argnames if name == "register"}
        try:
            impl.function(**kwargs)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
            host.hook_failed(impl.plugin, spec.hook, exc)
    _registries[kind] = registry
    return registry


def all_conflicts() -> list[Conflict]:
    """The id conflicts of every kind (builds every registry: descriptors only, cheap)."""
    return [c for kind in KINDS for c in get_registry(kind).conflicts]


def get_component(kind: str, component_id: str) -> Component:
    """Shortcut: `get_registry(kind).get(component_id)`."""
    return get_registry(kind).get(component_id)
