"""Built-in annotation formats: `charades-sta`, `mmn-json` and `qvhighlights`.

- charades-sta: 2D-TAN's txt (`vid start end##sentence`), durations from the `length` column of the
  Charades csv (`Charades_v1_{train,test}.csv`, found beside the txt unless `durations` is given).
  query id = 0-based line index.
- mmn-json: `{vid: {duration, timestamps, sentences}}` (MMN, Charades-CG, ActivityNet Captions);
  per-sentence keys (Charades-CG's `news`, `novels`; synthetic-shapes' `actions`) are kept in
  `Annotation.extra`.
  query id = "vid:index". Sentences are stripped (ActivityNet's start with a space).
- qvhighlights: JSONL with `qid`, `query`, `vid`, `duration`, `relevant_windows`; the first window
  is (start, end), all of them are in `extra["windows"]`. query id = qid.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vdi_cli.datasets import DatasetReport, add_row, finish_report
from vdi_cli.errors import VdiError
from vdi_cli.hookspecs import hookimpl


def _bad_file(path: Path, what: str, fmt: str) -> VdiError:
    return VdiError(
        f"'{path}' is not a {fmt} annotation file: {what}",
        hint="check --format; `vdi datasets` lists the formats",
    )


class CharadesConfig(BaseModel):
    durations: str | None = Field(
        None, description="Charades csv with `id` and `length` columns (default: beside the txt)."
    )


class CharadesSTA:
    def __init__(self, config: CharadesConfig) -> None:
        self.config = config

    def _durations(self, path: Path) -> dict[str, float]:
        if self.config.durations:
            csvs = [Path(self.config.durations)]
        else:
            csvs = sorted(path.parent.glob("Charades_v1_*.csv"))
        if not csvs or not all(c.exists() for c in csvs):
            raise VdiError(
                f"no Charades csv with video lengths for '{path}'",
                hint="put Charades_v1_train.csv / Charades_v1_test.csv beside it, "
                "or pass -o durations=PATH",
            )
        out: dict[str, float] = {}
        for c in csvs:
            with c.open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if row.get("id") and row.get("length"):
                        out[row["id"]] = float(row["length"])
        return out

    def read(self, path: Path) -> DatasetReport:
        durations = self._durations(path)
        report = DatasetReport("charades-sta", str(path))
        drops: dict[str, int] = {}
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        for index, line in enumerate(lines):
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                raise _bad_file(path, f"line {index + 1} is not 'vid start end##sentence'",
                                "charades-sta")
            vid, start, end = parts[0], float(parts[1]), float(parts[2])
            if vid not in durations:
                report.dropped += 1
                drops["video not in the Charades csv"] = (
                    drops.get("video not in the Charades csv", 0) + 1
                )
                continue
            add_row(report, vid, durations[vid], sentence.strip(), start, end, str(index), drops)
        return finish_report(report, drops)


class MMNJsonConfig(BaseModel):
    pass


class MMNJson:
    def __init__(self, config: MMNJsonConfig | None = None) -> None:
        self.config = config

    def read(self, path: Path) -> DatasetReport:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise _bad_file(path, f"invalid JSON ({exc})", "mmn-json") from exc
        if not isinstance(data, dict):
            raise _bad_file(path, "the top level is not an object of videos", "mmn-json")
        report = DatasetReport("mmn-json", str(path))
        drops: dict[str, int] = {}
        per_sentence = ("news", "novels", "actions")
        for vid, entry in data.items():
            try:
                duration = float(entry["duration"])
                pairs = list(zip(entry["timestamps"], entry["sentences"], strict=True))
            except (KeyError, TypeError, ValueError) as exc:
                raise _bad_file(
                    path, f"video '{vid}' lacks duration/timestamps/sentences ({exc})", "mmn-json"
                ) from exc
            for i, ((start, end), sentence) in enumerate(pairs):
                extra = {k: entry[k][i] for k in per_sentence if k in entry}
                add_row(report, vid, duration, sentence.strip(), start, end, f"{vid}:{i}", drops,
                        **extra)
        return finish_report(report, drops)


class QVHConfig(BaseModel):
    pass


class QVHighlights:
    def __init__(self, config: QVHConfig | None = None) -> None:
        self.config = config

    def read(self, path: Path) -> DatasetReport:
        report = DatasetReport("qvhighlights", str(path))
        drops: dict[str, int] = {}
        several = 0
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                windows = [[float(s), float(e)] for s, e in row["relevant_windows"]]
                qid, query, vid, duration = row["qid"], row["query"], row["vid"], row["duration"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise _bad_file(path, f"line {n}: {exc}", "qvhighlights") from exc
            if not windows:
                report.dropped += 1
                drops["no relevant window"] = drops.get("no relevant window", 0) + 1
                continue
            several += len(windows) > 1
            add_row(report, str(vid), float(duration), str(query).strip(), windows[0][0],
                    windows[0][1], str(qid), drops, windows=windows)
        if several:
            report.messages.append(
                f"{several} queries have several windows: the first is (start, end), "
                "all are in extra['windows']"
            )
        return finish_report(report, drops)


@hookimpl
def register_datasets(register: Any) -> None:
    register("charades-sta", CharadesSTA, config=CharadesConfig,
             description="2D-TAN Charades-STA txt + Charades csv durations.")
    register("mmn-json", MMNJson, config=MMNJsonConfig,
             description="MMN JSON {vid: {duration, timestamps, sentences}}: Charades-STA, "
             "Charades-CG, ActivityNet Captions.")
    register("qvhighlights", QVHighlights, config=QVHConfig,
             description="QVHighlights / Moment-DETR JSONL (qid, query, vid, duration, "
             "relevant_windows).")
