"""`vdi train` on one process or as one rank of a torchrun job, and `--nproc N`, which starts
that job for the user.

Under torchrun every rank runs the same `vdi train` command line. Rank 0 opens the store, writes
the run row, the metrics, the checkpoints and the log; the other ranks open the store read-only
(to read the feature cache) and learn the run id from rank 0. A rank that fails leaves its error
for rank 0 (`vdi_cli.distributed`), which finishes the run row as `error` naming the rank.
"""

from __future__ import annotations

import sys
from typing import Any

RESUME_HINT = ("the failing rank's own output above (or the system log, for a killed process) "
               "says why; then rerun, or once an epoch is saved continue with `vdi train "
               "--resume {run}` under the same torchrun (or --nproc N) command")


def train_on_ranks(config: Any, resume: int | None, db: Any, show_progress: bool,
                   recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `run_training` here (one process) or as this torchrun rank; returns the summary with
    the run id. `recipe` (`Recipe.record()`: name, path, sha256, its values) is stored in the run
    row's configuration under "recipe", beside the resolved options."""
    from vdi_cli.commands._flags import run_context  # library errors in the CLI's words
    from vdi_cli.distributed import start
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.runs import RunHandle
    from vdi_cli.settings import get_settings, open_store
    from vdi_cli.store.db import close_db

    session = start(config.device)
    quiet = get_settings().quiet
    try:
        if session.is_main:
            db = db if db is not None else open_store()
        session.barrier()  # the store exists (and is migrated) before the others open it
        if not session.is_main:
            close_db(db) if db is not None else None
            db = open_store(readonly=True)
        if not session.is_main:
            run = RunHandle(db, session.broadcast(None))
            try:
                summary = run_training(config, db, run, resume=resume, quiet=True,
                                       show_progress=False)
            except BaseException as exc:
                session.report_failure(exc)
                raise _lost_contact(session, exc) from exc
        else:
            stored = {**config.model_dump(), **({"recipe": recipe} if recipe else {})}
            with run_context(db, "train", stored, sys.argv[1:],
                             backbone=config.backbone, head=config.head,
                             parser=config.parser) as run:
                session.broadcast(run.id)
                try:
                    summary = run_training(config, db, run, resume=resume, quiet=quiet,
                                           show_progress=show_progress)
                except BaseException as exc:
                    raise _peer_failed(session, exc, run.id) from exc
    finally:
        session.close()
    summary["run_id"] = run.id
    return summary


def _peer_failed(session: Any, exc: BaseException, run_id: int) -> BaseException:
    """On rank 0: a failed collective (or torchrun's SIGTERM) because another rank failed
    becomes an error naming that rank; anything else stays what it was."""
    from vdi_cli.errors import VdiError

    if not session.active or isinstance(exc, VdiError):
        return exc
    peer = _shielded(session.peer_failure)
    if peer is None:
        return exc
    return VdiError(f"training on {session.world} ranks stopped: {peer}",
                    hint=RESUME_HINT.format(run=run_id))


def _shielded(check: Any) -> Any:
    """Run `check` with SIGTERM ignored: torchrun stops every rank once one has failed, and
    rank 0 is then finding out which one (a second of reading the store) to say so."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return check()
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        return check()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _lost_contact(session: Any, exc: BaseException) -> BaseException:
    """On ranks > 0: losing the others (rank 0 failed or was killed) is said in one line."""
    from vdi_cli.errors import VdiError

    if isinstance(exc, (VdiError, KeyboardInterrupt)):
        return exc
    try:
        from torch.distributed import DistError
    except ImportError:  # pragma: no cover - torch without distributed
        DistError = RuntimeError  # noqa: N806
    peer = _shielded(session.peer_failure)
    if peer is None and not isinstance(exc, DistError):
        return exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return VdiError(f"rank {session.rank} of {session.world} lost the other ranks: "
                    f"{peer or first}", hint="rank 0's output above (or the system log, for a "
                    "killed process) says what failed")


def launch(nproc: int, argv: list[str], device: str = "cpu") -> int:
    """`vdi train --nproc N ...`: the same command line (without --nproc) under
    `torchrun --standalone --nproc-per-node N -m vdi_cli`, in this process's environment.
    Returns the exit code; a failed rank's own error is printed by that rank."""
    import torch
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from vdi_cli.errors import UsageError, VdiError

    if device.startswith("cuda") and nproc > torch.cuda.device_count():
        raise UsageError(f"--nproc {nproc} on cuda needs {nproc} GPUs; this machine has "
                         f"{torch.cuda.device_count()}",
                         hint="one rank per GPU: give at most that many (or --device cpu)")

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--module", "vdi_cli", *argv])
    try:
        run(args)
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        said = ", ".join(f"rank {r} {_ended(f.exitcode)}" for r, f in failures)
        raise VdiError(f"training on {nproc} processes failed ({said})",
                       hint="the failing rank's `Error:` above says why; `vdi runs list "
                       "--command train` shows the run row") from None
    return 0


def _ended(code: int) -> str:
    """'exited with 1', or 'killed by SIGKILL' for a negative (signal) exit code."""
    import signal

    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with {code}"


def without_nproc(argv: list[str]) -> list[str]:
    """The command line minus `--nproc N` / `--nproc=N`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
