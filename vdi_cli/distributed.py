"""torch.distributed for `vdi train` under torchrun: the process group, which rank is which,
gathers that keep gradients, and what a rank that fails leaves for rank 0 to report.

torchrun (or `srun` with torchrun's rendezvous) starts one process per rank and sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; `start()` reads them. Nothing here imports torch at
module import (the CLI's `--help` must stay torch-free).

A rank whose step raises writes `vdi/failed/<rank>` (its error) into the rendezvous store
before it exits; rank 0, whose next collective then fails (or which torchrun stops with
SIGTERM), reads it back in `Session.peer_failure` and ends the run row as `error` saying which
rank failed and why. A rank killed outright (SIGKILL, out of memory) writes nothing: rank 0 then
names the local ranks whose process is gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

_FAILED = "vdi/failed/"
_current: Session | None = None


def under_torchrun() -> bool:
    """True when this process is one of several ranks that torchrun (or srun) started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def env_rank() -> int:
    """This process's global rank as torchrun set it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


@dataclass
class Session:
    """This process's place in a torch.distributed job (`world == 1`: a plain single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""
    device: str = "cpu"
    group: Any = None  # a second group for the feature gathers (see `gather_rows`)
    peers: list[tuple[str, int]] = field(default_factory=list)  # (host, pid) per rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (any picklable object)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    # ---- failures ----------------------------------------------------------------------------
    def report_failure(self, exc: BaseException) -> None:
        """Leave this rank's error in the rendezvous store for rank 0 (best effort)."""
        store = _store()
        if store is None:
            return
        text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        try:
            store.set(f"{_FAILED}{self.rank}", text[:2000])
        except Exception:  # noqa: BLE001 - the store may be gone with the job
            pass

    def peer_failure(self) -> str | None:
        """What rank 0 can tell about the other ranks after a collective failed: the errors
        they reported, else the local ranks whose process is gone; None when all look alive."""
        import time

        store = _store()
        host = socket.gethostname()
        began = time.monotonic()
        while True:
            said = []
            for r in range(self.world):
                if r == self.rank or store is None:
                    continue
                try:
                    if store.check([f"{_FAILED}{r}"]):
                        said.append(f"rank {r}: {store.get(f'{_FAILED}{r}').decode()}")
                except Exception:  # noqa: BLE001 - the store went with the job
                    store = None
            if said:
                return "; ".join(said)
            gone = [r for r, (h, pid) in enumerate(self.peers)
                    if r != self.rank and h == host and not _alive(pid)]
            waited = time.monotonic() - began
            # a failing rank writes its note before it exits: give it a moment to arrive
            if (gone and waited > 0.5) or waited > 2.0:
                break
            time.sleep(0.1)
        if gone:
            return "; ".join(f"rank {r} (pid {self.peers[r][1]}) ended without reporting an "
                             "error (killed, or out of memory?)" for r in gone)
        return None

    def close(self) -> None:
        global _current
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
        _current = None


def _store() -> Any:
    try:
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - no process group (any more)
        return None


def _alive(pid: int) -> bool:
    """False for a process that is gone or a zombie (exited, not yet reaped by torchrun)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def current() -> Session:
    """The session `start()` opened, or a single-process one."""
    return _current if _current is not None else Session()


def start(device: str = "cpu", timeout_s: float | None = None) -> Session:
    """Join the torchrun job (gloo on CPU, nccl on CUDA; each rank on cuda:LOCAL_RANK) and
    return the session; a plain single-process session when not under torchrun."""
    global _current
    if not under_torchrun():
        _current = Session(device=device)
        return _current
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    timeout = timedelta(seconds=timeout_s or float(os.environ.get("VDI_DDP_TIMEOUT", "1800")))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout,
                                device_id=torch.device(device) if cuda else None)
    session = Session(rank, world, local, backend, device)
    session.group = dist.new_group(backend=backend, timeout=timeout)
    session.peers = session.gather_objects((socket.gethostname(), os.getpid()))
    _current = session
    return session


def shard_range(count: int, world: int, rank: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous share of `count` items: the first count % world
    ranks take one more, so the shares concatenated in rank order are the items in order."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def gather_rows(local: Any, sizes: list[int], session: Session) -> Any:
    """Concatenate every rank's rows ([sizes[r], ...], same trailing shape and dtype), in rank
    order, on every rank, keeping the autograd graph: the gradient reaching rank r's rows is
    the sum of what every rank's loss sends them (each rank computes the whole-batch loss, and
    DDP's averaging then divides by the world size; see `vdi_cli.pipeline.train_ddp`).

    Runs on `session.group`, not the default group, so the gathers' backward all-reduce never
    interleaves with DDP's gradient buckets."""
    import torch

    if not session.active:
        return local
    most = max(sizes)
    pad = most - int(local.shape[0])
    padded = torch.cat([local, local.new_zeros(pad, *local.shape[1:])]) if pad else local
    stacked = _Gather.apply(padded.contiguous(), session.group, session.world, session.rank)
    return torch.cat([stacked[r, :n] for r, n in enumerate(sizes)])


def _gather_function() -> Any:
    import torch
    import torch.distributed as dist

    class Gather(torch.autograd.Function):
        """all_gather forward; backward sums the gradients of every rank's copy (an all-reduce,
        which gloo has, unlike reduce-scatter) and keeps this rank's slice."""

        @staticmethod
        def forward(ctx: Any, x: Any, group: Any, world: int, rank: int) -> Any:
            ctx.group, ctx.rank = group, rank
            out = [torch.empty_like(x) for _ in range(world)]
            dist.all_gather(out, x, group=group)
            return torch.stack(out)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
            return grad[ctx.rank], None, None, None

    return Gather


class _LazyGather:
    _fn: Any = None

    def apply(self, *args: Any) -> Any:
        if self._fn is None:
            self._fn = _gather_function()
        return self._fn.apply(*args)


_Gather = _LazyGather()
