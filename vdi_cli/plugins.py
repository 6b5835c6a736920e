"""Plugin manager: loads every module of the `vdi` entry-point group, each in isolation.

Built-in plugins (the modules of `plugins/`, import name `vdi_plugins`) are entry points of the
`vdi` distribution itself and go through the same code path as third-party ones. A plugin that
raises on import is recorded (name, version, error) and reported once; the CLI keeps working.

`VDI_PLUGINS` selects third-party plugins: unset = all of them, empty = none, otherwise a comma
separated list of entry-point or distribution names. Built-ins always load.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from vdi_cli import hookspecs

PLUGINS_ENV = "VDI_PLUGINS"
BUILTIN_DIST = "vdi"
ENTRY_POINT_GROUP = "vdi"


@dataclass
class PluginInfo:
    """What `vdi plugins` shows for one entry point."""

    name: str
    module: str
    dist: str
    version: str
    builtin: bool
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.dist,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
        }


class PluginHost:
    """A pluggy manager plus the record of what loaded and what did not."""

    def __init__(self, selection: str | None = None, warn: bool = True) -> None:
        self.pm = pluggy.PluginManager("vdi")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._selection = selection
        self._warn = warn
        self._loaded = False
        self._warned: set[str] = set()

    @property
    def hook(self) -> Any:
        self.load()
        return self.pm.hook

    def selected(self, info: PluginInfo) -> bool:
        if info.builtin:
            return True
        raw = self._selection if self._selection is not None else os.environ.get(PLUGINS_ENV)
        if raw is None:
            return True
        wanted = {w.strip() for w in raw.split(",") if w.strip()}
        return info.name in wanted or info.dist in wanted

    def load(self) -> None:
        """Import every selected entry point once; failures are recorded, never raised."""
        if self._loaded:
            return
        self._loaded = True
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                dist=dist,
                version=version,
                builtin=_canonical(dist) == BUILTIN_DIST,
            )
            self.infos.append(info)
            if not self.selected(info):
                info.status = "disabled"
                continue
            try:
                module = ep.load()
                self.pm.register(module, name=f"{dist}:{ep.name}")
            except Exception as exc:  # noqa: BLE001 - isolation: any import error is reported
                info.status = "failed"
                info.error = f"{type(exc).__name__}: {exc}"
                self.warn_failed(info)
                continue
            info.hooks = sorted(
                h.name for h in self.pm.get_hookcallers(module) or () if h.name
            )

    def warn_failed(self, info: PluginInfo) -> None:
        if not self._warn or info.name in self._warned:
            return
        self._warned.add(info.name)
        print(
            f"Warning: plugin '{info.name}' ({info.dist} {info.version}) failed to load: "
            f"{info.error}. Other commands keep working; `vdi plugins` lists it.",
            file=sys.stderr,
        )

    def register_object(self, obj: Any, name: str) -> None:
        """Register an in-process plugin object (tests, notebooks). Resets cached registries."""
        self.load()
        self.pm.register(obj, name=name)
        self.infos.append(
            PluginInfo(name=name, module=repr(obj), dist="(in-process)", version="", builtin=False)
        )
        from vdi_cli import registry

        registry.reset_registries()

    def plugin_name_of(self, plugin: Any) -> str:
        name = self.pm.get_name(plugin) or repr(plugin)
        return name.split(":", 1)[-1]

    def dist_of(self, plugin: Any) -> str:
        name = self.pm.get_name(plugin) or ""
        return name.split(":", 1)[0] if ":" in name else name


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in sorted(eps, key=lambda e: (e.dist.name if e.dist else "", e.name)):
        key = (ep.name, ep.value)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        unique.append(ep)
    return unique


_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use (never at import time)."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_host(selection: str | None = None, warn: bool = True) -> PluginHost:
    """Start over with a fresh host (tests, or after changing `VDI_PLUGINS`)."""
    global _host
    _host = PluginHost(selection=selection, warn=warn)
    from vdi_cli import registry

    registry.reset_registries()
    return _host


def emit(event: Any) -> None:
    """Send a run event to every `track_event` implementation; a failing logger only warns."""
    host = get_host()
    for impl in host.hook.track_event.get_hookimpls():
        try:
            impl.function(**{k: event for k in impl.argnames if k == "event"})
        except Exception as exc:  # noqa: BLE001 - a logger must never break a run
            print(
                f"Warning: plugin '{host.plugin_name_of(impl.plugin)}' failed in track_event: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
