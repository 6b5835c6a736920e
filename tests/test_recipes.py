"""Training recipes: the shipped files, `vdi train --recipe NAME|FILE` with the command line on
top, refusals, the recorded recipe, `vdi recipes`, and no default declared twice (the help's
defaults, the paper recipes, the demo's and the experiment's command lines)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from vdi_cli.pipeline.train_config import TrainConfig
from vdi_cli.testing import invoke, train_config_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--annotations", "a.json", "--video-dir", "videos"]
SHIPPED = {"charades-sta-vdi", "charades-sta-mmn", "activitynet-vdi", "activitynet-mmn",
           "synthetic-demo", "synthetic-experiment"}


def _config(*args: str) -> TrainConfig:
    return train_config_of(list(args))[0]


# --- the shipped recipes ----------------------------------------------------------------------

def test_vdi_recipes_lists_the_shipped_ones_with_their_plugin():
    result = invoke(["recipes", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in result.json()}
    assert SHIPPED <= set(rows)
    for name in SHIPPED:
        assert rows[name]["plugin"] == "heads" and rows[name]["description"]
        assert rows[name]["path"].endswith(f"heads/recipes/{name}.toml")
    text = invoke(["recipes"]).stdout
    assert "charades-sta-vdi" in text and "heads" in text


def test_recipes_show_gives_the_resolved_values():
    result = invoke(["recipes", "show", "activitynet-vdi", "--json"])
    assert result.exit_code == 0, result.stderr
    out = result.json()
    resolved = out["resolved"]
    # the paper's / MMN's ActivityNet setting (README's table), written out by hand
    assert (resolved["lr"], resolved["epochs"], resolved["milestones"]) == (8e-4, 18, [7, 15])
    assert resolved["batch_size"] == 48 and resolved["text_lr_ratio"] == 0.1
    assert resolved["freeze_text_epochs"] == 4 and resolved["objectives_frozen"] == "skip"
    assert resolved["head_options"] == {"preset": "activitynet"}
    assert resolved["objective_options"] == {"visual-context": {"weight": 0.5},
                                             "spatial-dynamic": {"weight": 0.01}}
    assert resolved["dataset"] == "mmn-json" and resolved["annotations"] is None
    assert resolved["objective_lr"] == "text"  # from vdi_form stable, not in the file
    assert "device" not in resolved
    path = Path(out["path"])
    assert out["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    text = invoke(["recipes", "show", "synthetic-demo"]).stdout
    assert "sha256" in text and "tiny-shapes" in text


@pytest.mark.parametrize(("recipe", "flags"), [
    ("charades-sta-vdi", ["--dataset", "charades-sta", "-H", "preset=charades"]),
    ("charades-sta-mmn", ["--dataset", "charades-sta", "-H", "preset=charades",
                          "--no-objective"]),
    ("activitynet-vdi", ["--dataset", "mmn-json", "-H", "preset=activitynet"]),
    ("activitynet-mmn", ["--dataset", "mmn-json", "-H", "preset=activitynet",
                         "--no-objective"]),
])
def test_paper_recipes_resolve_to_what_vdi_train_does_without_one(recipe, flags):
    """The paper's recipes restate vdi train's own defaults (TrainConfig, the head presets):
    changing one and not the other fails here."""
    vdi = "--no-objective" not in flags
    weights = ["-O", "visual-context.weight=0.5", "-O", "spatial-dynamic.weight=0.01"]
    assert _config("--recipe", recipe, *DATA).model_dump() == \
        _config(*flags, *DATA, *(weights if vdi else [])).model_dump()


def test_paper_recipes_objective_weights_are_the_objectives_defaults():
    from vdi_cli.registry import get_component

    values = train_config_of(["--recipe", "charades-sta-vdi", *DATA])[1].values
    for objective, options in values["objective_options"].items():
        assert get_component("objective", objective).config().weight == options["weight"]


def test_help_defaults_are_trainconfigs_and_the_paper_recipes():
    """`vdi train --help` shows TrainConfig's defaults (the options themselves default to
    None: not given) and they are the charades-sta-vdi recipe's values."""
    import typer

    from vdi_cli.cli import build_app

    command = typer.main.get_command(build_app()).commands["train"]
    helps = {p.name: p.help or "" for p in command.params}
    defaults = {p.name: p.default for p in command.params}
    recipe = train_config_of(["--recipe", "charades-sta-vdi", *DATA])[1].values
    want = {"backbone": "clip-vit-b32", "head": "mmn", "parser": "spacy",
            "objective": "visual-context, spatial-dynamic", "batch_size": "48",
            "seed": "25285", "epochs": "the head preset's (18 for mmn's charades)",
            "lr": "the head preset's (0.0001 for mmn's charades)", "fps": "1"}
    for name, shown in want.items():
        assert f"Default: {shown}." in helps[name], (name, helps[name])
        assert defaults[name] is None, name  # not re-declared on the command line
    assert TrainConfig.model_fields["seed"].default == 25285
    from vdi_cli.video import DEFAULT_FPS

    assert DEFAULT_FPS == 1.0
    for name, key in [("backbone", "backbone"), ("head", "head"), ("parser", "parser"),
                      ("batch_size", "batch_size"), ("epochs", "epochs"), ("lr", "lr")]:
        assert f"Default: {recipe[key]}." in helps[name] or f"({recipe[key]:g} for" in \
            helps[name], (name, recipe[key])
    assert f"Default: {', '.join(recipe['objectives'])}." in helps["objective"]


# --- precedence: TrainConfig < recipe < command line ------------------------------------------

def test_command_line_options_override_the_recipe_and_only_those():
    config, recipe = train_config_of(
        ["--recipe", "synthetic-demo", *DATA, "--epochs", "2", "-H", "conv_layers=2",
         "-O", "visual-context.heads=2", "-o", "batch_size=3"])
    assert recipe.name == "synthetic-demo"
    assert config.epochs == 2 and config.batch_size == 3  # given
    assert config.lr == 1e-3 and config.backbone == "tiny-shapes" and config.fps == 2.0  # recipe
    assert config.head_options == {"hidden_size": 64, "conv_layers": 2}  # merged key by key
    assert config.objective_options == {"visual-context": {"heads": 2},
                                         "spatial-dynamic": {"sequence_options": {"heads": 4}}}
    assert config.text_lr_ratio == 0.1 and config.seed == 25285  # neither: TrainConfig's
    assert config.milestones == [8, 13]  # the head preset's, as without a recipe


def test_objectives_given_drop_the_recipes_options_for_the_others():
    baseline = _config("--recipe", "synthetic-demo", *DATA, "--no-objective")
    assert baseline.objectives == [] and baseline.objective_options == {}
    one = _config("--recipe", "synthetic-demo", *DATA, "--objective", "visual-context")
    assert one.objective_options == {"visual-context": {"heads": 4}}


def test_without_a_recipe_the_defaults_are_trainconfigs():
    config, recipe = train_config_of(["--dataset", "mmn-json", *DATA])
    assert recipe is None
    assert config == TrainConfig(dataset="mmn-json", annotations="a.json",
                                 video_dir="videos").resolved()


def test_a_recipe_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\ndataset = "mmn-json"\nepochs = 3\n'
                    '[head_options]\npreset = "activitynet"\n')
    config, recipe = train_config_of(["--recipe", str(path), *DATA, "--lr", "0.5"])
    assert (config.dataset, config.epochs, config.lr) == ("mmn-json", 3, 0.5)
    assert config.milestones == [7, 15]  # the file's head preset fills what neither set
    assert recipe.record() == {"name": "mine", "path": str(path), "plugin": None,
                               "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                               "values": {"dataset": "mmn-json", "epochs": 3,
                                          "head_options": {"preset": "activitynet"}}}
    shown = invoke(["recipes", "show", str(path), "--json"]).json()
    assert shown["resolved"]["epochs"] == 3 and shown["plugin"] == ""


# --- refusals -----------------------------------------------------------------------------------

def test_unknown_keys_in_a_recipe_are_refused_naming_file_and_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("epochs = 2\nbatch_sise = 4\n")
    result = invoke(["train", "--recipe", str(path), *DATA])
    assert result.exit_code == 1
    assert (f"Error: unknown recipe key 'batch_sise' in recipe file '{path}' "
            "(did you mean 'batch_size'?)") in result.stderr
    assert "Hint: `vdi train --list-options`" in result.stderr
    device = tmp_path / "device.toml"
    device.write_text('device = "cuda"\n')
    result = invoke(["train", "--recipe", str(device), *DATA])
    assert result.exit_code == 1 and "the device is the global option" in result.stderr


def test_an_unknown_component_option_in_a_recipe_names_the_recipe(tmp_path):
    path = tmp_path / "nested.toml"
    path.write_text("[head_options]\nhiden_size = 64\n")
    for args in (["train", "--recipe", str(path), "--dataset", "mmn-json", *DATA],
                 ["recipes", "show", str(path)]):
        result = invoke(args)
        assert result.exit_code == 1
        assert ("unknown option 'hiden_size' for head 'mmn' (did you mean 'hidden_size'?) "
                f"(in recipe 'nested', {path})" in result.stderr
                or f"(training with recipe 'nested', {path})" in result.stderr), result.stderr
        assert "Hint: `vdi heads show mmn` lists its options" in result.stderr


def test_an_unknown_recipe_lists_the_names():
    result = invoke(["train", "--recipe", "charades-vdi", *DATA])
    assert result.exit_code == 1
    assert "Error: unknown recipe 'charades-vdi' (did you mean 'charades-sta-vdi'?)" in \
        result.stderr
    assert "Hint: `vdi recipes` lists them: activitynet-mmn, activitynet-vdi" in result.stderr
    result = invoke(["recipes", "show", "nothing-like-it"])
    assert result.exit_code == 1 and "did you mean" not in result.stderr


def test_a_missing_or_broken_recipe_file(tmp_path):
    result = invoke(["train", "--recipe", str(tmp_path / "gone.toml"), *DATA])
    assert result.exit_code == 1
    assert f"Error: recipe file '{tmp_path / 'gone.toml'}' does not exist" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 2\n")
    result = invoke(["train", "--recipe", str(bad), *DATA])
    assert result.exit_code == 1 and f"recipe file '{bad}' is not valid TOML" in result.stderr


def test_a_recipe_value_of_the_wrong_type_names_the_recipe(tmp_path):
    path = tmp_path / "wrong.toml"
    path.write_text('epochs = "many"\n')
    result = invoke(["train", "--recipe", str(path), "--dataset", "mmn-json", *DATA])
    assert result.exit_code == 1
    assert f"invalid training options (with recipe 'wrong', {path}): epochs" in result.stderr


def test_a_plugin_ships_a_recipe_and_a_broken_one_is_left_out(tmp_path):
    from vdi_cli.hookspecs import hookimpl
    from vdi_cli.recipes import registered_recipes
    from vdi_cli.testing import plugin_host

    good, bad = tmp_path / "mine.toml", tmp_path / "broken.toml"
    good.write_text('description = "a plugin\'s recipe"\nepochs = 5\n')
    bad.write_text("epoch = 5\n")

    class Plugin:
        @hookimpl
        def register_recipes(self, register):
            register(good, name="plugin-recipe")
            register(bad)

    with plugin_host(Plugin()):
        recipes = registered_recipes()
        assert recipes["plugin-recipe"].values == {"epochs": 5}
        assert "broken" not in recipes and SHIPPED <= set(recipes)


# --- the demo and the experiment train what they trained with flags -------------------------

# examples/demo.sh's training command before it used the recipe
DEMO_BEFORE = ("train --dataset synthetic-shapes --annotations D/train.json --val "
               "D/test_iid.json --video-dir D/videos --backbone tiny-shapes --fps 2 --epochs 6 "
               "--batch-size 16 --lr 1e-3 -H hidden_size=64 -H conv_layers=4 "
               "-o freeze_text_epochs=0 -o patience=0 -O visual-context.heads=4 "
               "-O spatial-dynamic.sequence_options.heads=4")


def _demo_train_args(**env: str) -> list[str]:
    """The arguments demo.sh passes to `vdi train`, as bash expands them (DATA=D)."""
    text = (ROOT / "examples" / "demo.sh").read_text()
    start = text.index("$VDI train")
    command = text[start:text.index("--json", start)].replace("$VDI", "args")
    script = f'set -u; DATA=D; args() {{ printf "%s\\0" "$@"; }}; {command}'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"], **env}).stdout
    return out.split("\0")[:-1]


def test_the_demo_trains_with_its_recipe_what_it_trained_with_flags():
    args = _demo_train_args()
    assert args[:3] == ["train", "--recipe", "synthetic-demo"]
    assert _config(*args[1:]).model_dump() == _config(*shlex.split(DEMO_BEFORE)[1:]).model_dump()
    longer = _demo_train_args(DEMO_EPOCHS="9")
    assert _config(*longer[1:]).epochs == 9


def _experiment_before(args, data: Path) -> list[str]:
    """examples/experiment.py's train_args before it used the recipe."""
    return [
        "train", "--dataset", "synthetic-shapes", "--annotations", str(data / "train.json"),
        "--video-dir", str(data / "videos"), "--backbone",
        getattr(args, "backbone", "tiny-shapes"), "--fps", "2",
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "-H", "hidden_size=64", "-H", "conv_layers=4",
        "-H", f"temporal_delta={args.temporal_delta}", "-H", f"span_delta={args.span_delta}",
        *(["-H", "pool_linear=true", "-H", f"pool_hidden={args.pool_hidden}"]
          if args.pool_hidden else []),
        "-o", "freeze_text_epochs=0", "-o", "patience=0", "-o", f"text_lr_ratio={args.text_lr}",
        "-o", f"text_pool={args.text_pool}", "-o", f"text_trainable={args.text_trainable}",
        "-o", f"milestones={json.dumps(args.milestones)}", "-o", "keep_checkpoints=best-last",
    ]


def test_the_experiment_trains_with_its_recipe_what_it_trained_with_flags(load_example):
    import argparse

    experiment = load_example("experiment")
    d = experiment.recipe_defaults()
    # the script's own defaults before the recipe, by hand
    assert d == {"backbone": "tiny-shapes-v2", "epochs": 8, "milestones": "7", "batch_size": 8,
                 "lr": 1e-3, "text_lr": 1.0, "text_pool": "mean",
                 "text_trainable": "token-embeddings", "temporal_delta": 5.0,
                 "span_delta": 0.0, "pool_hidden": 256}
    args = argparse.Namespace(**{**d, "milestones": [7]})
    data = Path("/data")
    for name in ("baseline", "vdi", "sd-lstm"):
        per_run = [*experiment.CONFIGS[name][1], *experiment.heads_options(name), "--seed", "1"]
        new = experiment.train_args(args, data) + per_run
        assert new[:3] == ["train", "--recipe", "synthetic-experiment"]
        assert _config(*new[1:]).model_dump() == \
            _config(*_experiment_before(args, data)[1:], *per_run).model_dump()
    other = argparse.Namespace(**{**d, "milestones": [], "epochs": 3, "text_pool": "eot",
                                  "pool_hidden": 0})
    config = _config(*experiment.train_args(other, data)[1:])
    assert (config.milestones, config.epochs, config.text_pool) == ([], 3, "eot")
    assert config.head_options["pool_linear"] is False


# --- a real training run with a recipe -----------------------------------------------------

TINY_RECIPE = """description = "a tiny run for the tests"
dataset = "mmn-json"
backbone = "open_clip:vdi-tiny"
fps = 2
epochs = 2
batch_size = 2
lr = 1e-3
patience = 0
freeze_text_epochs = 0

[head_options]
hidden_size = 32
joint_size = 16
conv_layers = 2

[objective_options.visual-context]
heads = 2

[objective_options.spatial-dynamic]
sequence_options = { heads = 2 }
"""
TINY_FLAGS = ["--dataset", "mmn-json", "--backbone", "open_clip:vdi-tiny", "--fps", "2",
              "--epochs", "2", "--batch-size", "2", "--lr", "1e-3", "-o", "patience=0",
              "-o", "freeze_text_epochs=0", "-H", "hidden_size=32", "-H", "joint_size=16",
              "-H", "conv_layers=2", "-O", "visual-context.heads=2",
              "-O", "spatial-dynamic.sequence_options.heads=2"]


@pytest.mark.slow
def test_training_with_a_recipe_equals_the_same_run_given_as_flags(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from vdi_cli.store import get_run, open_db
    from vdi_cli.testing import register_tiny_open_clip
    from vdi_plugins.synthetic.generate import generate

    generate(tmp_path / "data", videos=4, seed=5, test_videos=0, fps=4, size=32)
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VDI_DB", str(tmp_path / "vdi.db"))
    register_tiny_open_clip()
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    data = ["--annotations", str(tmp_path / "data" / "train.json"),
            "--video-dir", str(tmp_path / "data" / "videos"), "--seed", "3"]
    by_recipe = invoke(["train", "--recipe", str(recipe), *data, "--json"])
    assert by_recipe.exit_code == 0, by_recipe.stderr
    by_flags = invoke(["train", *TINY_FLAGS, *data, "--json"])
    assert by_flags.exit_code == 0, by_flags.stderr
    a, b = by_recipe.json(), by_flags.json()
    assert [h["epoch"] for h in a["history"]] == [1, 2]
    assert [h["losses"] for h in a["history"]] == [h["losses"] for h in b["history"]]

    db = open_db(tmp_path / "vdi.db")
    row, plain = get_run(db, a["run_id"]), get_run(db, b["run_id"])
    stored = row["config"]
    assert stored["recipe"] == {
        "name": "tiny", "path": str(recipe), "plugin": None,
        "sha256": hashlib.sha256(TINY_RECIPE.encode()).hexdigest(),
        "values": {"dataset": "mmn-json", "backbone": "open_clip:vdi-tiny", "fps": 2,
                   "epochs": 2, "batch_size": 2, "lr": 1e-3, "patience": 0,
                   "freeze_text_epochs": 0,
                   "head_options": {"hidden_size": 32, "joint_size": 16, "conv_layers": 2},
                   "objective_options": {"visual-context": {"heads": 2}, "spatial-dynamic":
                                         {"sequence_options": {"heads": 2}}}}}
    assert "recipe" not in plain["config"]
    assert {k: v for k, v in stored.items() if k != "recipe"} == plain["config"]
    shown = invoke(["runs", "show", str(a["run_id"])])
    assert shown.exit_code == 0, shown.stderr
    assert f"recipe       tiny ({recipe}, sha256 {stored['recipe']['sha256']})" in shown.stdout

    # a resume with the same recipe (as examples/experiment.py resumes) continues the run
    more = invoke(["train", "--recipe", str(recipe), *data, "--epochs", "3",
                   "--resume", str(a["run_id"]), "--json"])
    assert more.exit_code == 0, more.stderr
    assert more.json()["epochs"] == [3]
    assert get_run(db, more.json()["run_id"])["config"]["recipe"]["name"] == "tiny"
    changed = invoke(["train", "--recipe", str(recipe), *data, "--lr", "0.5", "--epochs", "3",
                      "--resume", str(a["run_id"])])
    assert changed.exit_code == 1 and "lr: 0.001 -> 0.5" in changed.stderr


# --- docs/recipes.md --------------------------------------------------------------------------

def test_the_docs_list_every_shipped_recipe_and_their_example_validates(tmp_path):
    import re

    text = (ROOT / "docs" / "recipes.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, flags=re.M))
    assert listed == SHIPPED
    example = re.search(r"```toml\n(.*?)```", text, flags=re.S).group(1)
    path = tmp_path / "my-setting.toml"
    path.write_text(example)
    result = invoke(["recipes", "show", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    resolved = result.json()["resolved"]
    assert resolved["epochs"] == 6 and resolved["train_text_layers"] == 2
    assert resolved["objective_options"]["spatial-dynamic"]["sequence_model"] == "lstm"
