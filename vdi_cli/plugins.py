"""Plugin manager: loads every module of the `vdi` entry-point group, each in isolation.

Built-in plugins (the modules of `plugins/`, import name `vdi_plugins`) are entry points of the
`vdi` distribution itself and go through the same code path as third-party ones. A plugin that
raises on import is recorded (name, version, error) and reported once; the CLI keeps working.

`VDI_PLUGINS` selects third-party plugins: unset = all of them, empty = none, otherwise a comma
separated list of entry-point or distribution names. Built-ins always load. A name that matches
no installed plugin is a warning (a typo would otherwise load nothing, silently).

`VDI_PREFER` settles id conflicts (two plugins registering `spacy`): a comma separated list of
plugin (entry-point or distribution) names that win any conflict they take part in, earlier
names first. Without it the built-in, else the first registered plugin, keeps the id, with a
warning naming both. Built-ins load first, then third-party plugins by distribution name.
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
PREFER_ENV = "VDI_PREFER"
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
    hook_errors: list[str] = field(default_factory=list)  # "register_heads: RuntimeError: x"
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # ids shared with another

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
            "hook_errors": self.hook_errors,
            "conflicts": self.conflicts,
        }


class PluginHost:
    """A pluggy manager plus the record of what loaded and what did not."""

    def __init__(self, selection: str | None = None, warn: bool = True,
                 prefer: str | None = None) -> None:
        self.pm = pluggy.PluginManager("vdi")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._selection = selection
        self._prefer = prefer
        self._warn = warn
        self._loaded = False
        self._warned: set[str] = set()

    @property
    def hook(self) -> Any:
        self.load()
        return self.pm.hook

    def _names(self, given: str | None, env: str) -> list[str] | None:
        raw = given if given is not None else os.environ.get(env)
        if raw is None:
            return None
        return [w.strip() for w in raw.split(",") if w.strip()]

    def selected(self, info: PluginInfo) -> bool:
        if info.builtin:
            return True
        wanted = self._names(self._selection, PLUGINS_ENV)
        return wanted is None or any(_matches(w, info.name, info.dist) for w in wanted)

    def preference(self, plugin: str, dist: str) -> int | None:
        """Where the plugin stands in VDI_PREFER (0 first), or None when it is not named."""
        for i, name in enumerate(self._names(self._prefer, PREFER_ENV) or ()):
            if _matches(name, plugin, dist):
                return i
        return None

    def load(self) -> None:
        """Import every selected entry point once; failures are recorded, never raised."""
        if self._loaded:
            return
        self._loaded = True
        eps = sorted(_entry_points(), key=lambda e: not _is_builtin(e))  # built-ins first
        for ep in eps:
            dist, version = _dist_info(ep)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                dist=dist,
                version=version,
                builtin=_is_builtin(ep),
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
        self._warn_unmatched()

    def _warn_unmatched(self) -> None:
        """A VDI_PLUGINS / VDI_PREFER name that matches no installed plugin: say so once."""
        from vdi_cli.config import did_you_mean

        for env, given in ((PLUGINS_ENV, self._selection), (PREFER_ENV, self._prefer)):
            candidates = [i for i in self.infos if env == PREFER_ENV or not i.builtin]
            known = sorted({n for i in candidates for n in (i.name, i.dist)})
            for name in self._names(given, env) or ():
                if not any(_matches(name, i.name, i.dist) for i in self.infos):
                    self.warn_once(
                        f"Warning: {env} names '{name}', which matches no installed plugin"
                        f"{did_you_mean(name, known)}; `vdi plugins` lists the installed ones")

    def warn_once(self, message: str, key: str | None = None) -> None:
        """Print a warning on stderr once per host and `key` (default: the message itself);
        registries are rebuilt after a reset, their warnings are not repeated."""
        key = message if key is None else key
        if not self._warn or key in self._warned:
            return
        self._warned.add(key)
        print(message, file=sys.stderr)

    def hook_failed(self, plugin: Any, hook: str, exc: BaseException) -> None:
        """A plugin raised inside `hook`: warn once per plugin and hook (a logger failing on
        every event says so once), and record it for `vdi plugins`."""
        name = self.plugin_name_of(plugin)
        error = f"{hook}: {type(exc).__name__}: {exc}"
        for info in self.infos:
            if info.name == name and error not in info.hook_errors:
                info.hook_errors.append(error)
        self.warn_once(f"Warning: plugin '{name}' failed in {error}; everything else keeps "
                       "working (`vdi plugins` lists it)", key=f"hook:{name}:{hook}")

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


def _matches(wanted: str, name: str, dist: str) -> bool:
    """A VDI_PLUGINS / VDI_PREFER entry names this plugin (its entry point or distribution;
    distribution names compare as pip does: case, '-' and '_' alike)."""
    return wanted == name or _canonical(wanted) == _canonical(dist)


_DISTS: dict[str, tuple[str, str]] = {}


def _dist_info(ep: metadata.EntryPoint) -> tuple[str, str]:
    """(name, version) of an entry point's distribution, "?" without one. Each `dist.name` /
    `dist.version` parses the METADATA file again (~10-25 ms a time on a busy machine, ~30
    reads a start), so each distribution is read once per process."""
    dist = ep.dist
    if dist is None:
        return "?", "?"
    path = getattr(dist, "_path", None)  # each entry point has its own dist object
    key = str(path) if path is not None else f"id:{id(dist)}"
    if key not in _DISTS:
        meta = dist.metadata
        _DISTS[key] = (meta["Name"], meta["Version"])
    return _DISTS[key]


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    return ep.dist is not None and _canonical(_dist_info(ep)[0]) == BUILTIN_DIST


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in sorted(eps, key=lambda e: (_dist_info(e)[0] if e.dist else "", e.name)):
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


def reset_host(selection: str | None = None, warn: bool = True,
               prefer: str | None = None) -> PluginHost:
    """Start over with a fresh host (tests, or after changing `VDI_PLUGINS` / `VDI_PREFER`)."""
    global _host
    _host = PluginHost(selection=selection, warn=warn, prefer=prefer)
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
            host.hook_failed(impl.plugin, "track_event", exc)
