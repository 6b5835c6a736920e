"""Built-in annotation formats: `charades-sta`, `mmn-json` (and its `tacos` / `charades-cd` /
`activitynet-cd` shapes) and `qvhighlights`.

- charades-sta: 2D-TAN's txt (`vid start end##sentence`), durations from the `length` column of the
  Charades csv (`Charades_v1_{train,test}.csv`, found beside the txt unless `durations` is given).
  query id = 0-based line index.
- mmn-json: `{vid: {duration, timestamps, sentences}}` (MMN, Charades-CG, ActivityNet Captions);
  per-sentence keys (Charades-CG's `news`, `novels`; synthetic-shapes' `actions`) are kept in
  `Annotation.extra`.
  query id = "vid:index". Sentences are stripped (ActivityNet's start with a space).
  The same reader takes the other shapes of that JSON, per video, detected by their keys or
  named by the format id:
  - tacos (2D-TAN / MMN's TACoS): `{vid: {num_frames, fps, timestamps IN FRAMES, sentences}}`;
    duration = num_frames / fps, moments = frames / fps (then MMN's drop and clip rules).
  - charades-cd / activitynet-cd (yytzsy/grounding_changing_distribution): `video_duration`
    instead of `duration`, timestamps in seconds, plus `framestamps`, `decode_fps`, `video_fps`
    (framestamps are kept per sentence in `extra`).
- qvhighlights: JSONL with `qid`, `query`, `vid`, `duration`, `relevant_windows`; the first window
  is (start, end), all of them are in `extra["windows"]`. query id = qid (the raw value in
  `extra["qid"]`). A line without `relevant_windows` (the test split) is an unannotated query.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vdi_cli.datasets import DatasetReport, add_row, add_unannotated, finish_report
from vdi_cli.errors import VdiError
from vdi_cli.hookspecs import hookimpl


def _bad_file(path: Path, what: str, fmt: str) -> VdiError:
    return VdiError(
        f"'{path}' is not a {fmt} annotation file: {what}",
        hint="check --dataset; `vdi datasets` lists the formats",
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
                "or pass --dataset-option durations=PATH",
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
                report.seen.add(vid)
                report.dropped += 1
                drops["video not in the Charades csv"] = (
                    drops.get("video not in the Charades csv", 0) + 1
                )
                continue
            add_row(report, vid, durations[vid], sentence.strip(), start, end, str(index), drops)
        return finish_report(report, drops)


def _csv_error(path: Path, what: str) -> VdiError:
    return VdiError(f"'{path}' is not a Charades csv with video lengths: {what}",
                    hint="--dataset-option durations= (or a Charades_v1_*.csv beside the txt) must "
                    "be the "
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


SHAPES = {  # shape -> (description, the format id that names it)
    "mmn": ("duration + timestamps in seconds", "mmn-json"),
    "tacos": ("TACoS: num_frames / fps, timestamps in frames", "tacos"),
    "cd": ("Charades-CD / ActivityNet-CD: video_duration, timestamps in seconds", "charades-cd"),
}


def entry_shape(entry: Any) -> str | None:
    """Which shape of the MMN JSON one video's entry has (None: none of them)."""
    if not isinstance(entry, dict):
        return None
    if "duration" in entry:
        return "mmn"
    if "num_frames" in entry and "fps" in entry:
        return "tacos"
    if "video_duration" in entry:
        return "cd"
    return None


def _entry_times(entry: dict, shape: str) -> tuple[float, float]:
    """(duration in seconds, seconds per timestamp unit) of one video's entry."""
    if shape == "tacos":
        fps = float(entry["fps"])
        if not fps > 0:
            raise ValueError(f"fps {entry['fps']!r} is not positive")
        return float(entry["num_frames"]) / fps, 1.0 / fps
    if shape == "cd":
        return float(entry["video_duration"]), 1.0
    return float(entry["duration"]), 1.0


class MMNJson:
    """`{vid: {...}}` JSON in any of SHAPES; `shape=None` detects it per video."""

    fmt = "mmn-json"
    shape: str | None = None

    def __init__(self, config: MMNJsonConfig | None = None) -> None:
        self.config = config

    def read(self, path: Path) -> DatasetReport:
        fmt = self.fmt
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise _bad_file(path, f"invalid JSON ({exc})", fmt) from exc
        if not isinstance(data, dict):
            raise _bad_file(path, "the top level is not an object of videos", fmt)
        report = DatasetReport(fmt, str(path))
        drops: dict[str, int] = {}
        shapes: dict[str, int] = {}
        per_sentence = ("news", "novels", "actions", "framestamps")
        for vid, entry in data.items():
            shape = self.shape or entry_shape(entry)
            if shape is None:
                raise _bad_file(path, f"video '{vid}' has none of duration, num_frames + fps "
                                "(TACoS) or video_duration (Charades-CD)", fmt)
            shapes[shape] = shapes.get(shape, 0) + 1
            try:
                duration, unit = _entry_times(entry, shape)
                pairs = list(zip(entry["timestamps"], entry["sentences"], strict=True))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                raise _bad_file(path, f"video '{vid}' lacks {_needs(shape)} ({exc})",
                                fmt) from exc
            for i, (stamp, sentence) in enumerate(pairs):
                try:
                    if not isinstance(stamp, list | tuple) or len(stamp) != 2:
                        raise ValueError
                    start, end = float(stamp[0]) * unit, float(stamp[1]) * unit
                    sentence = sentence.strip()
                    extra = {k: entry[k][i] for k in per_sentence if k in entry}
                except (TypeError, ValueError, AttributeError, IndexError, KeyError):
                    units = "frames" if shape == "tacos" else "seconds"
                    raise _bad_file(path, f"video '{vid}', moment {i}: timestamps must be "
                                    f"[start, end] in {units}, sentences text (and per-sentence "
                                    f"lists as long), got {stamp!r}", fmt) from None
                add_row(report, vid, duration, sentence, start, end, f"{vid}:{i}", drops,
                        **extra)
        if self.shape is None and set(shapes) != {"mmn"}:
            report.messages.append("shape: " + ", ".join(
                f"{n} videos {SHAPES[k][0]} (format {SHAPES[k][1]})" for k, n in shapes.items()))
        return finish_report(report, drops)


def _needs(shape: str) -> str:
    return {"mmn": "duration/timestamps/sentences",
            "tacos": "num_frames/fps/timestamps/sentences (TACoS)",
            "cd": "video_duration/timestamps/sentences (Charades-CD)"}[shape]


class TACoS(MMNJson):
    fmt, shape = "tacos", "tacos"


class CharadesCD(MMNJson):
    fmt, shape = "charades-cd", "cd"


class ActivityNetCD(MMNJson):
    fmt, shape = "activitynet-cd", "cd"


class QVHConfig(BaseModel):
    pass


class QVHighlights:
    def __init__(self, config: QVHConfig | None = None) -> None:
        self.config = config

    def read(self, path: Path) -> DatasetReport:
        report = DatasetReport("qvhighlights", str(path))
        drops: dict[str, int] = {}
        several = 0
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _bad_file(path, f"line {n}: invalid JSON ({exc})", "qvhighlights") from exc
            missing = [k for k in ("qid", "query", "vid", "duration")
                       if not isinstance(row, dict) or k not in row]
            if missing:
                raise _bad_file(path, f"line {n} has no {', '.join(map(repr, missing))}",
                                "qvhighlights")
            qid, query, vid = row["qid"], str(row["query"]).strip(), str(row["vid"])
            try:
                duration = float(row["duration"])
                if row.get("relevant_windows") is None:  # the test split: no answers
                    add_unannotated(report, vid, duration, query, str(qid), qid=qid)
                    continue
                windows = [[float(s), float(e)] for s, e in row["relevant_windows"]]
            except (TypeError, ValueError) as exc:
                raise _bad_file(path, f"line {n}: duration must be seconds and "
                                f"relevant_windows [[start, end], ...] ({exc})",
                                "qvhighlights") from exc
            if not windows:
                report.dropped += 1
                drops["no relevant window"] = drops.get("no relevant window", 0) + 1
                continue
            several += len(windows) > 1
            add_row(report, vid, duration, query, windows[0][0], windows[0][1], str(qid), drops,
                    windows=windows, qid=qid)
        if several:
            report.messages.append(
                f"{several} queries have several windows: the first is (start, end), "
                "all are in extra['windows']"
            )
        return finish_report(report, drops)


@hookimpl
def register_datasets(register: Any) -> None:
    register("charades-sta", CharadesSTA, config=CharadesConfig,
             description="2D-TAN Charades-STA txt + Charades csv durations. Row: "
             "'AO8RW 0.0 6.9##a person is putting a book on a shelf.'")
    register("mmn-json", MMNJson, config=MMNJsonConfig,
             description="MMN JSON: Charades-STA, Charades-CG, ActivityNet Captions (detects "
             "the tacos and charades-cd shapes). Row: "
             '{"v1": {"duration": 33.7, "timestamps": [[0.0, 6.9]], "sentences": ["..."]}}')
    register("tacos", TACoS, config=MMNJsonConfig,
             description="TACoS as 2D-TAN / MMN ship it, timestamps in frames. Row: "
             '{"s13-d21.avi": {"num_frames": 6840, "fps": 29.4, "timestamps": [[120, 410]], '
             '"sentences": ["..."]}}')
    register("charades-cd", CharadesCD, config=MMNJsonConfig,
             description="Charades-CD (grounding_changing_distribution). Row: "
             '{"AO8RW": {"video_duration": 33.7, "timestamps": [[0.0, 6.9]], "framestamps": '
             '[[0, 166]], "decode_fps": 24, "video_fps": 30, "sentences": ["..."]}}')
    register("activitynet-cd", ActivityNetCD, config=MMNJsonConfig,
             description="ActivityNet-CD (grounding_changing_distribution): the charades-cd "
             "shape, ActivityNet videos.")
    register("qvhighlights", QVHighlights, config=QVHConfig, metrics="qvhighlights",
             description="QVHighlights / Moment-DETR JSONL; scored with --metrics "
             'qvhighlights by default; test split without windows. Row: {"qid": 2579, '
             '"query": "...", "vid": "NUsG9BgSes0_210.0_360.0", "duration": 150, '
             '"relevant_windows": [[82, 150]]}')
