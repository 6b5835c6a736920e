"""Where a database's files live: `VDI_HOME/stores/<store id>/`, one folder per database.

The store id is a random id written into the database by a migration (`_vdi_store`), so the
folder follows the database whatever its path (a relative `--db`, a symlink, a moved file) and
two databases under one home never share a folder: each has its own `runs/run-<id>/epoch-<k>/`
checkpoints (before, both databases' run 1 wrote `VDI_HOME/runs/run-1` and the second training
overwrote the first's weights). `store.json` in the folder names the database file it belongs
to, so `vdi runs gc` can tell which databases share the home's feature cache.

Older layouts keep working: a checkpoint row holds the absolute path of its folder, so runs
written to `VDI_HOME/runs/run-<id>/` still load, prune and resume from there; loading checks the
weights against the sha256 the database recorded, so a file another database overwrote is
refused instead of silently loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STORES = "stores"
STORE_FILE = "store.json"


def store_id(db: Any) -> str:
    rows = list(db.query("select value from _vdi_store where key = 'id'"))
    return str(rows[0]["value"])


def db_file(db: Any) -> Path | None:
    """The database's file (None for an in-memory database)."""
    from vdi_cli.store.db import main_file

    path = main_file(db)
    return path.resolve() if path is not None else None


def artifact_dir(db: Any, create: bool = True) -> Path:
    """`VDI_HOME/stores/<store id>/`: this database's own artifact folder."""
    from vdi_cli.store.db import app_dir

    folder = app_dir() / STORES / store_id(db)
    if create and not (folder / STORE_FILE).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        path = db_file(db)
        (folder / STORE_FILE).write_text(json.dumps({"db": str(path) if path else None}))
    return folder


def legacy_run_dir(run_id: int) -> Path:
    """Where runs went before databases had their own folders: `VDI_HOME/runs/run-<id>`."""
    from vdi_cli.store.db import app_dir

    return app_dir() / "runs" / f"run-{run_id}"


def run_dir(db: Any, run_id: int) -> Path:
    """A training run's checkpoint folder: `<artifact dir>/runs/run-<id>`, or the legacy
    `VDI_HOME/runs/run-<id>` for a run whose checkpoints were written there."""
    legacy = legacy_run_dir(run_id)
    rows = db["checkpoints"].rows_where("run_id = ?", [run_id], select="path")
    if any(Path(r["path"]).parent == legacy for r in rows):
        return legacy
    return artifact_dir(db) / "runs" / f"run-{run_id}"


def recorded_sha256(db: Any, checkpoint: str | Path) -> str | None:
    """The weights hash this database recorded for a checkpoint folder (None: not its own)."""
    folder = Path(checkpoint)
    if folder.name.endswith(".safetensors"):
        folder = folder.parent
    candidates = {str(folder), str(folder.resolve())}
    for path in candidates:
        rows = list(db["checkpoints"].rows_where("path = ? and sha256 is not null", [path],
                                                 select="sha256", limit=1))
        if rows:
            return str(rows[0]["sha256"])
    return None
