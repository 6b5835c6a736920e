"""The `predictions` and `metrics` tables: the ranked moments a run predicted (`vdi eval`,
`vdi retrieve`, `vdi search`) and the figures it measured (evaluation metrics, training losses
per epoch, training diagnostics).

`store_predictions` is the one writer of predictions: each stage turns its own results into
`Moment` tuples (`vdi_cli.pipeline.retrieve.ranked_moments`,
`vdi_cli.pipeline.evaluate_model.evaluation_moments`) and hands them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Moment = tuple[str, str, int, float, float, float]
"""One predicted moment: (video, query, rank from 1, start s, end s, score)."""


def store_predictions(db: Any, run_id: int, moments: Iterable[Moment]) -> int:
    """One `predictions` row per moment, in order, in one transaction; returns the rows
    written."""
    rows = [{"run_id": run_id, "video": video, "query": query, "rank": rank, "start_s": start,
             "end_s": end, "score": score}
            for video, query, rank, start, end, score in moments]
    with db.conn:
        db["predictions"].insert_all(rows)
    return len(rows)


def run_predictions(db: Any, run_id: int) -> list[Moment]:
    """A run's predicted moments in the order they were written."""
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        "select video, query, rank, start_s, end_s, score from predictions "
        "where run_id = ? order by id", [run_id])]


def insert_metrics(db: Any, run_id: int, split: str, values: Mapping[str, float],
                   epoch: int | None = None) -> None:
    """One `metrics` row per (name, value) of `split` ("val", "test", "train", "diagnostics",
    ...), for one epoch or (None) the whole run; values stored as given."""
    db["metrics"].insert_all(
        {"run_id": run_id, "split": split, "name": name, "value": value, "epoch": epoch}
        for name, value in values.items())
