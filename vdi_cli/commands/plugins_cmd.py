"""`vdi plugins`: what loaded, from which distribution, and what failed (with its error)."""

from __future__ import annotations

import typer

from vdi_cli.output import print_json, print_table


def plugins(json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """List the installed plugins, built-in and third-party, with their status."""
    from vdi_cli.plugins import get_host

    host = get_host()
    host.load()
    infos = host.infos
    if json_out:
        print_json([i.to_dict() for i in infos])
        return
    rows = [
        (
            i.name,
            i.dist,
            i.version,
            "built-in" if i.builtin else "third-party",
            i.status if not i.error else f"{i.status}: {i.error}",
        )
        for i in infos
    ]
    print_table(rows, ["plugin", "distribution", "version", "origin", "status"])


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
