"""Deterministic shards of a video list, balanced by duration: `vdi extract --shard I/N`.

The field's way to extract a large dataset is independent, resumable shards over one file
list, one process per GPU or per Slurm array task, all writing into one feature cache and
database (the store takes concurrent writers). Shard I of N (0-based, as torch's RANK) gets the
videos that a longest-processing-time split assigns it: videos in order of decreasing duration
(ties by name), each to the shard with the least total duration so far (ties to the lowest
shard). Every process computes the same split from the same list, so the N shards cover the
list exactly once, and their total durations differ by at most the longest video.

`--shard auto` reads Slurm's SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT (the id counted
from SLURM_ARRAY_TASK_MIN), else torchrun's RANK / WORLD_SIZE.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Mapping, Sequence

from vdi_cli.errors import VdiError

HINT = "use --shard I/N with 0 <= I < N (e.g. --shard 0/4), or --shard auto under Slurm or torchrun"


def parse_shard(spec: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """(index, count) from 'I/N' or 'auto'; None for no sharding."""
    if spec is None:
        return None
    env = os.environ if env is None else env
    if spec == "auto":
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            first = env.get("SLURM_ARRAY_TASK_MIN", "0")
            return _check(_int(env["SLURM_ARRAY_TASK_ID"]) - _int(first),
                          _int(env["SLURM_ARRAY_TASK_COUNT"]), "SLURM_ARRAY_TASK_ID")
        if "RANK" in env and "WORLD_SIZE" in env:
            return _check(_int(env["RANK"]), _int(env["WORLD_SIZE"]), "RANK")
        raise VdiError("--shard auto found neither SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT "
                       "nor RANK/WORLD_SIZE in the environment", hint=HINT)
    index, sep, count = spec.partition("/")
    if not sep:
        raise VdiError(f"--shard must be I/N or auto, got '{spec}'", hint=HINT)
    return _check(_int(index), _int(count), "--shard")


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise VdiError(f"'{text}' is not a whole number", hint=HINT) from None


def _check(index: int, count: int, what: str) -> tuple[int, int]:
    if count < 1 or not 0 <= index < count:
        raise VdiError(f"{what} gives shard {index} of {count}, outside 0..{count - 1}", hint=HINT)
    return index, count


def assign(names: Sequence[str], durations: Sequence[float], count: int) -> list[int]:
    """The shard of each item (see the module docstring)."""
    order = sorted(range(len(names)), key=lambda k: (-float(durations[k] or 0.0), str(names[k])))
    loads = [(0.0, s) for s in range(count)]
    heapq.heapify(loads)
    out = [0] * len(names)
    for k in order:
        load, shard = heapq.heappop(loads)
        out[k] = shard
        heapq.heappush(loads, (load + float(durations[k] or 0.0), shard))
    return out


def shard_of(items: Sequence[tuple[str, object]], durations: Sequence[float], index: int,
             count: int) -> list[tuple[str, object]]:
    """The items of shard `index` of `count`, in their original order."""
    shards = assign([name for name, _ in items], durations, count)
    return [item for item, s in zip(items, shards, strict=True) if s == index]


def rank_device(device: str, env: Mapping[str, str] | None = None) -> str:
    """One model per GPU under torchrun: a bare `cuda` means this rank's GPU, cuda:LOCAL_RANK
    (the rank on this node). An explicit index (`cuda:1`), any other device, or no torchrun
    (no LOCAL_RANK) keeps the device as given; so on CPU every rank runs the same code path."""
    env = os.environ if env is None else env
    if device == "cuda" and "LOCAL_RANK" in env:
        return f"cuda:{_int(env['LOCAL_RANK'])}"
    return device


def unsharded_launch(env: Mapping[str, str] | None = None) -> str | None:
    """A description of the launcher when this process is one of several (torchrun's
    WORLD_SIZE > 1, or a Slurm array task) but no --shard was given: every process would
    extract every video. None otherwise."""
    env = os.environ if env is None else env
    if _positive(env.get("WORLD_SIZE")) > 1:
        return f"torchrun (WORLD_SIZE={env['WORLD_SIZE']})"
    if _positive(env.get("SLURM_ARRAY_TASK_COUNT")) > 1:
        return f"a Slurm job array (SLURM_ARRAY_TASK_COUNT={env['SLURM_ARRAY_TASK_COUNT']})"
    return None


def _positive(text: str | None) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        return 0
