"""The command layer's wording of library errors: the library names its call's parameters
(`vdi_cli.errors.param`: `top_k`, `checkpoint=PATH`) and the CLI says its flags instead
(`--top-k`, `--checkpoint PATH`), so `vdi_cli.retrieve(..., top_k=0)` and `vdi retrieve -k 0`
each get a message in the caller's own terms.

`run_context` here is `vdi_cli.runs.run_context` with that wording applied before the run row
records the error; `vdi_cli.cli.run` applies it to whatever reaches it, and `notice` (the
commands' `notify`) to the model notices the library sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vdi_cli.errors import VdiError, reword, words

# API parameter -> CLI flag (the same name in every command that has it)
CLI_FLAGS = {
    "batch_size": "--batch-size",
    "backbone": "--backbone",
    "checkpoint": "--checkpoint",
    "fps": "--fps",
    "head_options": "--head-option",
    "overlap": "--overlap",
    "predictions": "--predictions",
    "run": "--run",
    "top_k": "--top-k",
    "training_free": "--training-free",
    "video_dir": "--video-dir",
    "weights": "--weights",
    "window": "--window",
    "workers": "--workers",
}


def cli_words(text: str) -> str:
    """A library message in the CLI's words."""
    return words(text, CLI_FLAGS)


def notice(line: str) -> None:
    """`vdi_cli.output.notice` of a library notice, in the CLI's words."""
    from vdi_cli.output import notice as print_notice

    print_notice(cli_words(line))


def cli_error(exc: VdiError) -> VdiError:
    """`exc` reworded in place for the CLI."""
    return reword(exc, CLI_FLAGS)


@contextmanager
def run_context(db: Any, command: str, config: dict[str, Any] | None = None,
                argv: list[str] | None = None, **columns: Any) -> Iterator[Any]:
    """`vdi_cli.runs.run_context`, the error reworded for the CLI before the row records it."""
    from vdi_cli.runs import run_context as library_run_context

    with library_run_context(db, command, config, argv, **columns) as handle:
        try:
            yield handle
        except VdiError as exc:
            raise cli_error(exc)  # noqa: B904 - the same exception, reworded in place
