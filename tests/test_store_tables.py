"""The store's table functions on a real database file: the rows each writes and reads back
(checkpoints, predictions and metrics, queries, videos and features, runs)."""

from __future__ import annotations

import pytest

from vdi_cli.errors import VdiError
from vdi_cli.store import checkpoints as ck
from vdi_cli.store import get_run, open_db, predictions, queries, runs, videos


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "vdi.db")


def _flags(db, run_id):
    return [(r["epoch"], r["best"]) for r in get_run(db, run_id)["checkpoints"]]


def test_runs_rows_record_what_they_are_given_and_nothing_of_plugins(db):
    run_id = runs.insert_run(db, "train", {"b": 1, "a": 2}, ["train", "-x"],
                             plugins={"vdi": "0.1"}, backbone="bb", other="ignored")
    row = get_run(db, run_id)
    assert (row["status"], row["argv"], row["config"], row["plugins"], row["backbone"]) == (
        "running", ["train", "-x"], {"a": 2, "b": 1}, {"vdi": "0.1"}, "bb")
    assert runs.live_run_ids(db) == {run_id} and runs.run_ids(db) == {run_id}
    runs.update_run(db, run_id, head="mmn")
    assert runs.close_run(db, run_id, "ok", summary={"n": 3}) == "train"
    row = get_run(db, run_id)
    assert (row["status"], row["head"], row["summary"]) == ("ok", "mmn", {"n": 3})
    assert runs.recorded_config(db, run_id) == {"a": 2, "b": 1}
    assert runs.live_run_ids(db) == set()
    with pytest.raises(ValueError):
        runs.close_run(db, run_id, "done")


def test_one_best_checkpoint_resolver_and_the_flag_moves_in_one_row(db):
    run_id = runs.insert_run(db, "train")
    with pytest.raises(VdiError, match=f"run {run_id} has no checkpoint"):
        ck.best_checkpoint(db, run_id)
    with pytest.raises(VdiError, match="no checkpoint to resume from"):
        ck.latest_checkpoint(db, run_id)
    assert ck.find_best_checkpoint(db, run_id) is None
    ck.record_checkpoint(db, run_id, 1, "/c/1", "s1", None, None, best=False)
    ck.record_checkpoint(db, run_id, 2, "/c/2", "s2", None, None, best=False)
    assert ck.best_checkpoint(db, run_id)["epoch"] == 2  # none flagged: the newest
    ck.record_checkpoint(db, run_id, 3, "/c/3", "s3", "R1@0.5", 40.0, best=True)
    ck.record_checkpoint(db, run_id, 4, "/c/4", "s4", "R1@0.5", 30.0, best=False)
    ck.record_checkpoint(db, run_id, 5, "/c/5", "s5", "R1@0.5", 50.0, best=True)
    assert _flags(db, run_id) == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1)]
    ck.record_checkpoint(db, run_id, 6, "/c/6", "s6", "R1@0.5", 45.0, best=False)
    assert ck.best_checkpoint(db, run_id)["epoch"] == 5
    assert ck.latest_checkpoint(db, run_id)["epoch"] == 6
    assert [r["epoch"] for r in ck.checkpoints_before(db, run_id, 3)] == [1, 2]
    removed = ck.delete_prunable(db, run_id, newest_epoch=6)
    assert sorted(r["epoch"] for r in removed) == [1, 2, 3, 4]
    assert _flags(db, run_id) == [(5, 1), (6, 0)]


def test_a_resume_copies_the_parents_best_and_newest(db):
    parent, child = runs.insert_run(db, "train"), runs.insert_run(db, "train")
    ck.record_checkpoint(db, parent, 1, "/p/1", "s1", "m", 10.0, best=True)
    ck.record_checkpoint(db, parent, 2, "/p/2", "s2", "m", 5.0, best=False)
    ck.record_checkpoint(db, child, 9, "/c/9", "s9", "m", 1.0, best=True)
    best, newest = ck.best_checkpoint(db, parent), ck.latest_checkpoint(db, parent)
    ck.copy_checkpoints(db, child, best, [newest])
    rows = get_run(db, child)["checkpoints"]
    assert [(r["epoch"], r["path"], r["sha256"], r["best"]) for r in rows] == [
        (9, "/c/9", "s9", 0), (1, "/p/1", "s1", 1), (2, "/p/2", "s2", 0)]
    assert rows[1]["created_at"] == best["created_at"]
    assert _flags(db, parent) == [(1, 1), (2, 0)]  # the parent's rows are untouched


def test_predictions_are_written_once_and_read_back_in_order(db):
    run_id = runs.insert_run(db, "eval")
    moments = [("v1", "a man sits", 1, 0.0, 2.5, 0.9), ("v1", "a man sits", 2, 3.0, 4.0, 0.4),
               ("v2", "a dog", 1, 1.0, 1.5, 0.7)]
    assert predictions.store_predictions(db, run_id, moments) == 3
    assert predictions.run_predictions(db, run_id) == moments
    assert predictions.store_predictions(db, run_id, []) == 0
    predictions.insert_metrics(db, run_id, "val", {"R1@0.5": 12.5, "mIoU": 30.0}, epoch=2)
    assert [(m["split"], m["name"], m["value"], m["epoch"]) for m in get_run(db, run_id)[
        "metrics"]] == [("val", "R1@0.5", 12.5, 2), ("val", "mIoU", 30.0, 2)]


def test_parses_are_kept_or_replaced_and_found_past_one_lookups_worth(db):
    def row(text, parsed):
        return {"text": text, "parser": "p", "parser_config": "{}", "static": "s",
                "dynamic": "d", "parsed": parsed}

    texts = [f"query {i}" for i in range(queries.SQL_VARS + 3)]  # two lookups
    assert queries.insert_parses(db, [row(t, '{"n": 1}') for t in texts]) == len(texts)
    assert queries.insert_parses(db, [row(texts[0], '{"n": 2}'), row("new", "{}")]) == 1
    found = dict(queries.stored_parses(db, [*texts, "never"], "p", "{}"))
    assert len(found) == len(texts) and found[texts[0]] == '{"n": 1}'  # kept
    assert queries.insert_parses(db, [row(texts[0], '{"n": 3}')], replace=True) == 1
    queries.update_parsed(db, "p", "{}", [(texts[1], '{"n": 4}')])
    found = dict(queries.stored_parses(db, texts[:2], "p", "{}"))
    assert found == {texts[0]: '{"n": 3}', texts[1]: '{"n": 4}'}
    assert dict(queries.stored_parses(db, texts[:2], "p", '{"x": 1}')) == {}  # another key


def test_features_of_a_video_replace_their_row_and_update_the_video(db):
    video = {"sha256": "ab" * 32, "path": "/v/a.mp4", "duration": 4.0, "fps": 25.0,
             "width": 64, "height": 48, "num_frames": 100, "size_bytes": 1000}
    feature = {"backbone": "bb", "weights": "w", "sampling": "fps=1", "path": "/f/1",
               "global_shape": "[4, 8]", "patch_shape": "[4, 4, 8]", "dtype": "float16",
               "run_id": None}
    first = videos.record_features(db, video, feature)
    other = videos.record_features(db, video, {**feature, "sampling": "fps=2", "path": "/f/2"})
    again = videos.record_features(db, {**video, "path": "/v/b.mp4"}, {**feature, "path": "/f/3"})
    assert len({first, other, again}) == 3
    assert sorted((r["id"], r["path"]) for r in videos.feature_rows(db)) == [
        (other, "/f/2"), (again, "/f/3")]
    row = videos.newest_feature(db, video["sha256"], "bb", "w", "fps=1")
    assert (row["id"], row["video_path"], row["duration"], row["video_fps"]) == (
        again, "/v/b.mp4", 4.0, 25.0)
    assert videos.newest_feature(db, video["sha256"], "bb")["id"] == again  # the newest
    assert videos.newest_feature(db, video["sha256"], "other") is None
    assert videos.video_sha_at(db, "/v/b.mp4") == video["sha256"]
    assert videos.video_sha_at(db, "/v/a.mp4") is None
    videos.move_video(db, video["sha256"], "/v/c.mp4")
    assert videos.known_video_paths(db) == {"/v/c.mp4"}
    assert videos.known_video_paths(db, ("c.mp4",)) == {"/v/c.mp4"}
    assert videos.known_video_paths(db, ("b.mp4",)) == set()
    assert videos.has_features(db, video["sha256"]) and not videos.has_features(db, "cd" * 32)
    videos.forget_features(db)
    assert videos.feature_rows(db) == [] and not videos.has_features(db, video["sha256"])
