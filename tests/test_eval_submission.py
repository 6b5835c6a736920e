"""`vdi eval` on QVHighlights-shaped splits with a trained tiny model: the test split (no
answers) gets a submission file, the val split's written predictions score the same through
`--predictions` as in model mode, and `--by` / BOM handling in predictions mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vdi_cli.testing import invoke, register_tiny_open_clip, train_tiny_checkpoint

pytest.importorskip("torch")



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on a generated set, plus QVHighlights-shaped val / test files over
    the same videos (val with answers, several windows for some queries; test without)."""
    root = tmp_path_factory.mktemp("submission")
    run_id = train_tiny_checkpoint(root)["run"]
    train = json.loads((root / "data" / "train.json").read_text())
    val, test, qid = [], [], 100
    for vid, entry in train.items():
        for k, (stamp, sentence) in enumerate(zip(entry["timestamps"], entry["sentences"],
                                                   strict=True)):
            qid += 1
            windows = [stamp] + ([[0.0, 1.0]] if k % 2 else [])
            val.append({"qid": qid, "query": sentence, "vid": vid,
                        "duration": entry["duration"], "relevant_windows": windows})
            test.append({"qid": qid + 1000, "query": sentence, "vid": vid,
                         "duration": entry["duration"]})
    for name, rows in (("val.jsonl", val), ("test.jsonl", test)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"root": root, "run": str(run_id), "val": len(val), "test": len(test)}


@pytest.fixture
def store(trained, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(trained["root"] / "home"))
    monkeypatch.setenv("VDI_DB", str(trained["root"] / "vdi.db"))
    register_tiny_open_clip()
    return trained


def _model(store, split: str, *extra: str) -> list[str]:
    root = store["root"]
    return ["eval", "--run", store["run"], "--annotations", str(root / split), "--format",
            "qvhighlights", "--video-dir", str(root / "data" / "videos"), *extra]


def test_test_split_gets_a_submission_file(store) -> None:
    root = store["root"]
    out = root / "test_submission.jsonl"
    r = invoke(_model(store, "test.jsonl", "--save-predictions", str(out), "--json"))
    assert r.exit_code == 0, r.stderr
    assert r.json()["forms"] == {}  # nothing to score
    assert r.json()["predictions_file"] == {"path": str(out), "lines": store["test"],
                                            "form": "q"}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    rows = [json.loads(x) for x in (root / "test.jsonl").read_text().splitlines()]
    assert [(x["qid"], x["query"], x["vid"]) for x in lines] == \
        [(x["qid"], x["query"], x["vid"]) for x in rows]
    assert set(lines[0]) == {"qid", "query", "vid", "pred_relevant_windows"}
    for line, row in zip(lines, rows, strict=True):
        windows = line["pred_relevant_windows"]
        assert 1 <= len(windows) <= 10
        assert all(0 <= s < e <= row["duration"] + 1e-6 for s, e, _ in windows)
        scores = [w[2] for w in windows]
        assert scores == sorted(scores, reverse=True)
    assert not list(root.glob(".test_submission*"))  # no temporary file left
    # without --save-predictions there is nothing to do on a split without answers
    r = invoke(_model(store, "test.jsonl"))
    assert r.exit_code == 1 and "has no answers: its" in r.stderr and "Hint:" in r.stderr
    # scoring a predictions file on it is refused too
    r = invoke(["eval", "--predictions", str(out), "--annotations", str(root / "test.jsonl"),
                "--format", "qvhighlights"])
    assert r.exit_code == 1 and "has no answers" in r.stderr and "Traceback" not in r.stderr


def test_val_predictions_file_scores_as_model_mode(store) -> None:
    root = store["root"]
    out = root / "val_submission.jsonl"
    model = invoke(_model(store, "val.jsonl", "--save-predictions", str(out),
                          "--metrics", "recall,qvhighlights", "--json"))
    assert model.exit_code == 0, model.stderr
    assert "queries have several ground-truth windows" in model.stderr
    metrics = model.json()["forms"]["q"]["metrics"]
    assert "MR-full-mAP" in metrics and "R@1,IoU=0.5" in metrics
    again = invoke(["eval", "--predictions", str(out), "--annotations", str(root / "val.jsonl"),
                    "--format", "qvhighlights", "--metrics", "recall,qvhighlights", "--json"])
    assert again.exit_code == 0, again.stderr
    assert again.json()["metrics"] == pytest.approx(metrics, abs=0.01)
    # the format's own default is QVHighlights' metrics, printed by length range
    table = invoke(["eval", "--predictions", str(out), "--annotations",
                    str(root / "val.jsonl"), "--format", "qvhighlights"])
    assert table.stdout.splitlines()[0].split() == \
        ["range", "queries", "R1@0.5", "R1@0.7", "mAP@0.5", "mAP@0.75", "mAP"]
    assert "several ground-truth windows" not in table.stderr


def test_predictions_mode_by_dict_field_and_bom(tmp_path: Path) -> None:
    """--by in --predictions mode; Charades-CG's `news` groups by its UPOS keys; a BOM."""
    ann = tmp_path / "novel_word.json"
    ann.write_text(json.dumps({
        "v1": {"duration": 20, "timestamps": [[0, 10], [10, 20], [0, 5]],
               "sentences": ["a man opens the fridge", "he stirs quickly", "she sits"],
               "news": [{"NOUN": ["fridge"]}, {"VERB": ["stirs"], "ADV": ["quickly"]},
                        {"NOUN": ["she"], "VERB": ["sits"]}]}}), encoding="utf-8")
    preds = tmp_path / "p.jsonl"
    preds.write_text("\ufeff" + "\n".join(json.dumps(x) for x in [
        {"qid": "v1:0", "pred_relevant_windows": [[0, 10, 1.0]]},      # hit
        {"qid": "v1:1", "pred_relevant_windows": [[0, 5, 1.0]]},       # miss
        {"qid": "v1:2", "pred_relevant_windows": [[0, 5, 1.0]]},       # hit
    ]) + "\n", encoding="utf-8")
    r = invoke(["eval", "--predictions", str(preds), "--annotations", str(ann), "--format",
                "mmn-json", "--by", "news", "--json"])
    assert r.exit_code == 0, r.stderr
    groups = {g["group"]: (g["queries"], round(g["recall"], 2)) for g in r.json()["groups"]}
    assert groups == {"ADV": (1, 0.0), "NOUN": (2, 100.0), "VERB": (2, 50.0)}
    assert "per news:" in invoke(["eval", "--predictions", str(preds), "--annotations",
                                  str(ann), "--format", "mmn-json", "--by", "news"]).stdout
