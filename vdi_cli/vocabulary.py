"""The command line's vocabulary: one flag for one concept in every command, and the old
spellings that still work for one release.

This is data, read by three readers: `vdi_cli.cli_aliases` (which rewrites a deprecated
spelling to its new one and warns), `tests/test_cli_vocabulary.py` (which scans every command
of the Typer app and fails when a flag is not here, or when one option carries flags of two
concepts) and docs/cli-vocabulary.md (which states the same tables for people). A new option
either reuses a term below or adds one: a flag names one concept everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

REMOVED_IN = "vdi 0.2"  # the release that drops the deprecated spellings


@dataclass(frozen=True)
class Term:
    """One concept and its flags (the long one first; a short one where it has one)."""

    concept: str
    flags: tuple[str, ...]


TERMS: tuple[Term, ...] = (
    # the data a command reads
    Term("annotation format (a `vdi datasets` id)", ("--dataset",)),
    Term("annotation file", ("--annotations",)),
    Term("video folder of an annotation file (<video id>.<ext> files)", ("--video-dir",)),
    Term("validation annotation file", ("--val",)),
    Term("training annotation file (priors, the most-frequent baseline)", ("--train",)),
    Term("split name stored with metrics", ("--split",)),
    Term("text file, one query per line", ("--file",)),
    Term("ranked predictions file (JSONL)", ("--predictions",)),
    # components and their options: --KIND names a component, --KIND-option KEY=VALUE its options
    Term("backbone id", ("--backbone", "-b")),
    Term("backbone option KEY=VALUE", ("--backbone-option",)),
    Term("backbone weights (a file or local-dir:FOLDER)", ("--weights",)),
    Term("parser id", ("--parser", "-p")),
    Term("parser option KEY=VALUE", ("--parser-option",)),
    Term("annotation format option KEY=VALUE", ("--dataset-option",)),
    Term("head id", ("--head",)),
    Term("head option KEY=VALUE", ("--head-option", "-H")),
    Term("objective id (repeatable)", ("--objective",)),
    Term("no objective (the baseline)", ("--no-objective",)),
    Term("objective option ID.KEY=VALUE", ("--objective-option", "-O")),
    Term("vector index option KEY=VALUE", ("--index-option",)),
    Term("training option KEY=VALUE (`vdi train --list-options`)", ("-o",)),
    Term("training recipe", ("--recipe", "-r")),
    # the model a command uses
    Term("checkpoint folder", ("--checkpoint", "-c")),
    Term("run id (a training run's best checkpoint)", ("--run",)),
    Term("training-free head", ("--training-free",)),
    Term("resume a training run", ("--resume",)),
    # sampling and batching
    Term("frames per second", ("--fps",)),
    Term("fixed frame count", ("--num-frames",)),
    Term("batch size (in the command's unit)", ("--batch-size",)),
    Term("window length (s)", ("--window",)),
    Term("window overlap", ("--overlap",)),
    Term("torch device", ("--device",)),
    Term("compute precision", ("--precision",)),
    Term("stored feature dtype", ("--dtype",)),
    Term("shard I/N", ("--shard",)),
    Term("decoding processes", ("--workers",)),
    Term("processes to train on", ("--nproc",)),
    Term("seed", ("--seed",)),
    Term("epochs", ("--epochs",)),
    Term("learning rate", ("--lr",)),
    # results and output
    Term("moments per query", ("--top-k", "-k")),
    Term("output format (table, json, jsonl, srt, vtt)", ("--format", "-f")),
    Term("JSON output", ("--json",)),
    Term("score plot (PNG)", ("--plot",)),
    Term("R@n values", ("--recall",)),
    Term("IoU thresholds", ("--iou",)),
    Term("metric suites", ("--metrics",)),
    Term("per-field scores", ("--by",)),
    Term("query forms", ("--query-form",)),
    Term("trivial baseline", ("--baseline",)),
    Term("write a model's predictions", ("--save-predictions",)),
    Term("list the options and exit", ("--list-options",)),
    # libraries, indexes and serving
    Term("index name", ("--index", "-i")),
    Term("index kind", ("--kind",)),
    Term("nearest neighbours to rescore", ("--candidates",)),
    Term("a folder searched without an index", ("--folder", "-F")),
    Term("listen address", ("--host",)),
    Term("listen port", ("--port",)),
    Term("load the model at start", ("--preload", "--lazy")),
    # housekeeping
    Term("recompute or replace", ("--force",)),
    Term("do not read the cache", ("--no-cache",)),
    Term("output folder", ("--out",)),
    Term("videos to generate", ("--videos",)),
    Term("test videos to generate", ("--test-videos",)),
    Term("frame side (px)", ("--size",)),
    Term("how many rows", ("--limit", "-n")),
    Term("only runs of this status", ("--status",)),
    Term("only runs of this command", ("--command",)),
    Term("say, do not do", ("--dry-run",)),
    # global options (before the command)
    Term("run database", ("--db",)),
    Term("only results and errors", ("--quiet", "-q")),
    Term("more detail", ("--verbose", "-v")),
    Term("print the version", ("--version",)),
    Term("help", ("--help", "-h")),
)


@dataclass(frozen=True)
class Deprecated:
    """An old spelling of a flag in one command: rewritten to `new`, with a warning."""

    command: tuple[str, ...]  # the command path, e.g. ("datasets", "check")
    old: str
    new: str


DEPRECATED: tuple[Deprecated, ...] = (
    # the annotation format is --dataset everywhere (vdi eval said --format)
    Deprecated(("eval",), "--format", "--dataset"),
    # -o is vdi train's training options only; a component's options are --KIND-option
    Deprecated(("eval",), "--option", "--dataset-option"),
    Deprecated(("eval",), "-o", "--dataset-option"),
    Deprecated(("extract",), "--option", "--backbone-option"),
    Deprecated(("extract",), "-o", "--backbone-option"),
    Deprecated(("parse",), "--option", "--parser-option"),
    Deprecated(("parse",), "-o", "--parser-option"),
    Deprecated(("datasets", "check"), "-o", "--dataset-option"),
    Deprecated(("datasets", "generate"), "-o", "--dataset-option"),
    # -O is objective options ID.KEY=VALUE; an index's options have no short flag
    Deprecated(("index", "build"), "-O", "--index-option"),
    # a short flag means one thing: -f is --format (output), -p is --parser
    Deprecated(("parse",), "-f", "--file"),
    Deprecated(("serve",), "-p", "--port"),
)


def flag_concepts() -> dict[str, str]:
    """Every flag of the vocabulary -> its concept."""
    return {flag: term.concept for term in TERMS for flag in term.flags}


def deprecated_in(command: tuple[str, ...]) -> dict[str, str]:
    """The deprecated spellings of one command: old flag -> new flag."""
    return {d.old: d.new for d in DEPRECATED if d.command == command}
