"""One CLI vocabulary: every flag of every command is a term of `vdi_cli.vocabulary` (one flag,
one concept, in every command), and each deprecated spelling still works for one release: it
parses to what the new spelling parses to, warns once, and gives the same result."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from vdi_cli.cli_aliases import command_path, rewrite_deprecated
from vdi_cli.testing import invoke
from vdi_cli.vocabulary import DEPRECATED, REMOVED_IN, TERMS, deprecated_in, flag_concepts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app() -> Any:
    from vdi_cli.cli import build_app

    return typer.main.get_command(build_app())


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if getattr(p, "param_type_name", "") == "option"]


def _flags(option: Any) -> tuple[str, ...]:
    return (*option.opts, *option.secondary_opts)


def test_the_vocabulary_is_one_to_one():
    flags = [flag for term in TERMS for flag in term.flags]
    assert len(flags) == len(set(flags)), "a flag is in two terms"
    concepts = [term.concept for term in TERMS]
    assert len(concepts) == len(set(concepts)), "a concept is in two terms"
    for term in TERMS:
        assert term.flags[0].startswith("-"), term


def test_every_command_uses_the_vocabulary(app):
    """Scan every command's options: each flag is a term of the vocabulary, the flags of one
    option are one term's (not `--index-option, -O`, when -O is the objective options'), and
    carry all of that term's flags (so `-b` works wherever a backbone is chosen). Two commands
    cannot spell one concept two ways: the concept is found from any of its flags."""
    assert _problems(app) == []


def test_the_scan_catches_a_second_spelling():
    """The scan itself: a command that spells the annotation format another way, mixes two
    terms' flags, or leaves out a term's short flag is reported."""
    bad = typer.Typer(add_completion=False)

    @bad.command("a")
    def a(fmt: str = typer.Option(None, "--annotation-format"),
          index_option: list[str] = typer.Option([], "--index-option", "-O"),
          backbone: str = typer.Option(None, "--backbone")) -> None:
        """A command with three vocabulary faults."""

    @bad.command("b")
    def b(dataset: str = typer.Option(None, "--dataset")) -> None:
        """A command that follows the vocabulary."""

    assert _problems(typer.main.get_command(bad)) == [
        "vdi a: --annotation-format is not in vdi_cli/vocabulary.py",
        "vdi a: --index-option, -O mixes ['objective option ID.KEY=VALUE', 'vector index "
        "option KEY=VALUE']",
        "vdi a: --backbone is not the term's ['--backbone', '-b']",
    ]


def _problems(app: Any) -> list[str]:
    concepts = flag_concepts()
    by_concept = {term.concept: set(term.flags) for term in TERMS}
    problems = []
    for path, command in _commands(app):
        where = " ".join(("vdi", *path))
        for option in _options(command):
            flags = _flags(option)
            unknown = [f for f in flags if f not in concepts]
            if unknown:
                problems.append(f"{where}: {', '.join(unknown)} is not in vdi_cli/vocabulary.py")
                continue
            named = {concepts[f] for f in flags}
            if len(named) > 1:
                problems.append(f"{where}: {', '.join(flags)} mixes {sorted(named)}")
            elif set(flags) != by_concept[named.pop()]:
                problems.append(f"{where}: {', '.join(flags)} is not the term's "
                                f"{sorted(by_concept[concepts[flags[0]]])}")
    return problems


def test_every_term_is_used_and_documented(app):
    used = {f for _, command in _commands(app) for option in _options(command)
            for f in _flags(option)} | {"--help", "-h"}
    assert [t.flags for t in TERMS if not set(t.flags) & used] == []
    page = (ROOT / "docs" / "cli-vocabulary.md").read_text(encoding="utf-8")
    for term in TERMS:
        for flag in term.flags:
            assert f"`{flag}" in page, flag
    for d in DEPRECATED:
        assert re.search(rf"`{re.escape(d.old)}`.*`{re.escape(d.new)}`", page), d


def test_each_deprecated_spelling_is_gone_and_points_at_an_option(app):
    for d in DEPRECATED:
        path, command, _ = command_path(app, [*d.command])
        assert path == d.command, d
        flags = {f for option in _options(command) for f in _flags(option)}
        assert d.new in flags, d
        assert d.old not in flags, f"{d}: the old spelling is still an option of its own"


# a command line of each command that parses (required options and arguments given)
BASE = {
    ("eval",): ["--annotations", "a.json"],
    ("extract",): ["clip.mp4"],
    ("parse",): [],
    ("datasets", "check"): ["charades-sta", "a.txt"],
    ("datasets", "generate"): ["synthetic-shapes", "--out", "out"],
    ("index", "build"): ["lib", "clips/"],
    ("serve",): [],
}
VALUES = {"--dataset": "mmn-json", "--file": "q.txt", "--port": "9000"}


@pytest.mark.parametrize("d", DEPRECATED, ids=lambda d: f"{' '.join(d.command)} {d.old}")
def test_an_old_spelling_parses_as_the_new_one_and_warns_once(app, d):
    value = VALUES.get(d.new, "key=value")
    tail = ["--json"] if d.command != ("serve",) else []
    base = BASE[d.command]
    required = ["--dataset", "mmn-json"] if d.command == ("eval",) and d.new != "--dataset" \
        else []
    old = [*d.command, *base, *required, d.old, value, *tail]
    new = [*d.command, *base, *required, d.new, value, *tail]
    warnings: list[str] = []
    rewritten = rewrite_deprecated(app, old, warnings.append)
    assert rewritten == new
    assert warnings == [f"vdi {' '.join(d.command)} {d.old} is deprecated; use {d.new} "
                        f"({REMOVED_IN} removes it)"]
    assert rewrite_deprecated(app, new, warnings.append) == new and len(warnings) == 1
    _, command, start = command_path(app, new)
    parsed_old = command.make_context(d.command[-1], rewritten[start:]).params
    parsed_new = command.make_context(d.command[-1], new[start:]).params
    assert parsed_old == parsed_new
    if d.old.startswith("-") and not d.old.startswith("--"):  # -oKEY=VALUE, attached
        attached = [*d.command, *base, *required, d.old + value, *tail]
        assert rewrite_deprecated(app, attached, lambda m: None) == new


def test_a_repeated_old_spelling_warns_once_and_keeps_every_value(app):
    warnings: list[str] = []
    args = ["eval", "--annotations", "a.txt", "--format", "charades-sta", "-o", "durations=a.csv",
            "--dataset-option", "b=1", "-o", "c=2"]
    out = rewrite_deprecated(app, args, warnings.append)
    assert out == ["eval", "--annotations", "a.txt", "--dataset", "charades-sta",
                   "--dataset-option", "durations=a.csv", "--dataset-option", "b=1",
                   "--dataset-option", "c=2"]
    assert [w.split(" is ")[0] for w in warnings] == ["vdi eval --format", "vdi eval -o"]


def test_values_global_options_and_other_commands_are_never_rewritten(app):
    quiet: list[str] = []
    same = [
        ["--db", "-o", "eval", "--split", "-o", "--annotations", "a", "--dataset", "x"],
        ["train", "-o", "patience=0", "-O", "visual-context.probe=query"],  # train's own -o, -O
        ["retrieve", "clip.mp4", "a dog", "-f", "json"],  # -f is retrieve's --format
        ["parse", "--file", "q.txt", "--", "-f"],  # after --: an argument
        ["runs", "list", "-n", "3"],
    ]
    for args in same:
        assert rewrite_deprecated(app, args, quiet.append) == args
    assert quiet == []
    assert command_path(app, ["--db", "x.db", "-q", "datasets", "check", "f"])[0] == \
        ("datasets", "check")
    assert deprecated_in(("train",)) == {}


# end to end: the same command with the old and the new spelling gives the same result

def _charades(tmp_path: Path) -> tuple[Path, Path, Path]:
    txt = tmp_path / "sta.txt"
    txt.write_text("AAA 0.0 4.0##person opens the door.\nBBB 1.0 3.0##person sits.\n",
                   encoding="utf-8")
    csv = tmp_path / "lengths.csv"
    csv.write_text("id,length\nAAA,10.0\nBBB,6.0\n", encoding="utf-8")
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"vid": "AAA", "query": "person opens the door.", '
                     '"pred_relevant_windows": [[0.0, 4.0, 0.9]]}\n', encoding="utf-8")
    return txt, csv, preds


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "is deprecated" in line]


def test_eval_old_spellings_give_the_same_metrics(tmp_path):
    txt, csv, preds = _charades(tmp_path)
    new = invoke(["eval", "--predictions", preds, "--annotations", txt, "--dataset",
                  "charades-sta", "--dataset-option", f"durations={csv}"])
    assert new.exit_code == 0, new.stderr
    assert _warnings(new.stderr) == []
    # R@1,IoU=m: 1 of 2 queries (the exact window; BBB has no prediction); mIoU (1 + 0) / 2
    assert new.stdout.splitlines()[2].split() == ["50.00"] * 6 + ["50.00"]
    for spelling in (["--format", "charades-sta", "-o", f"durations={csv}"],
                     ["--format=charades-sta", "--option", f"durations={csv}"]):
        old = invoke(["eval", "--predictions", preds, "--annotations", txt, *spelling])
        assert old.exit_code == 0, old.stderr
        assert old.stdout == new.stdout
        assert len(_warnings(old.stderr)) == 2  # once for the format, once for the option
        assert "Warning: vdi eval --format is deprecated; use --dataset (vdi 0.2 removes it)" \
            in old.stderr


def test_datasets_check_old_option_spelling_gives_the_same_report(tmp_path):
    txt, csv, _ = _charades(tmp_path)
    new = invoke(["datasets", "check", "charades-sta", txt, "--dataset-option",
                  f"durations={csv}", "--json"])
    old = invoke(["datasets", "check", "charades-sta", txt, "-o", f"durations={csv}", "--json"])
    assert new.exit_code == old.exit_code == 0, old.stderr
    assert new.json() == old.json() and new.json()["queries"] == 2
    assert _warnings(old.stderr) == ["Warning: vdi datasets check -o is deprecated; use "
                                     "--dataset-option (vdi 0.2 removes it)"]
    assert _warnings(new.stderr) == []


# `vdi eval`: one rule picks what is scored

@pytest.mark.parametrize(("given", "mode"), [
    ({"predictions": "p.jsonl"}, "predictions"),
    ({"checkpoint": "ckpt/"}, "model"),
    ({"run_id": 3}, "model"),
    ({"run_id": 3, "save_predictions": "out.jsonl"}, "model"),
    ({"baseline": "random"}, "baseline"),
])
def test_eval_mode_is_named_by_one_flag(given, mode):
    from vdi_cli.commands.eval_cmd import eval_mode

    args = {"predictions": None, "checkpoint": None, "run_id": None, "baseline": None,
            "save_predictions": None, **given}
    assert eval_mode(**args) == mode


@pytest.mark.parametrize(("given", "error", "hint"), [
    ({}, "nothing to evaluate", "--predictions FILE, or --checkpoint PATH / --run ID"),
    ({"predictions": "p", "checkpoint": "c"}, "two modes: pick one", "drop --predictions"),
    ({"predictions": "p", "run_id": 1}, "two modes: pick one", "drop --predictions"),
    ({"predictions": "p", "baseline": "random"}, "--baseline is a mode of its own",
     "drop --predictions / --checkpoint / --run"),
    ({"run_id": 1, "baseline": "random"}, "--baseline is a mode of its own", "drop"),
    ({"checkpoint": "c", "run_id": 1}, "exactly one of --checkpoint PATH and --run ID",
     "--run ID evaluates"),
    ({"predictions": "p", "save_predictions": "o"}, "--save-predictions writes a model's",
     "--checkpoint PATH or --run ID"),
    ({"baseline": "random", "save_predictions": "o"}, "--save-predictions writes a model's",
     "--checkpoint PATH or --run ID"),
])
def test_eval_contradictory_modes_are_refused_with_a_hint(given, error, hint):
    from vdi_cli.commands.eval_cmd import eval_mode
    from vdi_cli.errors import UsageError

    args = {"predictions": None, "checkpoint": None, "run_id": None, "baseline": None,
            "save_predictions": None, **given}
    with pytest.raises(UsageError) as exc:
        eval_mode(**args)
    assert error in exc.value.message and hint in exc.value.hint


def test_eval_help_states_the_rule_and_cli_refuses_two_modes(tmp_path):
    txt, csv, preds = _charades(tmp_path)
    help_text = invoke(["eval", "--help"]).stdout
    assert "One rule picks what is scored: exactly one of --predictions FILE" in \
        " ".join(help_text.split())
    both = invoke(["eval", "--predictions", preds, "--checkpoint", tmp_path, "--annotations",
                   txt, "--dataset", "charades-sta", "--dataset-option", f"durations={csv}"])
    assert both.exit_code == 2
    assert "Error: --predictions and --checkpoint/--run are two modes: pick one" in both.stderr
    assert "Hint: drop --predictions to evaluate the model" in both.stderr


def test_eval_a_model_only_option_with_predictions_is_ignored_with_a_warning(tmp_path):
    txt, csv, preds = _charades(tmp_path)
    args = ["eval", "--predictions", preds, "--annotations", txt, "--dataset", "charades-sta",
            "--dataset-option", f"durations={csv}"]
    plain = invoke(args)
    extra = invoke([*args, "--video-dir", tmp_path, "--query-form", "static"])
    assert plain.exit_code == extra.exit_code == 0, extra.stderr
    assert extra.stdout == plain.stdout
    assert "Warning: --video-dir is read only when evaluating a model; ignored with " \
        "--predictions" in extra.stderr
    assert "Warning: --query-form is read only" in extra.stderr
    assert "is read only" not in plain.stderr


def test_parse_old_spellings_give_the_same_parses(tmp_path):
    pytest.importorskip("spacy")
    queries = tmp_path / "q.txt"
    queries.write_text("person opens the door\na dog runs across the yard\n", encoding="utf-8")
    new = invoke(["parse", "--file", queries, "--parser-option", "masking=placeholder",
                  "--no-cache", "--json"])
    old = invoke(["parse", "-f", queries, "-o", "masking=placeholder", "--no-cache", "--json"])
    assert new.exit_code == old.exit_code == 0, old.stderr
    assert old.json() == new.json() and len(new.json()["queries"]) == 2
    assert _warnings(old.stderr) == [
        "Warning: vdi parse -f is deprecated; use --file (vdi 0.2 removes it)",
        "Warning: vdi parse -o is deprecated; use --parser-option (vdi 0.2 removes it)"]
    assert _warnings(new.stderr) == []
