"""Training recipes: TOML files of `vdi train` options, the one place a setting's values live.

A recipe is a flat TOML table of `TrainConfig` keys (`epochs`, `lr`, `backbone`, ...), with
`head_options`, `parser_options`, `backbone_options` and `objective_options.ID` as sub-tables,
plus a one-line `description`. `vdi train --recipe NAME|FILE` starts from its values, and the
options given on the command line go on top; everything neither sets keeps `TrainConfig`'s
default. Plugins ship recipes through the `register_recipes` hook (the built-in ones, which name
`mmn` and the CLIP backbones, live with the built-in head plugin), so the core names no
built-in; any `.toml` file path works too.

Read with the standard library's `tomllib`; torch-free, and the plugins are asked only when a
recipe is looked up by name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.errors import ConfigError

# keys a recipe may hold besides the training options; `device` is the global `--device`
META_KEYS = ("description",)
NOT_IN_RECIPES = ("device",)
LIST_HINT = "`vdi recipes` lists them"


@dataclass(frozen=True)
class Recipe:
    """One recipe file: its name, where it came from, its bytes' sha256 and its values."""

    name: str
    path: str
    description: str
    values: dict[str, Any]
    sha256: str
    plugin: str = ""  # "" for a file given by path
    distribution: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def record(self) -> dict[str, Any]:
        """What a run stores about the recipe it trained with (`vdi runs show` prints it)."""
        return {"name": self.name, "path": self.path, "sha256": self.sha256,
                "plugin": self.plugin or None, "values": self.values}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "path": self.path,
                "plugin": self.plugin, "distribution": self.distribution,
                "sha256": self.sha256}


def recipe_keys() -> set[str]:
    """The training options a recipe may set: every `TrainConfig` field but the device."""
    from vdi_cli.config import option_names
    from vdi_cli.pipeline.train_config import TrainConfig

    return option_names(TrainConfig) - set(NOT_IN_RECIPES)


def load_recipe_file(path: str | Path, *, name: str | None = None, plugin: str = "",
                     distribution: str = "") -> Recipe:
    """Read and check one recipe file: valid TOML, only known keys (a typo would otherwise
    train with the default, silently), a string description."""
    import tomllib

    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"recipe file '{p}' does not exist",
                          hint=f"check the path, or give a recipe name ({LIST_HINT})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read recipe file '{p}': {exc.strerror or exc}",
                          hint="check the path and its permissions") from exc
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe file '{p}' is not valid TOML: {exc}",
                          hint="fix the file; docs/recipes.md shows the format") from exc
    description = table.pop("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"recipe file '{p}': description must be a string",
                          hint='write it as description = "one line"')
    check_keys(table, p)
    return Recipe(name=name or p.stem, path=str(p), description=description, values=table,
                  sha256=hashlib.sha256(data).hexdigest(), plugin=plugin,
                  distribution=distribution)


def check_keys(values: dict[str, Any], path: str | Path) -> None:
    """Refuse keys that are no training option, with a did-you-mean, naming the file."""
    from vdi_cli.config import unknown_keys_message

    known = recipe_keys()
    unknown = [k for k in values if k not in known]
    if unknown:
        hint = "`vdi train --list-options` lists the keys a recipe may set"
        if set(unknown) & set(NOT_IN_RECIPES):
            hint = "the device is the global option (`vdi --device cuda train ...`); " + hint
        raise ConfigError(unknown_keys_message(unknown, known, "recipe key",
                                               f" in recipe file '{path}'"), hint=hint)


def registered_recipes() -> dict[str, Recipe]:
    """The recipes the plugins register (`register_recipes`), by name; built-ins first. A second
    recipe of a taken name is left out with a warning naming both plugins."""
    from vdi_cli.errors import VdiError
    from vdi_cli.plugins import get_host

    host = get_host()
    out: dict[str, Recipe] = {}
    for impl in host.hook.register_recipes.get_hookimpls():  # built-ins first (plugins.py)
        plugin, dist = host.plugin_name_of(impl.plugin), host.dist_of(impl.plugin)

        def register(path: str | Path, name: str | None = None, *, _plugin: str = plugin,
                     _dist: str = dist) -> None:
            try:
                recipe = load_recipe_file(path, name=name, plugin=_plugin, distribution=_dist)
            except VdiError as exc:  # one broken file must not hide the other recipes
                host.warn_once(f"Warning: plugin '{_plugin}' registered a recipe that cannot "
                               f"be used: {exc.message}; it is left out")
                return
            old = out.get(recipe.name)
            if old is not None:
                host.warn_once(f"Warning: recipe '{recipe.name}' is registered by plugins "
                               f"'{old.plugin}' and '{_plugin}'; '{old.plugin}' keeps it "
                               f"(registered first); `vdi recipes show {recipe.path}` reads "
                               "the other by its path")
                return
            out[recipe.name] = recipe

        kwargs = {n: register for n in impl.argnames if n == "register"}
        try:
            impl.function(**kwargs)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
            host.hook_failed(impl.plugin, "register_recipes", exc)
    return dict(sorted(out.items()))


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or "\\" in ref or Path(ref).is_file()


def find_recipe(ref: str) -> Recipe:
    """A recipe by registered name, else by file path; an unknown name lists the names."""
    from vdi_cli.config import did_you_mean

    recipes = registered_recipes()
    if ref in recipes:
        return recipes[ref]
    if _looks_like_path(ref):
        return load_recipe_file(ref)
    names = ", ".join(recipes) or "none installed"
    raise ConfigError(f"unknown recipe '{ref}'{did_you_mean(ref, recipes)}",
                      hint=f"{LIST_HINT}: {names}; or give the path of a .toml file")


def apply_recipe(recipe_values: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The recipe's values with the options given on the command line on top: dict-valued
    options merge key by key (`-H conv_layers=2` keeps the recipe's other head options). When
    the command line names the objectives, the recipe's options for objectives it dropped are
    dropped too (`--recipe X --no-objective` trains the baseline; options given for an unused
    objective are still refused)."""
    base = dict(recipe_values)
    if "objectives" in given and isinstance(base.get("objective_options"), dict):
        base["objective_options"] = {k: v for k, v in base["objective_options"].items()
                                     if k in given["objectives"]}
    return merge(base, given)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, nested dictionaries merged."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# the data keys TrainConfig requires: `vdi recipes show` fills them in to validate a recipe
# that does not name them, and shows them as unset
_DATA = ("dataset", "annotations", "video_dir")


def resolved_values(recipe: Recipe, *, check: bool = False) -> dict[str, Any]:
    """Every training option a run of `recipe` gets when the command line adds nothing: the
    recipe's values over `TrainConfig`'s defaults, the preset / vdi_form values filled in (as
    `vdi train` resolves them). Data keys the recipe leaves to the command line are None.
    `check`: also the component ids and options, as `vdi train` checks them before a model
    loads (asks the plugins; loads no model)."""
    from pydantic import ValidationError

    from vdi_cli.pipeline.train_config import TrainConfig

    values = {**{k: "" for k in _DATA}, **recipe.values}
    try:
        config = TrainConfig(**values).resolved()
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"recipe '{recipe.name}' ({recipe.path}) does not validate: "
                          f"{problems}", hint="fix the file; `vdi train --list-options` lists "
                          "the options and their types") from exc
    if check:
        from vdi_cli.checks import check_train_config
        from vdi_cli.errors import VdiError

        try:
            check_train_config(config, dataset=bool(config.dataset))
        except VdiError as exc:
            exc.message += f" (in recipe '{recipe.name}', {recipe.path})"
            raise
    out = config.model_dump()
    for key in _DATA:
        if key not in recipe.values:
            out[key] = None
    for key in NOT_IN_RECIPES:
        out.pop(key, None)
    return out
