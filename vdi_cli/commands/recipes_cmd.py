"""`vdi recipes` (the training recipes the plugins ship) and `vdi recipes show NAME|FILE`
(one recipe's resolved values: what `vdi train --recipe` starts from)."""

from __future__ import annotations

import typer

from vdi_cli.output import print_json, print_table

recipes_app = typer.Typer(help="List the training recipes (`show NAME` prints one's values).",
                          invoke_without_command=True)


@recipes_app.callback()
def listing(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """List the training recipes: name, description and the plugin that ships it."""
    if ctx.invoked_subcommand is not None:
        return
    from vdi_cli.recipes import registered_recipes

    recipes = list(registered_recipes().values())
    if json_out:
        print_json([r.to_dict() for r in recipes])
        return
    print_table([(r.name, r.plugin, r.description) for r in recipes],
                ["name", "plugin", "description"])


@recipes_app.command("show")
def show(
    ref: str = typer.Argument(..., metavar="NAME|FILE", help="A recipe name or a .toml file."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Print a recipe's resolved training options: its values over `vdi train`'s defaults,
    with the head preset's filled in (what `vdi train --recipe` trains with when the command
    line adds nothing), after the checks `vdi train` makes before a model loads (component ids
    and options). The `from` column says which values the recipe sets."""
    import json

    from vdi_cli.recipes import find_recipe, resolved_values

    recipe = find_recipe(ref)
    values = resolved_values(recipe, check=True)
    if json_out:
        print_json({**recipe.to_dict(), "values": recipe.values, "resolved": values})
        return
    typer.echo(f"{recipe.name}  ({recipe.path}"
               + (f", plugin {recipe.plugin})" if recipe.plugin else ")"))
    if recipe.description:
        typer.echo(recipe.description)
    typer.echo(f"sha256 {recipe.sha256}")
    print_table([(k, json.dumps(v), "recipe" if k in recipe.values else "default")
                 for k, v in values.items()], ["option", "value", "from"])


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")
