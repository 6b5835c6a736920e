"""`vdi datasets check FORMAT FILE`: read an annotation file and report what was kept, dropped
and clipped (the listing itself, `vdi datasets`, comes from commands/components.py)."""

from __future__ import annotations

import typer

from vdi_cli.commands.components import kind_group
from vdi_cli.output import print_json, print_table


def check(
    format_id: str = typer.Argument(..., metavar="FORMAT", help="Dataset format id."),
    annotations: str = typer.Argument(..., metavar="FILE", help="Annotation file."),
    option: list[str] = typer.Option([], "-o", help="Format option key=value (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Read an annotation file; print its video/query counts and what was dropped or clipped."""
    from vdi_cli.config import parse_overrides
    from vdi_cli.datasets import load_dataset

    report = load_dataset(format_id, annotations, **parse_overrides(option))
    summary = report.summary()
    if json_out:
        print_json(summary)
        return
    print_table(
        [(summary["videos"], summary["queries"], summary["dropped"], summary["clipped"])],
        ["videos", "queries", "dropped", "clipped"],
    )
    for message in report.messages:
        typer.echo(f"- {message}")


def register(app: typer.Typer) -> None:
    kind_group(app, "dataset").command("check")(check)
