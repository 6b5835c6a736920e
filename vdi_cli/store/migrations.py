"""Append-only schema migrations. Never edit or reorder a migration that has shipped: add one.

Each migration runs once, in order; the pending ones run in one transaction that holds the
write lock (see `migrate`); `_vdi_migrations` records which ran.
Later issues add their tables or columns by appending a function to MIGRATIONS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MIGRATIONS_TABLE = "_vdi_migrations"


def m001_core_tables(db: Any) -> None:
    """runs plus the tables the pipeline stages fill."""
    db["runs"].create(
        {
            "id": int,
            "command": str,
            "status": str,  # running | ok | error | interrupted
            "started_at": str,
            "finished_at": str,
            "argv": str,  # JSON list
            "config": str,  # JSON: the fully resolved configuration
            "backbone": str,
            "head": str,
            "parser": str,
            "plugins": str,  # JSON: {distribution: version}
            "vdi_version": str,
            "error": str,
            "summary": str,  # JSON: what the command reports at the end
        },
        pk="id",
        not_null={"command", "status", "started_at"},
    )
    db["videos"].create(
        {
            "id": int,
            "sha256": str,
            "path": str,
            "duration": float,
            "fps": float,
            "width": int,
            "height": int,
            "num_frames": int,
            "size_bytes": int,
            "created_at": str,
        },
        pk="id",
    )
    db["videos"].create_index(["sha256"], unique=True)
    db["features"].create(
        {
            "id": int,
            "video_id": int,
            "backbone": str,
            "weights": str,
            "sampling": str,  # JSON
            "path": str,
            "global_shape": str,
            "patch_shape": str,
            "dtype": str,
            "run_id": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("video_id", "videos", "id")],
    )
    db["features"].create_index(["video_id", "backbone", "weights", "sampling"], unique=True)
    db["queries"].create(
        {
            "id": int,
            "text": str,
            "parser": str,
            "parser_config": str,  # JSON, canonical (sorted keys)
            "static": str,
            "dynamic": str,
            "parsed": str,  # JSON of ParsedQuery
            "created_at": str,
        },
        pk="id",
    )
    db["queries"].create_index(["text", "parser", "parser_config"], unique=True)
    db["predictions"].create(
        {
            "id": int,
            "run_id": int,
            "video": str,
            "query": str,
            "rank": int,
            "start_s": float,
            "end_s": float,
            "score": float,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["predictions"].create_index(["run_id"])
    db["metrics"].create(
        {"id": int, "run_id": int, "split": str, "name": str, "value": float, "epoch": int},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metrics"].create_index(["run_id"])
    db["checkpoints"].create(
        {
            "id": int,
            "run_id": int,
            "epoch": int,
            "path": str,
            "sha256": str,
            "metric": str,
            "value": float,
            "best": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )


def m002_run_process(db: Any) -> None:
    """runs.pid and runs.host: which process a `running` row belongs to, so a run whose process
    was killed (SIGKILL, the OOM killer, a power cut) can be told from one still going."""
    db["runs"].add_column("pid", int)
    db["runs"].add_column("host", str)


def m003_library_indexes(db: Any) -> None:
    """`vdi index`: one row per library index (its kind, the model it is bound to, the FAISS
    file beside the database) and one per video in it (its slot in the vector ids, windows,
    proposal count and the file of its exact proposal vectors)."""
    db["indexes"].create(
        {"id": int, "name": str, "kind": str, "options": str, "model": str, "model_key": str,
         "dim": int, "path": str, "videos": int, "proposals": int, "next_slot": int,
         "created_at": str, "updated_at": str},
        pk="id", not_null={"name", "kind", "model_key"},
    )
    db["indexes"].create_index(["name"], unique=True)
    db["index_videos"].create(
        {"id": int, "index_id": int, "slot": int, "sha256": str, "vid": str, "path": str,
         "duration": float, "num_clips": int, "windows": str, "proposals": int,
         "vectors_path": str, "added_at": str},
        pk="id", foreign_keys=[("index_id", "indexes", "id")],
    )
    db["index_videos"].create_index(["index_id", "sha256"], unique=True)
    db["index_videos"].create_index(["index_id", "slot"], unique=True)


def m004_file_hashes(db: Any) -> None:
    """The content hash of a file keyed by (device, inode, size, mtime_ns), as git's index
    does: an unchanged file is never read again to find its features."""
    db["file_hashes"].create(
        {"device": int, "inode": int, "size": int, "mtime_ns": int, "sha256": str,
         "path": str, "checked_at": str},
        pk=("device", "inode"),
    )


def m005_store_identity(db: Any) -> None:
    """`_vdi_store`: a random id that names this database's artifact folder
    (VDI_HOME/stores/<id>/), so two databases under one home never share run folders."""
    import uuid

    db["_vdi_store"].create({"key": str, "value": str}, pk="key")
    db["_vdi_store"].insert_all([{"key": "id", "value": uuid.uuid4().hex},
                                 {"key": "created_at", "value": datetime.now(UTC).isoformat()}])


MIGRATIONS: list[Callable[[Any], None]] = [
    m001_core_tables, m002_run_process, m003_library_indexes, m004_file_hashes,
    m005_store_identity,
]


def applied(db: Any) -> list[str]:
    if MIGRATIONS_TABLE not in db.table_names():
        return []
    return [r["name"] for r in db[MIGRATIONS_TABLE].rows_where(order_by="id")]


def migrate(db: Any) -> list[str]:
    """Apply the pending migrations; returns the names applied now.

    All pending migrations run in one `BEGIN IMMEDIATE` transaction: a second process opening
    the same new database waits for it (the connection's busy timeout), then finds them applied.
    (Per-migration deferred transactions let two first opens race: "database is locked" or
    "table runs already exists".) Nothing is locked when nothing is pending."""
    names = [fn.__name__ for fn in MIGRATIONS]
    if set(names) <= set(applied(db)):
        return []
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        if MIGRATIONS_TABLE not in db.table_names():
            db[MIGRATIONS_TABLE].create({"id": int, "name": str, "applied_at": str}, pk="id")
        done = set(applied(db))  # again, under the lock: another process may have migrated
        ran = []
        for fn in MIGRATIONS:
            if fn.__name__ in done:
                continue
            fn(db)
            db[MIGRATIONS_TABLE].insert(
                {"name": fn.__name__, "applied_at": datetime.now(UTC).isoformat()}
            )
            ran.append(fn.__name__)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return ran
