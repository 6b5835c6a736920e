"""The `videos` and `features` tables: each video vdi extracted (by content hash, with its path,
duration, fps, size) and each cached feature file of it (one per backbone, weights and frame
sampling; the file itself lives in the feature cache, `vdi_cli.features`).

Samplings are given here as their canonical key (`Sampling.key()`), so the store needs nothing
of the video code.
"""

from __future__ import annotations

import os
from typing import Any

from vdi_cli.store.runs import now


def newest_feature(
    db: Any, video_sha: str, backbone: str, weights: str | None = None,
    sampling_key: str | None = None,
) -> dict[str, Any] | None:
    """The newest `features` row for a video (by content hash) and backbone, with the video's
    `video_sha256`, `video_path`, `duration` and `video_fps`; `weights` and `sampling_key`
    narrow it when given. None when nothing is cached."""
    where = ["v.sha256 = ?", "f.backbone = ?"]
    args: list[Any] = [video_sha, backbone]
    if weights is not None:
        where.append("f.weights = ?")
        args.append(weights)
    if sampling_key is not None:
        where.append("f.sampling = ?")
        args.append(sampling_key)
    sql = (
        "select f.*, v.sha256 as video_sha256, v.path as video_path, v.duration as duration, "
        "v.fps as video_fps from features f join videos v on v.id = f.video_id where "
        + " and ".join(where)
        + " order by f.id desc limit 1"
    )
    rows = list(db.query(sql, args))
    return rows[0] if rows else None


def has_features(db: Any, video_sha: str) -> bool:
    """Whether any feature file of the video (by content hash) was recorded."""
    return bool(list(db.query(
        "select 1 from features f join videos v on f.video_id = v.id where v.sha256 = ? "
        "limit 1", [video_sha])))


def video_sha_at(db: Any, path: str) -> str | None:
    """The content hash recorded for the newest video row at `path` (as recorded: resolved)."""
    rows = list(db.query("select sha256 from videos where path = ? order by id desc limit 1",
                         [path]))
    return rows[0]["sha256"] if rows else None


def move_video(db: Any, video_sha: str, path: str) -> None:
    """Record a new path for a video (the same content found elsewhere)."""
    with db.conn:
        db.execute("update videos set path = ? where sha256 = ?", [path, video_sha])


def record_features(db: Any, video: dict[str, Any], feature: dict[str, Any]) -> int:
    """Record a feature file and its video in one transaction; returns the feature row's id.

    `video`: the `videos` columns (sha256, path, duration, fps, width, height, num_frames,
    size_bytes), inserted or updated by sha256; `feature`: the `features` columns but video_id
    and created_at (backbone, weights, sampling key, path, shapes, dtype, run_id), replacing
    the row of the same video, backbone, weights and sampling. The write lock is taken before
    the video is looked up (`BEGIN IMMEDIATE`): another process extracting the same video may
    commit it between a plain lookup and the insert (UNIQUE videos.sha256)."""
    with db.conn:
        db.execute("BEGIN IMMEDIATE")
        existing = list(db.query("select id from videos where sha256 = ?", [video["sha256"]]))
        if existing:
            video_id = existing[0]["id"]
            db["videos"].update(video_id, video)
        else:
            video_id = db["videos"].insert({**video, "created_at": now()}).last_pk
        db.execute(
            "delete from features where video_id = ? and backbone = ? and weights = ? "
            "and sampling = ?",
            [video_id, feature["backbone"], feature["weights"], feature["sampling"]],
        )
        feature_id = db["features"].insert({
            "video_id": video_id, **feature, "created_at": now(),
        }).last_pk
    return int(feature_id)


def forget_features(db: Any) -> None:
    """Delete every `features` row (the files stay): the next extraction reads the videos
    again. For benchmarks that time an uncached run."""
    with db.conn:
        db.execute("delete from features")


def feature_rows(db: Any) -> list[dict[str, Any]]:
    """Every `features` row's id and path (`vdi runs gc` checks the files)."""
    return list(db["features"].rows_where(select="id, path"))


def known_video_paths(db: Any, names: tuple[str, ...] = ()) -> set[str]:
    """The stored paths (as recorded, unresolved) of the videos the store knows: the `videos`
    table (every extracted video) and `index_videos` (a library index's). With `names`, only
    those whose file name is one of them (a request checks a few rows, not all)."""
    tables = set(db.table_names())
    paths: set[str] = set()
    for table in ("videos", "index_videos"):
        if table not in tables:
            continue
        if not names:
            rows = db.execute(f"select path from {table} where path is not null")
        else:
            ends = " or ".join("substr(path, -?) = ?" for _ in names)
            args = [v for n in names for v in (len(n) + 1, os.sep + n)]
            rows = db.execute(f"select path from {table} where {ends}", args)
        paths |= {r[0] for r in rows}
    return paths
