"""`vdi train --resume ID`: what a resumed run inherits from the run it continues.

A resumed run is a new run row (its own id, its own checkpoint folder). It continues the stored
trajectory, so it also inherits the parent's best checkpoint: a `checkpoints` row that points at
the parent's file (same epoch, path, sha256 and value). Until a resumed epoch beats it, that row
is the new run's best, so `--run NEW` loads the weights its "best epoch" names, and the flag moves
to a newer row the moment one does better.
"""

from __future__ import annotations

from typing import Any


def inherit_best(db: Any, parent: int, run_id: int) -> dict[str, Any] | None:
    """Copy the parent's best checkpoint row (the newest if none is flagged) into `run_id`, flagged
    best; returns the copied row, or None when the parent has none."""
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.train_run import best_checkpoint
    from vdi_cli.store.runs import now

    try:
        row = best_checkpoint(db, parent)
    except VdiError:  # a parent without checkpoints is refused before this is called
        return None
    copied = {k: row.get(k) for k in ("epoch", "path", "sha256", "metric", "value")}
    copied.update(run_id=run_id, best=1, created_at=now())
    with db.conn:
        db.execute("update checkpoints set best = 0 where run_id = ?", [run_id])
        db["checkpoints"].insert(copied)
    return copied
