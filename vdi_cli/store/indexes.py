"""The `indexes` and `index_videos` tables: which library indexes exist, the model each is bound
to, and which videos each holds (their slot in the vector ids and their proposal files).

The FAISS file and the per-video proposal vectors live in a folder beside the database
(`index_dir`); these rows say which of those files are current, so a file written by an add
that was killed before its rows were committed is never read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.store.runs import now


def database_file(db: Any) -> Path:
    """The file behind an open database."""
    from vdi_cli.store.db import main_file

    path = main_file(db)
    if path is not None:
        return path
    raise VdiError("the database has no file (an in-memory database cannot hold an index)",
                   hint="open a database file with --db PATH")


def index_dir(db: Any, name: str) -> Path:
    """`<db folder>/<db name>.indexes/<index name>`: an index belongs to its database."""
    path = database_file(db)
    return path.with_name(f"{path.stem}.indexes") / name


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["options"] = json.loads(row["options"] or "{}")
    out["model"] = json.loads(row["model"] or "{}")
    return out


def find_index(db: Any, name: str) -> dict[str, Any] | None:
    rows = list(db["indexes"].rows_where("name = ?", [name]))
    return _decode(rows[0]) if rows else None


def get_index(db: Any, name: str) -> dict[str, Any]:
    row = find_index(db, name)
    if row is None:
        names = [r["name"] for r in db["indexes"].rows]
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        mean = f" (did you mean '{close[0]}'?)" if close else ""
        raise VdiError(f"no index named '{name}'{mean}",
                       hint="`vdi index list` shows the indexes; `vdi index build NAME "
                       "SOURCES...` makes one")
    return row


def list_indexes(db: Any) -> list[dict[str, Any]]:
    return [_decode(r) for r in db["indexes"].rows_where(order_by="name")]


def create_index_row(db: Any, name: str, kind: str, options: dict[str, Any],
                     model: dict[str, Any], model_key: str, dim: int) -> dict[str, Any]:
    stamp = now()
    with db.conn:
        db["indexes"].insert({
            "name": name, "kind": kind, "options": json.dumps(options), "model": json.dumps(model),
            "model_key": model_key, "dim": dim, "path": None, "videos": 0, "proposals": 0,
            "next_slot": 0, "created_at": stamp, "updated_at": stamp})
    return get_index(db, name)


def delete_index_rows(db: Any, index_id: int) -> None:
    with db.conn:
        db.execute("delete from index_videos where index_id = ?", [index_id])
        db.execute("delete from indexes where id = ?", [index_id])


def index_videos(db: Any, index_id: int) -> list[dict[str, Any]]:
    rows = db["index_videos"].rows_where("index_id = ?", [index_id], order_by="slot")
    return [{**r, "windows": json.loads(r["windows"])} for r in rows]


def commit_changes(db: Any, index: dict[str, Any], *, added: list[dict[str, Any]],
                   removed: list[int], path: str, options: dict[str, Any]) -> dict[str, Any]:
    """One transaction: the new video rows, the removed slots, the current FAISS file and the
    counts. Until it commits, readers see the index as it was."""
    with db.conn:
        for row in added:
            db["index_videos"].insert({**row, "index_id": index["id"],
                                       "windows": json.dumps(row["windows"]), "added_at": now()})
        for slot in removed:
            db.execute("delete from index_videos where index_id = ? and slot = ?",
                       [index["id"], slot])
        counts = db.execute("select count(*), coalesce(sum(proposals), 0) from index_videos "
                            "where index_id = ?", [index["id"]]).fetchone()
        next_slot = max([index["next_slot"]] + [r["slot"] + 1 for r in added])
        db["indexes"].update(index["id"], {
            "path": path, "videos": counts[0], "proposals": counts[1], "next_slot": next_slot,
            "options": json.dumps(options), "updated_at": now()})
    return get_index(db, index["name"])
