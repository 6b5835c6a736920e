"""Dataset formats: normalisation rules on hand-made files, and the real files' counts."""

from __future__ import annotations

import json

import pytest

from vdi_cli.datasets import load_dataset, normalise_moment
from vdi_cli.errors import UnknownComponentError, VdiError
from vdi_cli.testing import invoke


def test_normalise_moment_drops_then_clips():
    assert normalise_moment(1.0, 5.0, 10.0) == (1.0, 5.0, None)
    assert normalise_moment(5.0, 5.0, 10.0)[2] == "start >= end"
    assert normalise_moment(6.0, 2.0, 10.0)[2] == "start >= end"
    assert normalise_moment(-1.0, 12.0, 10.0) == (0.0, 10.0, "clipped")
    assert normalise_moment(11.0, 12.0, 10.0)[2] == "moment outside the video after clipping"


@pytest.fixture
def charades_files(tmp_path):
    (tmp_path / "sta.txt").write_text(
        "AAA 0.0 6.9##a person is putting a book on a shelf.\n"
        "AAA 3.0 3.0##zero length.\n"
        "BBB 20.8 40.0##person begins to play on a phone.\n"
        "\n"
        "ZZZ 1.0 2.0##unknown video.\n"
    )
    (tmp_path / "Charades_v1_test.csv").write_text(
        "id,subject,length\nAAA,x,10.5\nBBB,y,30.0\n"
    )
    return tmp_path / "sta.txt"


def test_charades_sta_reader(charades_files):
    report = load_dataset("charades-sta", charades_files)
    assert [(a.video_id, a.start, a.end, a.duration, a.query_id) for a in report.annotations] == [
        ("AAA", 0.0, 6.9, 10.5, "0"), ("BBB", 20.8, 30.0, 30.0, "2"),
    ]
    assert report.annotations[1].query == "person begins to play on a phone."
    assert report.dropped == 2 and report.clipped == 1
    assert report.videos == {"AAA": 10.5, "BBB": 30.0}
    assert "dropped 1 rows: start >= end" in report.messages
    assert "dropped 1 rows: video not in the Charades csv" in report.messages


def test_charades_sta_without_csv_is_a_clear_error(tmp_path):
    (tmp_path / "sta.txt").write_text("AAA 0 1##q\n")
    with pytest.raises(VdiError) as exc:
        load_dataset("charades-sta", tmp_path / "sta.txt")
    assert "--dataset-option durations=PATH" in exc.value.hint


def test_mmn_json_reader_keeps_extra_fields_and_strips(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({
        "v1": {"duration": 20.0, "timestamps": [[2, 25], [5, 5]],
               "sentences": ["  The coach helps.", "nothing"], "news": [{"NOUN": ["coach"]}, {}]},
    }))
    report = load_dataset("mmn-json", path)
    (a,) = report.annotations
    assert (a.query, a.start, a.end, a.query_id) == ("The coach helps.", 2.0, 20.0, "v1:0")
    assert a.extra == {"news": {"NOUN": ["coach"]}}
    assert (report.dropped, report.clipped) == (1, 1)


def test_qvhighlights_reader(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"qid": 7, "query": "a dog runs", "vid": "v", "duration": 150,
                    "relevant_windows": [[10, 20], [40, 60]]}) + "\n\n"
    )
    report = load_dataset("qvhighlights", path)
    (a,) = report.annotations
    assert (a.query_id, a.start, a.end, a.extra["windows"]) == ("7", 10.0, 20.0,
                                                                  [[10.0, 20.0], [40.0, 60.0]])
    assert "1 queries have several windows" in report.messages[0]


@pytest.mark.parametrize("fmt,content", [
    ("mmn-json", "{not json"), ("mmn-json", "[1, 2]"), ("mmn-json", '{"v": {"duration": 1}}'),
    ("qvhighlights", '{"qid": 1}'), ("charades-sta", "just words"),
])
def test_malformed_files_are_clear_errors(tmp_path, fmt, content):
    path = tmp_path / "bad"
    path.write_text(content)
    (tmp_path / "Charades_v1_x.csv").write_text("id,length\n")
    with pytest.raises(VdiError) as exc:
        load_dataset(fmt, path)
    assert f"is not a {fmt} annotation file" in exc.value.message


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(VdiError, match="does not exist"):
        load_dataset("mmn-json", tmp_path / "nope.json")
    with pytest.raises(UnknownComponentError, match="did you mean 'mmn-json'"):
        load_dataset("mmn-jsn", tmp_path / "nope.json")


def test_datasets_check_command(charades_files):
    result = invoke(["datasets", "check", "charades-sta", charades_files, "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.json()["queries"] == 2 and result.json()["dropped"] == 2
    text = invoke(["datasets", "check", "charades-sta", charades_files])
    assert "- clipped 1 moments to [0, duration]" in text.stdout


@pytest.mark.parametrize("fmt,rel,videos,queries,dropped,clipped", [
    ("charades-sta", "charades_sta/charades_sta_train.txt", 5336, 12404, 4, 1802),
    ("charades-sta", "charades_sta/charades_sta_test.txt", 1334, 3720, 0, 562),
    ("mmn-json", "charades_cg/novel_word.json", 580, 695, 0, 109),
    ("mmn-json", "charades_cg/train.json", 3555, 8281, 0, 1255),
    ("mmn-json", "activitynet/val.json", 4917, 17505, 0, 134),
])
def test_real_files_reproduce_the_documented_counts(shared_data, fmt, rel, videos, queries,
                                                     dropped, clipped):
    report = load_dataset(fmt, shared_data / rel)
    assert (len(report.videos), len(report.annotations), report.dropped, report.clipped) == (
        videos, queries, dropped, clipped)
    assert all(0 <= a.start < a.end <= a.duration for a in report.annotations)
