"""The paper's experiments in miniature, on the synthetic world, in one command.

MMN baseline vs VDI vs the ablations of the paper's Table 3 (L_vc probed by Qs / Q / nothing;
L_sd with a Transformer / an LSTM; both = VDI), each with several seeds, evaluated on
`test-iid` and `test-novel-word`; the trivial baselines (most frequent training moment, random
moment); the paper's Fig. 3 analysis (retrieval with Q, Qs and Qd); R@1 per action class against
each class's own prior. Writes `results.md`, `results.json` and `results.png` to --results.

    .venv/bin/python examples/experiment.py                  # ~6 h on 2 CPU cores (resumable)
    .venv/bin/python examples/experiment.py --seeds 0 --configs baseline,vdi --epochs 4  # quick

Every run goes through the `vdi` command line (train, then eval with --json), so this is also
what a user would type: `vdi train --recipe synthetic-experiment` (the settings every run
shares; this script's options default to its values) plus each run's own flags. Finished
runs are kept in OUT/runs/*.json and skipped when the command is run again (same options), and
a training run that was stopped part-way is continued from its last epoch (`vdi train
--resume`): an interrupted experiment resumes where it stopped. Run one experiment at a time on
an OUT folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # experiment_* beside it
from experiment_forms import (  # noqa: E402
    ABLATIONS,
    FORM_CONFIGS,
    ablation_flags,
    better_form,
    splits_of,
)

SPLITS = ("test_iid", "test_novel_word")  # main() sets the world's own (version 4: + novel verb)
METRICS = ("R@1,IoU=0.5", "R@1,IoU=0.7", "mIoU")
# Table 3 of the paper, plus the baseline (no VDI term) and the full method.
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("MMN + CLIP (no VDI term)", ["--no-objective"]),
    "vc-qs": ("L_vc w/ Qs", ["--objective", "visual-context"]),
    "vc-q": ("L_vc w/ Q", ["--objective", "visual-context", "-O", "visual-context.probe=query"]),
    "vc-none": ("L_vc w/o Q", ["--objective", "visual-context", "-O",
                               "visual-context.probe=none"]),
    "sd-lstm": ("L_sd w/ LSTM", ["--objective", "spatial-dynamic", "-O",
                                 "spatial-dynamic.sequence_model=lstm"]),
    "sd-trans": ("L_sd w/ Trans", ["--objective", "spatial-dynamic"]),
    "vdi": ("VDI (L_vc w/ Qs + L_sd w/ Trans)", []),
    **FORM_CONFIGS,  # VDI in the form `paper` / `stable` (issue 20)
}
# 2: `-O spatial-dynamic.sequence_options.heads=4` reaches L_sd's Transformer (before, vdi train
# split the option at its last dot and dropped it: runs of format 1 used 8 heads).
# 3: `vdi train` gained vdi_form (default stable); records name the backbone, world version and
# the ablations' form.
RUN_FORMAT = 3
FIG3 = ("baseline", "vdi", "paper", "stable")  # configurations evaluated with Q, Qs and Qd
DEFAULT_CONFIGS = "baseline,paper,stable," + ",".join(ABLATIONS)


def fail(message: str, hint: str) -> NoReturn:
    """End the script the way the vdi commands end on bad input: Error and Hint, no traceback."""
    sys.exit(f"Error: {message}\nHint: {hint}")


def vdi(*args: str, env: dict[str, str]) -> dict:
    """Run `vdi ARGS --json`; progress goes to our stderr, the JSON comes back."""
    cmd = [str(ROOT / ".venv" / "bin" / "vdi"), *args, "--json"]
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        fail(f"`vdi {args[0]}` failed with exit code {done.returncode} (its own message is "
             "above)", "runs that finished are kept in OUT/runs; fix the cause and run the same "
             "command again to resume")
    return json.loads(done.stdout)


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.2f} ± {s:.2f}" if len(values) > 1 else f"{m:.2f}"


RECIPE = "synthetic-experiment"  # `vdi recipes show synthetic-experiment`: the common settings


def recipe_defaults() -> dict:
    """This script's defaults for the options it lets a user change: the recipe's values (the
    one place they are declared; `vdi` is installed beside this script)."""
    from vdi_cli.recipes import find_recipe

    values = find_recipe(RECIPE).values
    head = values["head_options"]
    return {"backbone": values["backbone"], "epochs": values["epochs"],
            "milestones": ",".join(map(str, values["milestones"])),
            "batch_size": values["batch_size"], "lr": values["lr"],
            "text_lr": values["text_lr_ratio"], "text_pool": values["text_pool"],
            "text_trainable": values["text_trainable"],
            "temporal_delta": head["temporal_delta"], "span_delta": head["span_delta"],
            "pool_hidden": head["pool_hidden"] if head["pool_linear"] else 0}


def train_args(args: argparse.Namespace, data: Path) -> list[str]:
    """`vdi train --recipe synthetic-experiment` with this run's data and the values of this
    script's own options (their defaults are the recipe's, so by default they change nothing)."""
    return [
        "train", "--recipe", RECIPE, "--annotations", str(data / "train.json"),
        "--video-dir", str(data / "videos"),
        *(["--backbone", args.backbone] if getattr(args, "backbone", None) else []),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "-H", f"temporal_delta={args.temporal_delta}", "-H", f"span_delta={args.span_delta}",
        *(["-H", "pool_linear=true", "-H", f"pool_hidden={args.pool_hidden}"]
          if args.pool_hidden else ["-H", "pool_linear=false"]),
        "-o", f"text_lr_ratio={args.text_lr}",
        "-o", f"text_pool={args.text_pool}", "-o", f"text_trainable={args.text_trainable}",
        "-o", f"milestones={json.dumps(args.milestones)}",
    ]


def world_key(meta: dict) -> dict:
    """The generated world a run was trained and tested on (seed, videos per split): part of
    a finished run's key, so a run of another world's size is never taken for this one's."""
    return {"seed": meta.get("seed"),
            "videos": {name: split.get("videos") for name, split in
                       sorted((meta.get("splits") or {}).items())}}


def heads_options(name: str) -> list[str]:
    """4 attention heads (D = 128 in tiny-shapes) for the decoders the configuration uses."""
    flags = CONFIGS[name][1]
    out = []
    both = name == "vdi" or name in FORM_CONFIGS
    if both or "visual-context" in flags:
        out += ["-O", "visual-context.heads=4"]
    if (both or "spatial-dynamic" in flags) and "lstm" not in " ".join(flags):
        out += ["-O", "spatial-dynamic.sequence_options.heads=4"]
    return out


def without_resume(argv: list[str]) -> list[str]:
    """A run's argv with its `--resume ID` taken out (a resumed run of a resumed run...)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        else:
            out.append(arg)
    return out


def unfinished_runs(rows: list[dict], argv: list[str]) -> list[int]:
    """Ids (newest first) of `vdi runs list --json` rows that trained with exactly `argv` and did
    not finish: stopped by a signal (`interrupted`), killed (`running` with its process gone) or
    failed. A run whose process may still be going is left alone."""
    return [r["id"] for r in rows if r.get("command") == "train" and r.get("status") != "ok"
            and (r.get("status") != "running" or r.get("process_gone"))
            and without_resume(r.get("argv") or []) == argv]


def resumable(argv: list[str], env: dict[str, str]) -> tuple[int, int] | None:
    """(run id, epochs done) of the newest unfinished run of `argv` that has a checkpoint."""
    rows = vdi("runs", "list", "--command", "train", "-n", "100000", env=env)
    for run_id in unfinished_runs(rows, argv):
        epochs = [c["epoch"] for c in vdi("runs", "show", str(run_id), env=env)["checkpoints"]]
        if epochs:
            return run_id, max(epochs)
    return None


def reused_seconds(run_id: int, env: dict[str, str]) -> float:
    """Seconds the stopped run `run_id` took from its start to its newest checkpoint, plus the
    same for the run it resumed in turn: the training a resume takes over, so that a resumed
    run's time counts it (the work after that checkpoint was lost and is not counted)."""
    show = vdi("runs", "show", str(run_id), env=env)
    stamps = [datetime.fromisoformat(c["created_at"]) for c in show["checkpoints"]
              if c.get("created_at")]
    if not stamps:
        return 0.0
    seconds = (max(stamps) - datetime.fromisoformat(show["started_at"])).total_seconds()
    argv = show.get("argv") or []
    if "--resume" in argv:
        seconds += reused_seconds(int(argv[argv.index("--resume") + 1]), env)
    return round(seconds, 1)


def run_one(name: str, seed: int, args: argparse.Namespace, data: Path, env: dict[str, str]
            ) -> dict:
    start = time.perf_counter()
    form = getattr(args, "ablation_form", "")
    train = [*train_args(args, data), *CONFIGS[name][1], *ablation_flags(name, form),
             *heads_options(name), "--seed", str(seed)]
    earlier = resumable([*train, "--json"], env)
    if earlier:
        print(f"resuming run {earlier[0]} after epoch {earlier[1]} (a stopped experiment; "
              "`vdi train --resume` continues the same trajectory)", file=sys.stderr, flush=True)
        train += ["--resume", str(earlier[0])]
    reused = reused_seconds(earlier[0], env) if earlier else 0.0
    trained = vdi(*train, env=env)
    forms = "q,static,dynamic" if name in FIG3 else "q"
    evals = {}
    for split in SPLITS:
        evals[split] = vdi("eval", "--run", str(trained["run_id"]), "--annotations",
                           str(data / f"{split}.json"), "--dataset", "synthetic-shapes",
                           "--video-dir", str(data / "videos"), "--query-form", forms,
                           "--by", "actions", "--train", str(data / "train.json"), env=env)
    return {"config": name, "seed": seed, "run_id": trained["run_id"],
            "form": form if name in ABLATIONS else None,
            "seconds": round(time.perf_counter() - start + reused, 1),
            "reused_seconds": reused,
            "torch_threads": trained.get("torch_threads"),
            "cpu_capability": trained.get("cpu_capability"),
            "resumed_from": trained.get("resumed_from"),
            "train_losses": trained["history"][-1]["losses"] if trained.get("history") else None,
            "diagnostics": [h.get("diagnostics") or {} for h in trained.get("history") or []],
            "diagnostic_warnings": trained.get("diagnostic_warnings") or [],
            "eval": evals}


def baselines(data: Path, env: dict[str, str], seeds: list[int]) -> dict:
    out: dict = {}
    for split in SPLITS:
        common = ["--annotations", str(data / f"{split}.json"), "--dataset", "synthetic-shapes",
                  "--by", "actions", "--train", str(data / "train.json")]
        out[split] = {
            "most-frequent": vdi("eval", "--baseline", "most-frequent", *common, env=env),
            "random": [vdi("eval", "--baseline", "random", "--seed", str(s), *common, env=env)
                       for s in seeds],
        }
    return out


def aggregate(runs: list[dict], base: dict) -> dict:
    table: dict = {}
    actions: dict = {}
    for name in CONFIGS:
        mine = [r for r in runs if r["config"] == name]
        if not mine:
            continue
        table[name], actions[name] = {}, {}
        for split in SPLITS:
            first = mine[0]["eval"][split]
            table[name][split] = {
                form: {m: [r["eval"][split]["forms"][form]["metrics"][m] for r in mine]
                       for m in METRICS}
                for form in first["forms"]
            }
            per: dict[str, list[float]] = {}
            for r in mine:
                for g in r["eval"][split]["groups"]:
                    per.setdefault(g["group"], []).append(g["recall"])
            prior = {p["group"]: p["recall"] for p in first["prior"]}
            queries = {g["group"]: g["queries"] for g in first["groups"]}
            actions[name][split] = {a: {"recall": v, "prior": prior[a], "queries": queries[a]}
                                    for a, v in sorted(per.items())}
    trivial = {split: {
        "most-frequent": {m: [base[split]["most-frequent"]["metrics"][m]] for m in METRICS},
        "random": {m: [r["metrics"][m] for r in base[split]["random"]] for m in METRICS},
    } for split in SPLITS}
    from experiment_diagnostics import aggregate_diagnostics

    return {"table": table, "actions": actions, "trivial": trivial,
            "diagnostics": aggregate_diagnostics(runs)}


def parse_milestones(text: str) -> list[int]:
    """'8,13' -> [8, 13]; '' -> [] (no decay). Anything else ends the script with Error/Hint."""
    try:
        return [int(m) for m in text.split(",") if m.strip()]
    except ValueError:
        fail(f"--milestones takes epoch numbers, not {text!r}",
             "e.g. --milestones 14, --milestones 8,13, or --milestones '' for no decay")


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; at least one whole number, else Error/Hint."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        fail(f"--seeds takes whole numbers, not {text!r}", "e.g. --seeds 0,1,2 or --seeds 0")
    return seeds


def parse_configs(text: str) -> list[str]:
    """'baseline,vdi' -> ['baseline', 'vdi'], each a key of CONFIGS, else Error/Hint."""
    configs = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        fail(f"unknown configuration {', '.join(unknown)}" if unknown
             else "--configs names no configuration",
             f"choose from {', '.join(CONFIGS)} (comma-separated)")
    return configs


def decay_text(milestones: list[int]) -> str:
    """'lr x0.1 after epochs 8 and 13' for the table's header."""
    if not milestones:
        return "no lr decay"
    if len(milestones) == 1:
        return f"lr x0.1 after epoch {milestones[0]}"
    head = ", ".join(map(str, milestones[:-1]))
    return f"lr x0.1 after epochs {head} and {milestones[-1]}"


DEFAULT_THREADS = "torch's default threads"  # runs from before vdi train recorded torch_threads


def _recorded(runs: list[dict], key: str) -> list:
    return sorted({r[key] for r in runs if r.get(key)})


def cpu_text(runs: list[dict]) -> str:
    """How torch computed on the CPU, as the runs recorded it (`vdi train` reports torch_threads
    and cpu_capability): both change float sums in their last bits. Runs made before the thread
    count was recorded used torch's default; before the kernel set was, it is not stated."""
    counts = _recorded(runs, "torch_threads")
    if not counts:
        text = DEFAULT_THREADS
    else:
        text = ("/".join(map(str, counts)) + " torch thread" + ("s" if counts[-1] > 1 else "")
                + (" (the runs differ)" if len(counts) > 1 else ""))
    kernels = _recorded(runs, "cpu_capability")
    if kernels:
        text += (", " + "/".join(kernels) + " kernels"
                 + (" (the runs differ)" if len(kernels) > 1 else ""))
    return text


def markdown(agg: dict, args: argparse.Namespace, meta: dict, seconds: float, command: str,
             cpu: str = DEFAULT_THREADS) -> str:
    seeds = ", ".join(str(s) for s in args.seeds)
    lines = [
        "# The paper's experiments in miniature (synthetic world)",
        "",
        f"Made by `{command}` ({seconds / 60:.0f} min of training and evaluation on "
        f"{os.cpu_count()} CPU cores, {cpu}). The thread count and the CPU's kernel set "
        "(AVX2, AVX-512: torch's ATEN_CPU_CAPABILITY) change float sums in their last bits, so "
        "the same seeds reproduce these digits with the same ones. "
        f"World: generator version {meta.get('version')}, seed "
        f"{meta['seed']}, " + ", ".join(f"{k} {v['videos']} videos / {v['queries']} queries"
                                          for k, v in meta["splits"].items()) + ". "
        f"Backbone `{getattr(args, 'backbone', 'tiny-shapes')}` (shipped), 2 fps, MMN head "
        "hidden 64, 4 conv layers, "
        f"temporal_delta {args.temporal_delta:g}, span_delta {args.span_delta:g}, "
        + (f"pool_linear (1x1 conv + ReLU, width {args.pool_hidden}), " if args.pool_hidden
           else "") + f"{args.epochs} epochs, {decay_text(args.milestones)}, "
        f"batch {args.batch_size} videos, lr {args.lr:g}, text lr ratio {args.text_lr:g}, "
        f"text tower: {args.text_trainable} trained, {args.text_pool} pooling; seeds {seeds}. "
        "Values are mean ± std over the seeds (x100). The last epoch's checkpoint is evaluated (no "
        "validation split is used for selection)."
        + (f" The Table 3 ablations ran in the form `{args.ablation_form}`"
           + (f" ({args.ablation_why})" if getattr(args, "ablation_why", "") else "") + "."
           if getattr(args, "ablation_form", "") else ""),
        "",
        "## Main table",
        "",
        "| method | " + " | ".join(f"{s} {m}" for s in SPLITS for m in METRICS) + " |",
        "|---|" + "---|" * (len(SPLITS) * len(METRICS)),
    ]
    for key, label in (("random", "random moment"), ("most-frequent", "most frequent moment")):
        cells = [fmt(agg["trivial"][s][key][m]) for s in SPLITS for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, (label, _) in CONFIGS.items():
        if name not in agg["table"]:
            continue
        cells = [fmt(agg["table"][name][s]["q"][m]) for s in SPLITS for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Fig. 3: retrieval with the full (Q), static (Qs) and dynamic (Qd) query",
              "", "R@1,IoU=0.5:", "",
              "| method | " + " | ".join(f"{s} {f}" for s in SPLITS for f in ("Q", "Qs", "Qd"))
              + " |", "|---|" + "---|" * (3 * len(SPLITS))]
    for name in FIG3:
        if name in agg["table"]:
            cells = [fmt(agg["table"][name][s][f]["R@1,IoU=0.5"]) for s in SPLITS
                     for f in ("q", "static", "dynamic")]
            lines.append(f"| {CONFIGS[name][0]} | " + " | ".join(cells) + " |")
    for name in ("vdi", "stable", "paper", "baseline"):
        if name not in agg["actions"]:
            continue
        lines += ["", f"## Per action: {CONFIGS[name][0]}, R@1,IoU=0.5 against each class's "
                  "prior", "",
                  "The prior is the class's own most frequent training moment scored on its "
                  "test queries.", "",
                  "| action | " + " | ".join(f"{s} queries | {s} R@1 | {s} prior"
                                             for s in SPLITS) + " |",
                  "|---|" + "---|" * (3 * len(SPLITS))]
        groups = sorted(set().union(*(agg["actions"][name][s] for s in SPLITS)))
        for g in groups:
            cells = []
            for s in SPLITS:
                a = agg["actions"][name][s].get(g)
                cells += ([str(a["queries"]), fmt(a["recall"]), f"{a['prior']:.2f}"] if a
                          else ["0", "", ""])
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
    from experiment_diagnostics import diagnostics_lines

    lines += diagnostics_lines(agg.get("diagnostics") or {},
                               {k: label for k, (label, _) in CONFIGS.items()})
    main = next((n for n in ("vdi", "stable", "paper") if n in agg["table"]), None)
    lines += ["", f"## Acceptance checks (test-iid, {CONFIGS[main][0] if main else 'VDI'})", ""]
    if main:
        r1 = mean_std(agg["table"][main]["test_iid"]["q"]["R@1,IoU=0.5"])[0]
        mf = agg["trivial"]["test_iid"]["most-frequent"]["R@1,IoU=0.5"][0]
        lines.append(f"- R@1,IoU=0.5 {r1:.2f} vs 2 x most frequent moment {2 * mf:.2f}: "
                     f"{'met' if r1 >= 2 * mf else 'NOT met'}")
        below = [g for g, a in agg["actions"][main]["test_iid"].items()
                 if mean_std(a["recall"])[0] <= a["prior"]]
        lines.append("- every action above its prior: " + (
            "met" if not below else "NOT met (at or below: " + ", ".join(below) + ")"))
    return "\n".join(lines) + "\n"


def plot(agg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CONFIGS if n in agg["table"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1.4]})
    ax = axes[0]
    width = 0.76 / len(SPLITS)
    for k, split in enumerate(SPLITS):
        ms = [mean_std(agg["table"][n][split]["q"]["R@1,IoU=0.5"]) for n in names]
        xs = [i + (k - (len(SPLITS) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [m for m, _ in ms], width, yerr=[s for _, s in ms], capsize=3, label=split)
        mf = agg["trivial"][split]["most-frequent"]["R@1,IoU=0.5"][0]
        ax.axhline(mf, color=f"C{k}", ls="--", lw=1, label=f"most frequent moment ({split})")
    ax.set_xticks(range(len(names)), [CONFIGS[n][0].replace(" (", "\n(") for n in names],
                  fontsize=7)
    ax.set_ylabel("R@1, IoU=0.5")
    ax.set_title("Table 3 in miniature (mean ± std over seeds)")
    ax.legend(fontsize=7)
    ax = axes[1]
    fig3 = [n for n in FIG3 if n in agg["table"]]
    for k, form in enumerate(("q", "static", "dynamic")):
        ms = [mean_std(agg["table"][n]["test_iid"][form]["R@1,IoU=0.5"]) for n in fig3]
        xs = [i + (k - 1) * 0.27 for i in range(len(fig3))]
        ax.bar(xs, [m for m, _ in ms], 0.27, yerr=[s for _, s in ms], capsize=3,
               label={"q": "Q", "static": "Qs", "dynamic": "Qd"}[form])
    ax.set_xticks(range(len(fig3)), [CONFIGS[n][0].split(" (")[0] for n in fig3], fontsize=8)
    ax.set_title("Fig. 3: query forms, test-iid")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_all(configs: list[str], args: argparse.Namespace, data: Path, env: dict[str, str],
            runs_dir: Path, key: dict, runs: list[dict]) -> None:
    """Every seed of `configs` (seeds outermost: a stopped experiment has whole seeds), a
    finished one read back from OUT/runs; ablations are kept per form."""
    for seed in args.seeds:
        for name in configs:
            form = args.ablation_form if name in ABLATIONS else ""
            mine = {**key, "ablation_form": form} if form else key
            path = runs_dir / (f"{name}-{form}-seed{seed}.json" if form else
                               f"{name}-seed{seed}.json")
            if path.exists() and json.loads(path.read_text()).get("options") == mine:
                runs.append(json.loads(path.read_text()))
                continue
            print(f"\n== {CONFIGS[name][0]}{f' ({form})' if form else ''}, seed {seed}",
                  file=sys.stderr, flush=True)
            result = {**run_one(name, seed, args, data, env), "options": mine}
            path.write_text(json.dumps(result, indent=1))
            runs.append(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiment-out", help="work folder (VDI_HOME, data)")
    parser.add_argument("--results", default=str(ROOT / "examples" / "experiment-results"))
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--test-videos", type=int, default=200)
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--ablation-form", choices=("paper", "stable", "better"),
                        default="better", help="the VDI form the Table 3 ablations run in; "
                        "better: the one of `paper` / `stable` with the higher mean test-iid "
                        "R@1,IoU=0.5 (those run first, every seed)")
    parser.add_argument("--world-version", type=int, default=4,
                        help="synthetic generator version (4: held-out verbs, test-novel-verb)")
    d = recipe_defaults()  # the recipe's values (`vdi recipes show synthetic-experiment`)
    parser.add_argument("--backbone", default=d["backbone"])
    parser.add_argument("--epochs", type=int, default=d["epochs"])
    parser.add_argument("--milestones", default=d["milestones"],
                        help="epochs after which the lr falls x0.1 (comma list; '' = never)")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"])
    parser.add_argument("--lr", type=float, default=d["lr"])
    parser.add_argument("--text-lr", type=float, default=d["text_lr"], help="text lr / head lr")
    parser.add_argument("--text-pool", choices=("eot", "mean"), default=d["text_pool"],
                        help="sentence vector: CLIP's end token, or the mean of the token states")
    parser.add_argument("--text-trainable", choices=("all", "token-embeddings"),
                        default=d["text_trainable"], help="which text-tower parameters train")
    parser.add_argument("--temporal-delta", type=float, default=d["temporal_delta"])
    parser.add_argument("--span-delta", type=float, default=d["span_delta"],
                        help="the head's span_delta: s * (clip j - clip i) beside each 2D-map "
                        "cell (i, j); 0 = off")
    parser.add_argument("--pool-hidden", type=int, default=d["pool_hidden"],
                        help="MMN's 1x1 conv + ReLU before clip pooling (pool_linear) of this "
                        "width; 0 = off")
    args = parser.parse_args()
    args.seeds = parse_seeds(args.seeds)
    args.milestones = parse_milestones(args.milestones)
    configs = parse_configs(args.configs)
    command = "python examples/experiment.py " + " ".join(sys.argv[1:])
    out = Path(args.out).resolve()
    env = {**os.environ, "VDI_HOME": str(out / "home"), "HF_HUB_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    data = out / "shapes"
    if not (data / "meta.json").exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "vdi"), "datasets", "generate",
                        "synthetic-shapes", "--out", str(data), "--videos", str(args.videos),
                        "--test-videos", str(args.test_videos), "--seed", str(args.world_seed),
                        "--dataset-option", f"version={args.world_version}"],
                       env=env, check=True)
    meta = json.loads((data / "meta.json").read_text())
    global SPLITS
    SPLITS = splits_of(meta)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    key = {k: getattr(args, k) for k in ("epochs", "milestones", "batch_size", "lr", "text_lr",
                                         "temporal_delta", "span_delta", "pool_hidden",
                                         "text_pool", "text_trainable")}
    key.update(format=RUN_FORMAT, backbone=args.backbone, world_version=meta.get("version"),
               world=world_key(meta))
    runs: list[dict] = []
    first = [c for c in configs if c not in ABLATIONS]
    later = [c for c in configs if c in ABLATIONS]
    args.ablation_why = ""
    if later and args.ablation_form == "better":
        run_all(first, args, data, env, runs_dir, key, runs)
        args.ablation_form, args.ablation_why = better_form(runs)
        if not args.ablation_form:
            fail(f"--ablation-form better needs the paper and the stable runs first: "
                 f"{args.ablation_why}", "add paper,stable to --configs, or give "
                 "--ablation-form paper|stable")
        print(f"\n== the ablations run in the form {args.ablation_form}: {args.ablation_why}",
              file=sys.stderr, flush=True)
        run_all(later, args, data, env, runs_dir, key, runs)
    else:
        if not later:
            args.ablation_form = ""
        run_all(configs, args, data, env, runs_dir, key, runs)
    base = baselines(data, env, args.seeds)
    agg = aggregate(runs, base)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    seconds = sum(r["seconds"] for r in runs)  # training + evaluation, resumes included
    (results / "results.json").write_text(json.dumps(
        {"command": command, "options": key, "world": meta, "aggregate": agg,
         "runs": [{k: v for k, v in r.items() if k != "eval"} for r in runs]}, indent=1))
    (results / "results.md").write_text(markdown(agg, args, meta, seconds, command,
                                                         cpu_text(runs)))
    plot(agg, results / "results.png")
    print((results / "results.md").read_text())


if __name__ == "__main__":
    main()
