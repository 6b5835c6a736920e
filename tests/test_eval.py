"""`vdi eval` standalone mode: reading predictions, matching them to annotations, the CLI."""

from __future__ import annotations

import json

import pytest

from vdi_cli.errors import VdiError
from vdi_cli.pipeline.evaluate import match_predictions, read_predictions
from vdi_cli.testing import invoke
from vdi_cli.types import Annotation

ANN = {
    "v1": {"duration": 20.0, "timestamps": [[2.0, 6.0], [10.0, 25.0]],
           "sentences": ["a person opens a door.", " a person sits down."]},
    "v2": {"duration": 10.0, "timestamps": [[0.0, 5.0], [5.0, 5.0]],
           "sentences": ["someone laughs", "dropped: start >= end"]},
}


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(ANN), encoding="utf-8")
    preds = _write(tmp_path, "preds.jsonl", [
        # v1:0 top-1 exact
        json.dumps({"qid": "v1:0", "pred_relevant_windows": [[2.0, 6.0, 0.9], [0, 1, 0.5]]}),
        "",
        # by (vid, query), spacing differs; GT [10, 25] is clipped to [10, 20]:
        # top-1 [0, 10] IoU 0, rank 2 [12, 20] IoU 0.8
        json.dumps({"vid": "v1", "query": "a person  sits down.",
                    "pred_relevant_windows": [[0.0, 10.0, 0.9], [12.0, 20.0, 0.8]]}),
        json.dumps({"qid": "nope", "pred_relevant_windows": []}),  # matches nothing
    ])  # v2:0 has no prediction: a miss
    return ann, preds


def test_cli_table_json_and_metrics_rows(files):
    ann, preds = files
    r = invoke(["eval", "--predictions", preds, "--annotations", ann, "--format", "mmn-json"])
    assert r.exit_code == 0, r.stderr
    header, rule, row = r.stdout.splitlines()
    assert header.split() == ["R@1,IoU=0.3", "R@1,IoU=0.5", "R@1,IoU=0.7", "R@5,IoU=0.3",
                              "R@5,IoU=0.5", "R@5,IoU=0.7", "mIoU"]
    # R@1: 1 of 3; R@5: 2 of 3; mIoU (1 + 0 + 0) / 3
    assert row.split() == ["33.33"] * 3 + ["66.67"] * 3 + ["33.33"]
    assert "1 annotated queries have no prediction and count as misses: v2:0" in r.stderr
    assert "1 prediction lines match no annotated query (ignored): line 4" in r.stderr
    j = invoke(["eval", "--predictions", preds, "--annotations", ann, "--format", "mmn-json",
                "--iou", "0.5,0.9", "--recall", "1", "--split", "val", "--json"])
    assert j.exit_code == 0, j.stderr
    out = j.json()
    assert out["metrics"] == {"R@1,IoU=0.5": 33.33, "R@1,IoU=0.9": 33.33, "mIoU": 33.33}
    assert (out["queries"], out["predictions"], out["missing"]) == (3, 3, 1)
    assert out["missing_examples"] == ["v2:0"] and out["unmatched_lines"] == [4]
    assert out["dataset"]["dropped"] == 1 and out["dataset"]["clipped"] == 1
    from vdi_cli.settings import open_store
    from vdi_cli.store import get_run

    run = get_run(open_store(), out["run_id"])
    assert run["status"] == "ok" and run["command"] == "eval"
    rows = {(m["split"], m["name"]): m["value"] for m in run["metrics"]}
    assert rows[("val", "R@1,IoU=0.5")] == pytest.approx(100 / 3)
    assert rows[("val", "mIoU")] == pytest.approx(100 / 3)
    assert len(rows) == 3


def test_charades_sta_and_qvhighlights_match_by_query_id(tmp_path):
    txt = _write(tmp_path, "charades_sta_test.txt", [
        "AAA 0.0 4.0##person opens the door.",
        "AAA 2.0 9.0##person opens the door.",  # same sentence, another moment
        "BBB 1.0 3.0##person sits.",
    ])
    _write(tmp_path, "Charades_v1_test.csv", ["id,length", "AAA,10.0", "BBB,8.0"])
    preds = _write(tmp_path, "p.jsonl", [
        json.dumps({"qid": 0, "pred_relevant_windows": [[0.0, 4.0, 1.0]]}),
        json.dumps({"qid": 1, "pred_relevant_windows": [[0.0, 4.0, 1.0]]}),  # IoU 2/9
        json.dumps({"qid": 2, "pred_relevant_windows": [[1.0, 2.0, 1.0]]}),  # IoU 1/2
    ])
    r = invoke(["eval", "--predictions", preds, "--annotations", txt, "--format",
                "charades-sta", "--iou", "0.5", "--recall", "1", "--json"])
    assert r.exit_code == 0, r.stderr
    assert r.json()["metrics"] == {"R@1,IoU=0.5": 66.67, "mIoU": round((1 + 2 / 9 + 0.5) / 3
                                                                        * 100, 2)}
    qvh = _write(tmp_path, "qvh.jsonl", [
        json.dumps({"qid": 7, "query": "q", "vid": "x", "duration": 30,
                    "relevant_windows": [[10, 20]]}),
    ])
    p2 = _write(tmp_path, "p2.jsonl", [json.dumps({"qid": 7, "pred_relevant_windows":
                                                   [[12, 20, 0.5]]})])
    r = invoke(["eval", "--predictions", p2, "--annotations", qvh, "--format", "qvhighlights",
                "--iou", "0.7,0.9", "--recall", "1", "--metrics", "recall", "--json"])
    assert r.json()["metrics"] == {"R@1,IoU=0.7": 100.0, "R@1,IoU=0.9": 0.0, "mIoU": 80.0}
    # the format's own default: QVHighlights' metrics (IoU 0.8 passes 7 of the 10 mAP
    # thresholds 0.5..0.95); the 10 s window is "short" (0, 10], so middle and long are not scored
    r = invoke(["eval", "--predictions", p2, "--annotations", qvh, "--format", "qvhighlights",
                "--json"])
    assert r.json()["metrics"] == {
        "MR-full-R1@0.5": 100.0, "MR-full-R1@0.7": 100.0, "MR-full-mAP@0.5": 100.0,
        "MR-full-mAP@0.75": 100.0, "MR-full-mAP": 70.0, "MR-short-R1@0.5": 100.0,
        "MR-short-R1@0.7": 100.0, "MR-short-mAP@0.5": 100.0, "MR-short-mAP@0.75": 100.0,
        "MR-short-mAP": 70.0}


def _ann(vid, query, qid):
    return Annotation(vid, 10.0, query, 0.0, 1.0, qid)


def test_text_matching_with_repeated_sentences(tmp_path):
    anns = [_ann("A", "opens the door", "0"), _ann("A", "opens the door", "1"),
            _ann("B", "sits", "2")]
    one = _write(tmp_path, "one.jsonl", [
        json.dumps({"vid": "A", "query": " opens  the door ", "pred_relevant_windows": [[0, 1]]}),
    ])
    windows, unmatched = match_predictions(anns, read_predictions(one))
    assert windows == [[(0.0, 1.0)], [(0.0, 1.0)], None] and unmatched == []  # serves both
    two = _write(tmp_path, "two.jsonl", [
        json.dumps({"vid": "A", "query": "opens the door", "pred_relevant_windows": [[0, 1]]}),
        json.dumps({"vid": "A", "query": "opens the door", "pred_relevant_windows": [[2, 3]]}),
        json.dumps({"vid": "A", "query": "opens the door", "pred_relevant_windows": [[4, 5]]}),
        json.dumps({"vid": "C", "query": "sits", "pred_relevant_windows": []}),
    ])
    windows, unmatched = match_predictions(anns, read_predictions(two))
    assert windows == [[(0.0, 1.0)], [(2.0, 3.0)], None]  # in file order
    assert unmatched == [3, 4]


def test_duplicate_qid_is_an_error(tmp_path):
    p = _write(tmp_path, "dup.jsonl", [json.dumps({"qid": 1, "pred_relevant_windows": []})] * 2)
    with pytest.raises(VdiError, match=r"qid 1 has two predictions \(lines 1 and 2\)"):
        match_predictions([_ann("A", "x", "1")], read_predictions(p))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: not a JSON object"),
        ('{"qid": 1}', 'line 2: no "pred_relevant_windows"'),
        ('{"qid": 1, "pred_relevant_windows": {"a": 1}}', "line 2: \"pred_relevant_windows\" is"),
        ('{"qid": 1, "pred_relevant_windows": [[1, "x", 0.5]]}', "line 2: window 0 is not"),
        ('{"qid": 1, "pred_relevant_windows": [[0, 1, 1], [1]]}', "line 2: window 1 is not"),
        ('{"qid": 1, "pred_relevant_windows": [[0, NaN, 1]]}', "line 2: window 0 is not"),
        ('{"qid": 1, "pred_relevant_windows": [[5, 1, 0.5]]}', "line 2: window 0 ends before"),
        ('{"vid": "v1", "pred_relevant_windows": []}', 'line 2: neither "qid" nor both'),
    ],
)
def test_malformed_prediction_lines(files, line, message):
    ann, _ = files
    bad = ann.parent / "bad.jsonl"
    bad.write_text(json.dumps({"qid": "v1:0", "pred_relevant_windows": []}) + "\n" + line + "\n")
    r = invoke(["eval", "--predictions", bad, "--annotations", ann, "--format", "mmn-json"])
    assert r.exit_code == 1
    assert message in r.stderr and "Hint:" in r.stderr and "Traceback" not in r.stderr


def test_cli_errors(files, tmp_path):
    ann, preds = files
    base = ["eval", "--predictions", preds, "--annotations", ann]
    r = invoke([*base, "--format", "mmn-jsn"])
    assert r.exit_code == 1 and "did you mean 'mmn-json'" in r.stderr
    r = invoke([*base, "--format", "mmn-json", "--iou", "0.5,high"])
    assert r.exit_code == 1 and "--iou '0.5,high' is not a comma-separated list" in r.stderr
    r = invoke([*base, "--format", "mmn-json", "--iou", "1.5"])
    assert r.exit_code == 1 and "must be in (0, 1]" in r.stderr
    r = invoke([*base, "--format", "mmn-json", "--recall", "0"])
    assert r.exit_code == 1 and "must be >= 1" in r.stderr
    r = invoke(["eval", "--predictions", tmp_path / "none.jsonl", "--annotations", ann,
                "--format", "mmn-json"])
    assert r.exit_code == 1 and "does not exist" in r.stderr
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    r = invoke(["eval", "--predictions", preds, "--annotations", empty, "--format", "mmn-json"])
    assert r.exit_code == 1 and "no annotated queries" in r.stderr
    r = invoke(["eval", "--annotations", ann, "--format", "mmn-json"])
    assert r.exit_code == 2  # usage error: nothing to evaluate
    assert "Error: nothing to evaluate" in r.stderr and "Hint:" in r.stderr
    from vdi_cli.settings import open_store
    from vdi_cli.store import list_runs

    failed = list_runs(open_store(), command="eval", status="error")
    assert any("no annotated queries" in (f["error"] or "") for f in failed)


def test_real_charades_sta_test_split(shared_data, tmp_path):
    """The 3720 test queries, a fixed 'middle half, first half, second half' ranking, against
    a plain-Python computation of the same metrics."""
    from vdi_cli.datasets import load_dataset

    txt = shared_data / "charades_sta" / "charades_sta_test.txt"
    anns = load_dataset("charades-sta", txt).annotations
    lines, hits, top1 = [], {(n, m): 0 for n in (1, 5) for m in (0.5, 0.7)}, 0.0
    for a in anns:
        d = a.duration
        ws = [[d / 4, 3 * d / 4], [0.0, d / 2], [d / 2, d]]
        lines.append(json.dumps({"qid": a.query_id, "pred_relevant_windows": ws}))
        s, e = max(a.start, 0.0), min(a.end, d)
        ious = [max(0.0, min(we, e) - max(ws_, s)) / (max(we, e) - min(ws_, s)) for ws_, we in ws]
        top1 += ious[0]
        for n, m in hits:
            hits[(n, m)] += any(i >= m for i in ious[:n])
    preds = _write(tmp_path, "p.jsonl", lines)
    r = invoke(["eval", "--predictions", preds, "--annotations", txt, "--format",
                "charades-sta", "--iou", "0.5,0.7", "--json"])
    assert r.exit_code == 0, r.stderr
    out = r.json()
    assert out["queries"] == 3720 and out["missing"] == 0 and out["dataset"]["clipped"] == 562
    for (n, m), h in hits.items():
        assert out["metrics"][f"R@{n},IoU={m:g}"] == pytest.approx(100 * h / 3720, abs=0.03)
    assert out["metrics"]["mIoU"] == pytest.approx(100 * top1 / 3720, abs=0.01)
