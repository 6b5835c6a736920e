"""Decoding processes for `vdi extract --workers K`: K processes decode and preprocess videos,
one model in the parent encodes what they send.

Why processes: one decoding thread tops out at one core (PyAV releases the GIL while decoding,
but the Python around it and the preprocessing hold it), which on small or low-resolution
models is slower than the model. Each worker runs `decode_video`, the same function as the
`--workers 0` thread, so the batches, and so the features, are the same.

Protocol, one duplex pipe per worker. Parent -> worker: ("video", idx, path) tasks (each worker
holds at most PREFETCH, so a finished video is followed at once by the next), ("ack",) for
each batch received, None to stop. Worker -> parent: ("start", idx, info), ("batch", idx,
pixels, times), ("end", idx, damage), ("error", idx, fields), and ("take", idx) before
each video, so the parent knows which one a worker was reading when it died. Batches are
torch tensors, which `torch.multiprocessing` sends as shared memory (no copy through the pipe);
a worker sends a new batch only while fewer than CREDITS of its batches are unacknowledged, so
memory stays bounded by K x CREDITS batches however long the videos.

A video a worker cannot read comes back as an error with its reason, like the thread path's.
A worker that dies (a decoder crash, the OOM killer) fails only the video it was reading, with
the way it died as the error; its other tasks (also one it had finished but whose batches the
parent had not read yet) start over on a new worker. Workers ignore SIGINT (a
Ctrl-C reaches the whole process group: the parent handles it and stops them), leave SIGTERM at
its default, write no files, and exit when the parent's end of the pipe closes, so a killed
parent leaves no worker behind.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any

from vdi_cli.pipeline.decode import decode_video, error_fields, error_from_fields
from vdi_cli.video import CORRUPT, Sampling, VideoError

PREFETCH = 2  # tasks a worker holds: the one it decodes and the next
CREDITS = 2  # unacknowledged batches per worker
START_ENV = "VDI_DECODE_START"  # fork (default on Linux) | spawn | forkserver


def start_method() -> str:
    """The multiprocessing start method for the workers: $VDI_DECODE_START, else fork where
    the platform has it (starts in milliseconds; the workers never touch the model, CUDA or the
    database they inherit), else spawn."""
    import multiprocessing as mp

    from vdi_cli.errors import VdiError

    methods = mp.get_all_start_methods()
    chosen = os.environ.get(START_ENV) or ("fork" if "fork" in methods else "spawn")
    if chosen not in methods:
        raise VdiError(f"{START_ENV}={chosen} is not a start method of this platform",
                       hint=f"use one of {', '.join(methods)}")
    return chosen


def _worker_main(conn: Any, sampling: Sampling, batch_size: int, preprocess: Any,
                 nice: int) -> None:
    """A decoding process: take tasks, send the batches of each video, until told to stop or
    the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    sys.excepthook = _quiet_when_cut_off
    import torch
    import torch.multiprocessing  # noqa: F401 - registers the shared-memory tensor pickling

    torch.set_num_threads(1)  # one core per worker; K workers use K cores
    tasks: deque[tuple[Any, ...]] = deque()
    state = {"in_flight": 0, "stop": False}
    parent = os.getppid()

    def pump(block: bool) -> None:
        # A forked sibling holds a copy of the parent's end of this pipe, so a killed parent
        # does not always read as EOF here: a blocking wait also watches the parent's pid.
        while True:
            if not conn.poll(1.0 if block else 0):
                if not block:
                    return
                if os.getppid() != parent:
                    raise EOFError("the extracting process is gone")
                continue
            msg = conn.recv()
            if msg is None:
                state["stop"] = True
            elif msg[0] == "ack":
                state["in_flight"] -= 1
            else:
                tasks.append(msg)
            block = False

    def send(msg: tuple[Any, ...]) -> None:
        if os.getppid() != parent:
            raise EOFError("the extracting process is gone")
        if msg[0] == "batch":
            while state["in_flight"] >= CREDITS:
                pump(True)
            state["in_flight"] += 1
        conn.send(msg)

    try:
        while True:
            while not tasks and not state["stop"]:
                pump(True)
            if not tasks:
                return
            _, idx, path = tasks.popleft()
            send(("take", idx))  # plain values: readable even after this process died
            try:
                for event in decode_video(path, sampling, batch_size, preprocess):
                    send((event[0], idx, *event[1:]))
            except VideoError as exc:
                send(("error", idx, error_fields(exc)))
            pump(False)
    except (EOFError, OSError):  # the parent is gone (or closed the pipe): stop quietly
        return
    finally:
        conn.close()


SHM = "/dev/shm"


def shared_memory_needed(workers: int, batch_size: int, image_size: int) -> int:
    """Bytes of shared memory K workers can hold at once: per worker CREDITS batches in
    flight plus the one being filled, each batch_size float32 images of 3 x S x S."""
    return workers * (CREDITS + 1) * batch_size * 3 * image_size * image_size * 4


def check_shared_memory(workers: int, batch_size: int, image_size: int,
                        free: int | None = None) -> None:
    """Fail before any work when /dev/shm cannot hold the workers' batches (a container's
    default is 64 MB; torch would die with a bus error part-way). `free` defaults to what
    /dev/shm has free; no /dev/shm (not Linux): no check."""
    from vdi_cli.errors import VdiError

    if free is None:
        if not os.path.isdir(SHM):
            return
        import shutil

        free = shutil.disk_usage(SHM).free
    need = shared_memory_needed(workers, batch_size, image_size)
    if need > free:
        raise VdiError(
            f"--workers {workers} with --batch-size {batch_size} needs about {need / 2**20:.0f} "
            f"MiB of shared memory for the batches in flight; {SHM} has {free / 2**20:.0f} MiB "
            "free",
            hint="use fewer --workers or a smaller --batch-size, or give the container more "
                 "(docker run --shm-size=2g)")


def _quiet_when_cut_off(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """The worker's excepthook: multiprocessing's fd-sharing thread reports through it when
    the parent dies part-way through fetching a batch (connection reset). That is the parent
    going away, which this worker notices and exits on, not an error to print."""
    if issubclass(kind, (OSError, EOFError)):
        return
    sys.__excepthook__(kind, exc, tb)


def _how_it_died(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class DecodePool:
    """K decoding processes; `messages(items)` yields their messages as they arrive:
    ("start", idx, info), ("batch", idx, pixels, times), ("end", idx, damage),
    ("error", idx, VideoError), ("retry", idx) (drop what you have of it: it starts over).
    Use as a context manager: leaving stops every worker."""

    def __init__(self, workers: int, sampling: Sampling, batch_size: int, preprocess: Any,
                 nice: int = 0, method: str | None = None) -> None:
        import multiprocessing as mp

        import torch.multiprocessing  # noqa: F401 - the parent unpickles shared-memory tensors

        self.ctx = mp.get_context(method or start_method())
        self.args = (sampling, batch_size, preprocess, nice)
        self.size = workers
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.assigned: list[deque[tuple[int, str]]] = []
        self.current: list[int | None] = []  # the video each worker said it is decoding
        self.deaths: list[tuple[int, str]] = []  # (video idx, how its worker died)

    def _start(self, slot: int | None = None) -> int:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker_main, args=(child, *self.args),
                                name="vdi-decode", daemon=True)
        proc.start()
        child.close()  # the parent keeps only its end: a dead worker reads as EOF
        if slot is None:
            self.procs.append(proc)
            self.conns.append(parent)
            self.assigned.append(deque())
            self.current.append(None)
            return len(self.procs) - 1
        self.procs[slot], self.conns[slot] = proc, parent
        self.assigned[slot], self.current[slot] = deque(), None
        return slot

    def _give(self, slot: int, remaining: deque[tuple[int, str]], upto: int = PREFETCH) -> None:
        while remaining and len(self.assigned[slot]) < upto:
            task = remaining.popleft()
            self.assigned[slot].append(task)
            try:
                self.conns[slot].send(("video", *task))
            except OSError:  # it died: its EOF comes next, and `_died` reassigns the task
                return

    def messages(self, items: list[tuple[int, str]]) -> Iterator[tuple[Any, ...]]:
        from multiprocessing.connection import wait

        remaining = deque(items)
        for _ in range(min(self.size, len(items))):
            self._start()
        for upto in range(1, PREFETCH + 1):  # round-robin: the first K videos start at once
            for slot in range(len(self.procs)):
                self._give(slot, remaining, upto)
        while any(self.assigned):
            live = {self.conns[s]: s for s in range(len(self.procs)) if self.assigned[s]}
            for conn in wait(list(live)):
                slot = live[conn]
                try:
                    msg = conn.recv()
                except Exception:  # noqa: BLE001 - EOF: it died; else a batch it cannot serve
                    yield from self._died(slot, remaining)
                    continue
                kind, idx = msg[0], msg[1]
                if kind == "take":
                    self.current[slot] = idx
                    continue
                if kind == "batch":
                    try:
                        conn.send(("ack",))
                    except OSError:  # it died after sending this one: its EOF comes next
                        pass
                elif kind == "error":
                    msg = ("error", idx, error_from_fields(msg[2]))
                if kind in ("end", "error"):
                    self.assigned[slot].popleft()
                    self._give(slot, remaining)
                yield msg

    def _died(self, slot: int, remaining: deque[tuple[int, str]]) -> Iterator[tuple[Any, ...]]:
        """A worker died (or sent a batch it cannot serve any more: shared-memory tensors are
        fetched from the sender, so a dead worker's unread batches are lost). The video it
        said it was decoding fails with how it died; its other unfinished videos start over
        on a new worker (("retry", idx) tells the consumer to drop what it has of them)."""
        proc, conn = self.procs[slot], self.conns[slot]
        if proc.is_alive():
            proc.kill()
        while True:  # read what is left, for the last "take": the video it died on
            try:
                msg = conn.recv()
            except EOFError:
                break
            except Exception:  # noqa: BLE001 - more batches of the dead worker
                continue
            if msg[0] == "take":
                self.current[slot] = msg[1]
        proc.join(timeout=5)
        how = _how_it_died(proc.exitcode)
        conn.close()
        lost = list(self.assigned[slot])
        self.assigned[slot].clear()
        retry = [task for task in lost if task[0] != self.current[slot]]
        for idx, path in lost:
            if idx != self.current[slot]:
                yield ("retry", idx)
                continue
            self.deaths.append((idx, how))
            yield ("error", idx, VideoError(
                path, CORRUPT, f"the decoding process died ({how}) while reading this file",
                hint="rerun to retry it (the others are cached); if it dies again, check the "
                     "file with ffprobe, re-encode it or drop it from the list"))
        remaining.extendleft(reversed(retry))
        if remaining:
            self._start(slot)
            self._give(slot, remaining)

    def close(self) -> None:
        """Stop every worker: ask, wait briefly, then terminate (an interrupted run's workers
        may be part-way through a long video)."""
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        unfinished = any(self.assigned)  # interrupted: no point waiting for their videos
        for proc in self.procs:
            proc.join(timeout=0 if unfinished else 2)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
