"""Listing commands, one per component kind: `vdi heads`, `vdi heads show mmn`, `--json`.

Other command modules can add subcommands to a kind's group with `kind_group(app, kind)`
(e.g. `vdi datasets generate`).
"""

from __future__ import annotations

import weakref
from typing import Any

import typer

from vdi_cli.output import print_json, print_table
from vdi_cli.registry import KINDS

_groups: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def kind_group(app: typer.Typer, kind: str) -> typer.Typer:
    """The Typer group of `kind` on `app`, so other modules can add subcommands to it."""
    return _groups.setdefault(app, {})[kind]


def _others(registry: Any, component_id: str) -> list[dict[str, str]]:
    """The plugins whose component of this id lost an id conflict (see `vdi plugins`)."""
    return [{"plugin": c.plugin, "distribution": c.distribution}
            for c in registry.shadowed(component_id)]


def _plugin_cell(registry: Any, component: Any) -> str:
    others = ", ".join(o["plugin"] for o in _others(registry, component.id))
    return f"{component.plugin} (also {others}: not used)" if others else component.plugin


def _make_group(kind: str) -> typer.Typer:
    spec = KINDS[kind]
    group = typer.Typer(
        help=f"List the available {spec.command} (`show ID` prints one's options).",
        invoke_without_command=True,
    )

    @group.callback()
    def listing(
        ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        from vdi_cli.registry import get_registry

        registry = get_registry(kind)
        items = registry.all()
        if json_out:
            print_json([{**c.to_dict(), "also_registered_by": _others(registry, c.id)}
                        for c in items])
            return
        print_table(
            [(c.id, _plugin_cell(registry, c), c.description) for c in items],
            ["id", "plugin", "description"],
        )

    listing.__doc__ = f"List the registered {spec.command}."

    @group.command("show")
    def show(
        component_id: str = typer.Argument(..., metavar="ID"),
        json_out: bool = typer.Option(False, "--json", help="JSON output."),
    ) -> None:
        """Print a component's description and its config options with defaults."""
        from vdi_cli.config import config_schema
        from vdi_cli.registry import get_registry

        registry = get_registry(kind)
        component = registry.get(component_id)
        schema = config_schema(component)
        others = _others(registry, component.id)
        if json_out:
            print_json({**component.to_dict(), "also_registered_by": others, "config": schema})
            return
        typer.echo(f"{component.id}  ({spec.name}, plugin {component.plugin})")
        for other in others:
            typer.echo(f"also registered by plugin {other['plugin']} ({other['distribution']}),"
                       f" not used (VDI_PREFER={other['plugin']} selects it)")
        if component.description:
            typer.echo(component.description)
        if component.requires:
            typer.echo(f"requires: {', '.join(component.requires)}")
        if schema:
            print_table(
                [(k, v["type"], v["default"], v["description"]) for k, v in schema.items()],
                ["option", "type", "default", "description"],
            )
        else:
            typer.echo("(no options)")

    return group


def register(app: typer.Typer) -> None:
    groups = _groups.setdefault(app, {})
    for kind, spec in KINDS.items():
        group = _make_group(kind)
        groups[kind] = group
        app.add_typer(group, name=spec.command, rich_help_panel="Components")
