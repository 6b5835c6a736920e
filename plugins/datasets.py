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
            out.update(_read_lengths(c))
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
            vid = parts[0]
            try:
                start, end = float(parts[1]), float(parts[2])
            except ValueError:
                raise _bad_file(path, f"line {index + 1}: start and end must be numbers of "
                                f"seconds, got '{parts[1]}' and '{parts[2]}'",
                                "charades-sta") from None
            if vid not in durations:
                report.dropped += 1
                drops["video not in the Charades csv"] = (
                    drops.get("video not in the Charades csv", 0) + 1
                )
                continue
            add_row(report, vid, durations[vid], sentence.strip(), start, end, str(index), drops)
        return finish_report(report, drops)


def _csv_error(path: Path, what: str) -> VdiError:
    return VdiError(f"'{path}' is not a Charades csv with video lengths: {what}",
                    hint="-o durations= (or a Charades_v1_*.csv beside the txt) must be the "
                    "Charades csv, with columns id and length (seconds)")


def _read_lengths(path: Path) -> dict[str, float]:
    """`id` -> `length` (seconds) from one Charades csv. A missing column is an error: without
    it every annotation row would be dropped as "not in the csv" and the read look fine."""
    if path.is_dir():
        raise _csv_error(path, "it is a folder")
    out: dict[str, float] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in ("id", "length") if c not in columns]
            if missing:
                raise _csv_error(path, f"no {' or '.join(repr(c) for c in missing)} column "
                                 f"(its columns: {', '.join(columns[:8]) or 'none'})")
            for n, row in enumerate(reader, 2):
                if not (row.get("id") and row.get("length")):
                    continue
                try:
                    out[row["id"]] = float(row["length"])
                except ValueError:
                    raise _csv_error(path, f"line {n}: length '{row['length']}' is not a "
                                     "number") from None
    except UnicodeDecodeError as exc:
        raise _csv_error(path, f"it is not UTF-8 text (byte {exc.start})") from exc
    return out


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
            for i, (stamp, sentence) in enumerate(pairs):
                try:
                    if not isinstance(stamp, list | tuple) or len(stamp) != 2:
                        raise ValueError
                    start, end = float(stamp[0]), float(stamp[1])
                    sentence = sentence.strip()
                    extra = {k: entry[k][i] for k in per_sentence if k in entry}
                except (TypeError, ValueError, AttributeError, IndexError, KeyError):
                    raise _bad_file(path, f"video '{vid}', moment {i}: timestamps must be "
                                    "[start, end] in seconds, sentences text (and per-sentence "
                                    f"lists as long), got {stamp!r}", "mmn-json") from None
                add_row(report, vid, duration, sentence, start, end, f"{vid}:{i}", drops,
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
