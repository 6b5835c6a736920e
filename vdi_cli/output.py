"""Output helpers: results on stdout, everything else on stderr; progress only on a TTY."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from vdi_cli.settings import get_settings


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def info(message: str) -> None:
    """A status line on stderr, silenced by --quiet."""
    if not get_settings().quiet:
        print(message, file=sys.stderr)


def debug(message: str) -> None:
    if get_settings().verbose:
        print(message, file=sys.stderr)


def notice(line: str) -> None:
    """A model notice: "Warning: ..." lines always print, the others as `info`."""
    if line.startswith("Warning: "):
        print(line, file=sys.stderr)
    else:
        info(line)


def warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table (no colour codes, so it pipes cleanly)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    sys.stdout.write(table(rows, headers) + "\n")


def shows_progress(json_mode: bool = False) -> bool:
    """What a command passes as a stage's `show_progress`: not with --quiet or --json."""
    return not (get_settings().quiet or json_mode)


def progress(iterable: Iterable[Any] | None = None, *, json_mode: bool = False, **kwargs: Any):
    """A command's tqdm bar on stderr; disabled when stderr is not a TTY, with --quiet or --json
    (library code uses `vdi_cli.progress.progress_bar`, told by its caller)."""
    from vdi_cli.progress import progress_bar

    return progress_bar(iterable, enabled=not (get_settings().quiet or json_mode), **kwargs)


def warn_damaged(videos: list[Any]) -> None:
    """One warning per damaged video that still decoded: how many frames were lost."""
    for v in videos:
        d = v.damage
        n = d["damaged_packets"]
        why = f"the stream ends early at {d['decoded_until']} s" if d.get("ended_early") else \
            f"{n} damaged packet{'s' if n != 1 else ''} skipped"
        warn(f"{v.path or v.name}: {d['lost_frames']} of {d['expected_frames']} frames could not "
             f"be decoded ({why}); its features cover the {d['decoded_frames']} others")

