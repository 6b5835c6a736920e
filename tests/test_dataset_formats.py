"""TACoS and Charades-CD / ActivityNet-CD shapes, splits without answers, and what
`datasets check` reports (duplicates, non-ASCII queries, videos losing every row)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vdi_cli.datasets import load_dataset
from vdi_cli.errors import VdiError
from vdi_cli.testing import invoke

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# TACoS as 2D-TAN / MMN ship it: durations as num_frames / fps, timestamps in FRAMES
TACOS = {
    "s13-d21.avi": {"num_frames": 6000, "fps": 30.0,
                    "timestamps": [[300, 900], [900, 900], [5700, 6300]],
                    "sentences": ["The person takes out a cutting board.", "dropped",
                                  "She washes the knife."]},
    "s27-d50.avi": {"num_frames": 2940, "fps": 29.4, "timestamps": [[0, 294]],
                    "sentences": ["He gets a plate."]},
}
# Charades-CD / ActivityNet-CD (grounding_changing_distribution): video_duration, seconds
CD = {
    "AO8RW": {"video_duration": 33.67, "timestamps": [[0.0, 6.9], [30.0, 40.0]],
              "framestamps": [[0, 166], [720, 960]], "decode_fps": 24, "video_fps": 30,
              "sentences": ["a person is putting a book on a shelf.", "person closes it."]},
    "Y6R7T": {"video_duration": 20.0, "timestamps": [[2.0, 5.0]], "framestamps": [[48, 120]],
              "decode_fps": 24, "video_fps": 24, "sentences": ["the person opens a door."]},
}


def _json(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_tacos_frames_become_seconds_named_and_detected(tmp_path: Path) -> None:
    path = _json(tmp_path, "test.json", TACOS)
    report = load_dataset("tacos", path)
    assert (len(report.videos), len(report.annotations), report.dropped, report.clipped) == \
        (2, 3, 1, 1)
    first = report.annotations[0]
    assert (first.duration, first.start, first.end) == (200.0, 10.0, 30.0)
    assert (report.annotations[1].start, report.annotations[1].end) == (190.0, 200.0)  # clipped
    assert report.annotations[2].duration == pytest.approx(100.0)
    assert report.annotations[2].end == pytest.approx(10.0)
    # mmn-json used to stop at "lacks duration": it detects the shape and says so
    auto = load_dataset("mmn-json", path)
    assert [(a.start, a.end) for a in auto.annotations] == \
        [(a.start, a.end) for a in report.annotations]
    assert any("TACoS" in m for m in auto.messages)
    r = invoke(["datasets", "check", "tacos", path, "--json"])
    assert r.exit_code == 0, r.stderr
    assert (r.json()["videos"], r.json()["queries"], r.json()["dropped"]) == (2, 3, 1)


def test_charades_cd_and_activitynet_cd(tmp_path: Path) -> None:
    path = _json(tmp_path, "charades_test_ood.json", CD)
    for fmt in ("charades-cd", "activitynet-cd", "mmn-json"):
        report = load_dataset(fmt, path)
        assert (len(report.videos), len(report.annotations), report.clipped) == (2, 3, 1), fmt
        assert report.annotations[1].end == pytest.approx(33.67)
        assert report.annotations[0].extra["framestamps"] == [0, 166]
    with pytest.raises(VdiError, match="lacks num_frames/fps"):
        load_dataset("tacos", path)
    listing = invoke(["datasets"])
    for fmt in ("tacos", "charades-cd", "activitynet-cd", "qvhighlights", "mmn-json"):
        assert fmt in listing.stdout
    assert "num_frames" in listing.stdout and "video_duration" in listing.stdout


def test_qvhighlights_split_without_answers(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"qid": 3158, "query": "A video covering hill and water", "duration": 150, "vid": "a"},
        {"qid": 7920, "query": "Woman talks to the camera.", "duration": 150, "vid": "b"},
    ]) + "\n", encoding="utf-8")
    report = load_dataset("qvhighlights", path, need_answers=False)
    assert (len(report.annotations), len(report.unannotated), len(report.videos)) == (0, 2, 2)
    assert report.unannotated[0].extra["qid"] == 3158
    with pytest.raises(VdiError, match=r"has no answers: its 2 queries have no moment"):
        load_dataset("qvhighlights", path)
    r = invoke(["datasets", "check", "qvhighlights", path, "--json"])
    assert r.exit_code == 0, r.stderr
    assert (r.json()["queries"], r.json()["unannotated"]) == (0, 2)


@pytest.mark.skipif(not (DATA / "qvhighlights").exists(), reason="../shared/data is absent")
def test_real_qvhighlights_test_file_is_read() -> None:
    r = invoke(["datasets", "check", "qvhighlights",
                DATA / "qvhighlights" / "highlight_test_release.jsonl", "--json"])
    assert r.exit_code == 0, r.stderr
    out = r.json()
    assert (out["queries"], out["unannotated"], out["dropped"]) == (0, 1542, 0)
    lines = (DATA / "qvhighlights" / "highlight_test_release.jsonl").read_text().splitlines()
    assert out["videos"] == len({json.loads(x)["vid"] for x in lines if x.strip()})


def test_check_reports_duplicates_non_ascii_and_lost_videos(tmp_path: Path) -> None:
    path = _json(tmp_path, "a.json", {
        "v1": {"duration": 20, "timestamps": [[0, 5], [2, 9], [1, 3], [1, 3]],
               "sentences": ["person opens the door.", "Person opens  the door.",
                             "a man sits.", "a man sits."]},
        "v2": {"duration": 10, "timestamps": [[5, 5], [12, 14]],
               "sentences": ["lost one", "lost two"]},
        "v3": {"duration": 10, "timestamps": [[1, 2]], "sentences": ["la personne entre café"]},
    })
    r = invoke(["datasets", "check", "mmn-json", path, "--json"])
    assert r.exit_code == 0, r.stderr
    out = r.json()
    assert out["duplicates"]["pairs"] == 2 and out["duplicates"]["rows"] == 4
    assert out["duplicates"]["moments_differ"] == 1
    assert out["duplicates"]["examples"][0].startswith("v1 | person opens the door.")
    assert out["non_ascii"] == {"queries": 1, "examples": ["la personne entre café"]}
    assert out["videos_without_rows"] == {"videos": 1, "examples": ["v2"]}
    text = invoke(["datasets", "check", "mmn-json", path]).stdout
    assert "2 (video, query) pairs occur more than once (4 rows); 1 of them with different" \
        in text
    assert "1 videos lose every row (nothing of them is kept): v2" in text


def test_check_exits_non_zero_when_every_row_is_dropped(tmp_path: Path) -> None:
    path = _json(tmp_path, "a.json", {"v1": {"duration": 20, "timestamps": [[5, 5], [9, 2]],
                                             "sentences": ["a", "b"]}})
    r = invoke(["datasets", "check", "mmn-json", path])
    assert r.exit_code == 1
    assert "Error: every row of" in r.stderr and "2 start >= end" in r.stderr
    assert "Hint: " in r.stderr and "Traceback" not in r.stderr
    assert "dropped 2 rows: start >= end" in r.stdout  # the counts are still printed
