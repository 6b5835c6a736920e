"""Where `vdi extract`'s batches come from: one background decoding thread (`--workers 0`)
or K decoding processes (`--workers K`, `extract_workers.DecodePool`). Both yield the same
messages, ("start", idx, info), ("batch", idx, pixels, times), ("end", idx, damage),
("error", idx, VideoError) (and, from processes, ("retry", idx)), so the extraction loop in
`extract.py` does not care which it reads.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Iterator
from typing import Any

from vdi_cli.pipeline.decode import decode_video
from vdi_cli.video import Sampling, VideoError

QUEUE_BATCHES = 2  # batches decoded ahead of the model

NICE_ENV = "VDI_DECODE_NICE"
DEFAULT_NICE = 10


def decode_nice() -> int:
    """How much lower the decoders run (`VDI_DECODE_NICE`, default 10; 0 or less: not lowered).
    Read when an extraction starts, not at import: importing vdi parses no environment, and a
    bad value is an error for the extraction that uses it rather than for every import."""
    from vdi_cli.errors import VdiError

    raw = os.environ.get(NICE_ENV, "").strip()
    try:
        return int(raw) if raw else DEFAULT_NICE
    except ValueError:
        raise VdiError(f"{NICE_ENV}={raw!r} is not a whole number",
                       hint=f"e.g. {NICE_ENV}=10 (0 leaves the decoders at normal priority)"
                       ) from None


def _lower_priority(nice: int) -> None:
    """Run this (decoding) thread at a lower CPU priority (Linux: per-thread nice).

    The model's forward pass keeps every core busy and waits for its slowest thread, so a
    decoder competing at equal priority slows each op by the time it steals. At nice +10 the
    decoder mostly runs in the gaps between ops, and the bounded queue still keeps it ahead.
    """
    if not sys.platform.startswith("linux") or nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
    except (AttributeError, OSError):
        pass


def _producer(
    q: queue.Queue, stop: threading.Event, items: list[tuple[int, str]], sampling: Sampling,
    batch_size: int, loaded: Any, nice: int = DEFAULT_NICE,
) -> None:
    def put(msg: tuple[Any, ...]) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    _lower_priority(nice)
    try:  # one intra-op thread here: a second OpenMP team would fight the model's for cores
        import torch

        torch.set_num_threads(1)  # per thread: the main thread keeps its setting
    except ImportError:
        pass
    for idx, path in items:
        if stop.is_set():
            return
        try:
            for event in decode_video(path, sampling, batch_size, loaded.preprocess):
                if not put((event[0], idx, *event[1:])):
                    return
        except VideoError as exc:
            put(("error", idx, exc))
    put(("done",))


def thread_messages(items: list[tuple[int, str]], sampling: Sampling, batch_size: int,
                     loaded: Any) -> Iterator[tuple[Any, ...]]:
    """`--workers 0`: the messages of one background decoding thread, video after video."""
    q: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    stop = threading.Event()
    nice = decode_nice()  # here, so that a bad VDI_DECODE_NICE is the caller's error
    thread = threading.Thread(
        target=_producer, args=(q, stop, items, sampling, batch_size, loaded, nice),
        name="vdi-decode", daemon=True,
    )
    thread.start()
    try:
        while True:
            msg = q.get()
            if msg[0] == "done":
                return
            yield msg
    finally:
        stop.set()
        thread.join(timeout=10)


def pool_messages(items: list[tuple[int, str]], sampling: Sampling, batch_size: int,
                   loaded: Any, workers: int) -> Iterator[tuple[Any, ...]]:
    """`--workers K`: the messages of K decoding processes, as they arrive."""
    import torch

    from vdi_cli.pipeline.extract_workers import DecodePool, check_shared_memory
    from vdi_cli.preprocess import frame_preprocess

    check_shared_memory(min(workers, len(items)), batch_size, int(loaded.image_size))
    threads = torch.get_num_threads()
    if str(loaded.device) == "cpu":  # the workers take K cores: the model gets the rest
        torch.set_num_threads(model_threads(threads, min(workers, len(items))))
    try:
        with DecodePool(workers, sampling, batch_size, frame_preprocess(loaded),
                        nice=decode_nice()) as pool:
            yield from pool.messages(items)
    finally:
        torch.set_num_threads(threads)


def model_threads(threads: int, workers: int, cpus: int | None = None) -> int:
    """Intra-op threads for a CPU model beside K decoding processes: the cores they leave,
    at least 1. An OpenMP team larger than the free cores waits at every barrier for a thread
    the scheduler parked (measured here: a tiny model at 59 frames/s with 2 threads beside busy
    decoders, 5,400 with 1)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(threads, cpus - workers))
