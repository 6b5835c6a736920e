"""`vdi plugins`: what loaded, from which distribution, what failed (with its error), and which
component ids two plugins both register (and which one is used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from vdi_cli.output import print_json, print_table

if TYPE_CHECKING:
    from vdi_cli.plugins import PluginInfo


def _status(info: PluginInfo) -> str:
    status = info.status if not info.error else f"{info.status}: {info.error}"
    for error in info.hook_errors:
        status += f"; failed in {error}"
    return status


def plugins(json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """List the installed plugins, built-in and third-party, with their status and conflicts."""
    from vdi_cli.plugins import PREFER_ENV, get_host
    from vdi_cli.registry import all_conflicts

    host = get_host()
    host.load()
    conflicts = all_conflicts()  # builds every registry: hook failures are recorded too
    infos = host.infos
    for info in infos:
        info.conflicts = [c.to_dict() for c in conflicts
                          if info.name in (c.used.plugin, c.unused.plugin)]
    if json_out:
        print_json([i.to_dict() for i in infos])
        return
    rows = [
        (i.name, i.dist, i.version, "built-in" if i.builtin else "third-party", _status(i))
        for i in infos
    ]
    print_table(rows, ["plugin", "distribution", "version", "origin", "status"])
    if conflicts:
        typer.echo(f"\nid conflicts (the built-in or first registered plugin keeps an id; "
                   f"{PREFER_ENV}=PLUGIN chooses):")
        print_table(
            [(c.kind, c.id, f"{c.used.plugin} ({c.used.distribution})",
              f"{c.unused.plugin} ({c.unused.distribution})", c.chosen_by) for c in conflicts],
            ["kind", "id", "used", "not used", "chosen by"])


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
