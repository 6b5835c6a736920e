"""Where `generate` writes: a staging folder inside `--out`, moved into place only when complete.

A generated set is videos/ plus split files that must agree; writing them straight into `--out`
let a second generate mix new annotations with old videos, and a killed one leave half-written
files. So generate refuses a folder that already holds something (unless `force`), writes the
whole set into a hidden staging folder (`OUT/.generate.tmp-PID`), and only then replaces the
old entries one by one, `meta.json` last (its presence means the set is complete). A failure or
Ctrl-C removes the staging folder and leaves an existing set untouched; a SIGKILL leaves only the
hidden staging folder, which the next generate clears. `force` deletes only what generate itself
writes: a folder holding anything else is refused, so `--out ~ --force` cannot empty a home.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vdi_cli.errors import VdiError

STAGING_PREFIX = ".generate.tmp-"
SPLIT_FILES = ("train.json", "test_iid.json", "test_novel_word.json", "test_novel_verb.json")
OWNED_FILES = (*SPLIT_FILES, "meta.json")  # meta.json last: written when the set is complete


def _owned(entry: Path) -> bool:
    """Whether `entry` (directly inside --out) is something generate writes (or left behind)."""
    if entry.name.startswith(STAGING_PREFIX) or entry.name in OWNED_FILES:
        return True
    if entry.name == "videos" and entry.is_dir():
        return all(f.is_file() and f.suffix in (".mp4", ".tmp") for f in entry.iterdir())
    return False


def prepare(out: Path, force: bool) -> Path:
    """Check `out`, clear a killed generate's leftovers, and return a fresh staging folder."""
    if out.exists() and not out.is_dir():
        raise VdiError(f"--out '{out}' is a file, not a folder",
                       hint="give a new or empty folder for the generated videos and splits")
    try:
        out.mkdir(parents=True, exist_ok=True)
        entries = sorted(out.iterdir())
    except OSError as exc:
        raise VdiError(f"cannot create the output folder '{out}': {exc.strerror or exc}",
                       hint="choose a folder you can write to") from exc
    for entry in entries:
        if entry.name.startswith(STAGING_PREFIX):  # a killed generate's staging folder
            shutil.rmtree(entry, ignore_errors=True)
    entries = [e for e in entries if e.exists()]
    if entries and not force:
        what = "a generated dataset" if (out / "meta.json").exists() else "files"
        raise VdiError(
            f"--out '{out}' already holds {what} ({', '.join(e.name for e in entries[:4])}"
            f"{', ...' if len(entries) > 4 else ''})",
            hint="choose a new or empty folder, or pass --force to replace the generated set "
            "there",
        )
    foreign = [e.name for e in entries if not _owned(e)]
    if foreign:
        raise VdiError(
            f"--out '{out}' holds files that vdi did not generate ({', '.join(foreign[:4])}"
            f"{', ...' if len(foreign) > 4 else ''}); --force replaces only a generated set",
            hint="choose a new or empty folder, or move those files away",
        )
    staging = out / f"{STAGING_PREFIX}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "videos").mkdir(parents=True)
    return staging


def commit(staging: Path, out: Path) -> None:
    """Move the complete set from `staging` into `out`, replacing the old one, meta.json last."""
    if (out / "meta.json").exists():  # the old set stops claiming to be complete first
        os.unlink(out / "meta.json")
    old_videos = out / "videos"
    if old_videos.exists():
        shutil.rmtree(old_videos)
    os.replace(staging / "videos", old_videos)
    for name in OWNED_FILES:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
        elif (out / name).exists():  # a split the new set does not have
            os.unlink(out / name)
    staging.rmdir()


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
