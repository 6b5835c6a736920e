"""Two processes extracting the same video: the second one's commit must not fail on the first
one's row (UNIQUE videos.sha256). The catalogue's concurrency row runs real parallel extracts;
this test makes the race deterministic: another process holds the write lock with the video's
row inserted but not yet committed while this one commits its features."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from vdi_cli.backbones import file_sha256  # noqa: E402
from vdi_cli.pipeline.extract import extract_features  # noqa: E402
from vdi_cli.store import open_db  # noqa: E402
from vdi_cli.testing import make_video, register_tiny_open_clip  # noqa: E402

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("begin immediate")
conn.execute("insert into videos (sha256, path, duration, fps, created_at) "
             "values (?, ?, 2.0, 10.0, 'x')", [sys.argv[2], sys.argv[3]])
print("holding", flush=True)
time.sleep(float(sys.argv[4]))
conn.execute("commit")
"""


def test_a_video_committed_by_another_process_meanwhile_is_updated_not_inserted(tmp_path):
    register_tiny_open_clip()
    video = make_video(tmp_path / "clip.mp4", seconds=2)
    db_path = tmp_path / "vdi.db"
    db = open_db(db_path)
    sha = file_sha256(video)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path), sha, str(video), "3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        report = extract_features(db, [video], backbone="open_clip:vdi-tiny", show_progress=False)
    finally:
        holder.wait(timeout=30)
    assert [v.status for v in report.videos] == ["extracted"], report.videos
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("select count(*) from videos where sha256 = ?", [sha]).fetchone()
        assert rows == (1,)
        assert conn.execute("select count(*) from features").fetchone() == (1,)
        assert conn.execute("select v.num_frames from videos v").fetchone()[0] > 0  # updated
    finally:
        conn.close()
