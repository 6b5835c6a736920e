"""`vdi runs gc`: what killed or interrupted commands leave behind, and what points at nothing.

Removes, only inside this database's own artifact folder (`VDI_HOME/stores/<store id>/`, see
`vdi_cli.store.artifacts`) and its own rows:

- unfinished checkpoint folders (`runs/run-<id>/epoch-NNN.tmp/`) of runs not still running;
- checkpoint folders no `checkpoints` row points at (and run folders of runs with no row);
- `checkpoints` and `features` rows whose files are gone.

The feature cache `VDI_HOME/features/` is shared by every database under the home (a file is
the same whichever database asks for it), so there only staging files are removed (the
`.<name>.*.tmp` files a killed extraction leaves, once an hour old: no live writer keeps one
that long); cached feature files that no row of this database references are counted and kept,
since another database may use them. Runs of a live process are never touched.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

STAGING_AGE_S = 3600


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _run_id(folder: Path) -> int | None:
    name = folder.name
    return int(name[4:]) if name.startswith("run-") and name[4:].isdigit() else None


def collect(db: Any) -> dict[str, Any]:
    """What `gc` would remove (nothing is touched)."""
    from vdi_cli.checkpoints import WEIGHTS, stale_temporaries
    from vdi_cli.features import features_dir
    from vdi_cli.store.artifacts import artifact_dir
    from vdi_cli.store.runs import live_run_ids, run_ids
    from vdi_cli.store.videos import feature_rows

    live = live_run_ids(db)
    runs = run_ids(db)
    rows = list(db["checkpoints"].rows_where(select="id, run_id, epoch, path"))
    referenced = {Path(r["path"]).resolve() for r in rows}
    temporaries: list[Path] = []
    folders: list[Path] = []
    runs_root = artifact_dir(db) / "runs"
    for run_folder in sorted(runs_root.glob("run-*")) if runs_root.is_dir() else []:
        run_id = _run_id(run_folder)
        if run_id is None or run_id in live or not run_folder.is_dir():
            continue
        if run_id not in runs:
            folders.append(run_folder)
            continue
        temporaries += stale_temporaries(run_folder)
        folders += [p for p in sorted(run_folder.glob("epoch-*"))
                    if p.is_dir() and not p.name.endswith(".tmp")
                    and p.resolve() not in referenced]
    gone_ckpt = [r for r in rows if r["run_id"] not in live
                 and not (Path(r["path"]) / WEIGHTS).is_file()]
    features = feature_rows(db)
    gone_features = [r for r in features if not Path(r["path"]).is_file()]
    cache = features_dir()
    staging: list[Path] = []
    unreferenced = [0, 0]
    if cache.is_dir():
        known = {Path(r["path"]).resolve() for r in features}
        cutoff = time.time() - STAGING_AGE_S
        for path in cache.rglob("*"):
            if not path.is_file():
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                if path.stat().st_mtime < cutoff:
                    staging.append(path)
            elif path.suffix == ".safetensors" and path.resolve() not in known:
                unreferenced[0] += 1
                unreferenced[1] += path.stat().st_size
    return {"temporaries": temporaries, "checkpoint_folders": folders,
            "checkpoint_rows": gone_ckpt, "feature_rows": gone_features,
            "feature_staging": sorted(staging),
            "unreferenced_features_kept": {"files": unreferenced[0], "bytes": unreferenced[1]}}


def collect_garbage(db: Any, dry_run: bool = False) -> dict[str, Any]:
    """Remove what `collect` finds (unless `dry_run`); returns what was (or would be) removed,
    with paths as strings and the bytes freed."""
    found = collect(db)
    paths = found["temporaries"] + found["checkpoint_folders"] + found["feature_staging"]
    freed = sum(_size(p) for p in paths)
    if not dry_run:
        for path in paths:
            _remove(path)
        with db.conn:
            for table, key in (("checkpoints", "checkpoint_rows"), ("features", "feature_rows")):
                ids = [r["id"] for r in found[key]]
                if ids:
                    marks = ", ".join("?" * len(ids))
                    db.execute(f"delete from {table} where id in ({marks})", ids)
    return {
        "dry_run": dry_run,
        "temporaries": [str(p) for p in found["temporaries"]],
        "checkpoint_folders": [str(p) for p in found["checkpoint_folders"]],
        "checkpoint_rows": [{"run_id": r["run_id"], "epoch": r["epoch"], "path": r["path"]}
                            for r in found["checkpoint_rows"]],
        "feature_rows": [{"id": r["id"], "path": r["path"]} for r in found["feature_rows"]],
        "feature_staging": [str(p) for p in found["feature_staging"]],
        "unreferenced_features_kept": found["unreferenced_features_kept"],
        "freed_bytes": freed,
    }
