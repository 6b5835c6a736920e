"""The `checkpoints` table: each epoch checkpoint a training run saved (its folder, the sha256
of its weights, the selection metric and value), with at most one flagged best per run.

The folders themselves are written and read by `vdi_cli.checkpoints`; where they live is
`vdi_cli.store.artifacts`. `best_checkpoint` is the one answer to "which checkpoint of run N
is its model" (evaluation, retrieval, a resume's inheritance and the training summary use it).
"""

from __future__ import annotations

from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.store.runs import now


def newest_checkpoint(db: Any, run_id: int, best_only: bool = False) -> dict[str, Any] | None:
    """The row of the run's newest epoch (of the flagged best ones with `best_only`)."""
    where = "run_id = ? and best = 1" if best_only else "run_id = ?"
    rows = list(db["checkpoints"].rows_where(where, [run_id], order_by="epoch desc", limit=1))
    return rows[0] if rows else None


def find_best_checkpoint(db: Any, run_id: int) -> dict[str, Any] | None:
    """The flagged best checkpoint of a run (the newest one if none is flagged); None when the
    run has no checkpoint."""
    return newest_checkpoint(db, run_id, best_only=True) or newest_checkpoint(db, run_id)


def _found(row: dict[str, Any] | None, message: str, hint: str) -> dict[str, Any]:
    if row is None:
        raise VdiError(message, hint=hint)
    return row


def best_checkpoint(db: Any, run_id: int) -> dict[str, Any]:
    """`find_best_checkpoint`, a VdiError when the run has no checkpoint."""
    return _found(find_best_checkpoint(db, run_id), f"run {run_id} has no checkpoint",
                  "`vdi runs list --command train --status ok` shows finished runs")


def latest_checkpoint(db: Any, run_id: int) -> dict[str, Any]:
    """The run's newest checkpoint (what a resume starts from); a VdiError when it has none."""
    return _found(newest_checkpoint(db, run_id), f"run {run_id} has no checkpoint to resume from",
                  "`vdi runs list --command train` shows the training runs")


def record_checkpoint(db: Any, run_id: int, epoch: int, path: str, sha256: str,
                      metric: str | None, value: float | None, best: bool) -> None:
    """Add an epoch's row; a `best` one takes the flag from the run's others, in the same
    transaction."""
    with db.conn:
        if best:
            db.execute("update checkpoints set best = 0 where run_id = ?", [run_id])
        db["checkpoints"].insert({
            "run_id": run_id, "epoch": epoch, "path": path, "sha256": sha256,
            "metric": metric, "value": value, "best": int(best), "created_at": now()})


def copy_checkpoints(db: Any, run_id: int, best: dict[str, Any],
                     others: list[dict[str, Any]]) -> None:
    """Copy checkpoint rows of another run into `run_id` (a resume inherits its parent's): `best`
    flagged best, `others` not, the run's own flags cleared first; one transaction. The
    folders are shared, not copied; a row without a creation time gets now."""
    with db.conn:
        db.execute("update checkpoints set best = 0 where run_id = ?", [run_id])
        for row in [best, *others]:
            copied = {k: row.get(k) for k in ("epoch", "path", "sha256", "metric", "value")}
            copied.update(run_id=run_id, best=int(row is best),
                          created_at=row.get("created_at") or now())
            db["checkpoints"].insert(copied)


def delete_prunable(db: Any, run_id: int, newest_epoch: int) -> list[dict[str, Any]]:
    """Delete the run's rows that are neither flagged best nor of `newest_epoch`; returns them
    (their folders are the caller's to remove)."""
    where, params = "run_id = ? and best = 0 and epoch != ?", [run_id, newest_epoch]
    rows = list(db["checkpoints"].rows_where(where, params))
    with db.conn:
        db.execute(f"delete from checkpoints where {where}", params)
    return rows


def checkpoints_before(db: Any, run_id: int, epoch: int) -> list[dict[str, Any]]:
    """The run's rows of epochs before `epoch`."""
    return list(db["checkpoints"].rows_where("run_id = ? and epoch < ?", [run_id, epoch]))
