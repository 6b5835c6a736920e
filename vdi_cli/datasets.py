"""Reading annotation files through the dataset-format plugins.

Every format normalises to `Annotation` rows (video id, duration, query, start, end, query id) and
reports what it dropped or clipped instead of hiding it: real files have quirks (Charades-STA's
train split has 4 rows with start >= end; 562 test rows end after the video).

A split without answers (QVHighlights' test file: qid, query, vid, duration and no windows) is
read too: its queries go to `DatasetReport.unannotated` (start and end NaN), never into
`annotations`, so nothing trains or scores on them. `load_dataset` refuses a file with no
annotated query unless the caller says it needs no answers (parse, extract, datasets check,
writing a test split's predictions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.types import Annotation


@dataclass
class DatasetReport:
    """What a dataset reader produced, and what it had to change."""

    format: str
    path: str
    annotations: list[Annotation] = field(default_factory=list)
    videos: dict[str, float] = field(default_factory=dict)  # video id -> duration (s)
    dropped: int = 0  # rows not kept (start >= end, unknown video, ...)
    clipped: int = 0  # rows whose moment was clipped to [0, duration]
    messages: list[str] = field(default_factory=list)
    unannotated: list[Annotation] = field(default_factory=list)  # queries without a moment
    seen: set[str] = field(default_factory=set)  # every video id a row named, kept or dropped
    drop_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": self.path,
            "videos": len(self.videos),
            "queries": len(self.annotations),
            "dropped": self.dropped,
            "clipped": self.clipped,
            "unannotated": len(self.unannotated),
            "messages": list(self.messages),
        }

    def all_queries(self) -> list[Annotation]:
        """Annotated and unannotated queries, for commands that need no answers."""
        return list(self.annotations) + list(self.unannotated)


def normalise_moment(
    start: float, end: float, duration: float
) -> tuple[float, float, str | None]:
    """MMN's rule: drop rows with start >= end, then clip to [0, duration].

    Returns (start, end, outcome) with outcome None (kept as is), "clipped" or a drop reason.
    """
    if not start < end:
        return start, end, "start >= end"
    s, e = max(start, 0.0), min(end, duration)
    if not s < e:
        return s, e, "moment outside the video after clipping"
    return s, e, "clipped" if (s, e) != (start, end) else None


def add_row(
    report: DatasetReport,
    video_id: str,
    duration: float,
    query: str,
    start: float,
    end: float,
    query_id: str,
    drops: dict[str, int],
    **extra: Any,
) -> None:
    """Normalise one row into `report`, counting drops by reason."""
    report.seen.add(video_id)
    s, e, outcome = normalise_moment(float(start), float(end), float(duration))
    if outcome not in (None, "clipped"):
        report.dropped += 1
        drops[outcome] = drops.get(outcome, 0) + 1
        return
    if outcome == "clipped":
        report.clipped += 1
    report.videos[video_id] = float(duration)
    report.annotations.append(
        Annotation(video_id, float(duration), query, s, e, query_id, dict(extra))
    )


def add_unannotated(report: DatasetReport, video_id: str, duration: float, query: str,
                    query_id: str, **extra: Any) -> None:
    """A query without a moment (a test split): kept apart from the annotated rows."""
    nan = float("nan")
    report.seen.add(video_id)
    report.videos[video_id] = float(duration)
    report.unannotated.append(
        Annotation(video_id, float(duration), query, nan, nan, query_id, dict(extra)))


def finish_report(report: DatasetReport, drops: dict[str, int]) -> DatasetReport:
    report.drop_reasons = dict(drops)
    if report.unannotated:
        report.messages.append(
            f"{len(report.unannotated)} queries have no moment (a split without answers): "
            "kept for parse, extract and predictions, left out of training and scoring")
    for reason, count in sorted(drops.items()):
        report.messages.append(f"dropped {count} rows: {reason}")
    if report.clipped:
        report.messages.append(f"clipped {report.clipped} moments to [0, duration]")
    return report


def load_dataset(format_id: str, annotations: str | Path, *, need_answers: bool = True,
                 **options: Any) -> DatasetReport:
    """Read `annotations` with the dataset-format plugin `format_id` (options: its config).

    With `need_answers` (training, scoring) a file without any annotated query is an error that
    says why (a test split; every row dropped) instead of an empty run further on."""
    from vdi_cli.registry import get_component

    component = get_component("dataset", format_id)
    path = Path(annotations)
    check_annotation_file(path)
    reader = component.build(options or None)
    try:
        report = reader.read(path)
    except UnicodeDecodeError as exc:  # a binary file (a video, an archive) given as text
        raise VdiError(
            f"'{path}' is not a {format_id} annotation file: it is not UTF-8 text "
            f"(byte {exc.start} is 0x{exc.object[exc.start]:02x})",
            hint="give the annotation file itself (text: JSON, JSONL or txt); `vdi datasets` "
            "lists the formats",
        ) from exc
    except OSError as exc:
        raise VdiError(f"cannot read the annotation file '{path}': {exc.strerror or exc}",
                       hint="check the file and its permissions") from exc
    if need_answers and not report.annotations:
        raise no_answers_error(report)
    return report


def no_answers_error(report: DatasetReport) -> VdiError:
    """Why a file holds no annotated query, as an error."""
    path = report.path
    if report.unannotated:
        return VdiError(
            f"'{path}' has no answers: its {len(report.unannotated)} queries have no moment "
            "(a test split), so there is nothing to train on or score against",
            hint="score on a split with answers (e.g. the val file); for the benchmark's server "
            "write this split's predictions with `vdi eval --run ID --video-dir DIR "
            "--save-predictions FILE`")
    if report.dropped:
        reasons = "; ".join(f"{n} {r}" for r, n in sorted(report.drop_reasons.items()))
        return VdiError(f"every row of '{path}' was dropped ({reasons or report.dropped})",
                        hint=f"check the file and --dataset {report.format}; `vdi datasets "
                        f"check {report.format} FILE` shows what was dropped")
    return VdiError(f"'{path}' has no annotated queries (it holds no row)",
                    hint=f"check the annotation file and that it is a {report.format} file")


def check_annotation_file(path: Path, what: str = "annotation file") -> None:
    """Refuse a missing path, a folder and an empty file before a reader sees them (a folder
    used to surface as IsADirectoryError, "this is a bug in vdi")."""
    if not path.exists():
        raise VdiError(f"{what} '{path}' does not exist", hint="check the path")
    if path.is_dir():
        raise VdiError(f"{what} '{path}' is a folder, not a file",
                       hint="give the annotation file inside it (e.g. train.json)")
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise VdiError(f"cannot read the {what} '{path}': {exc.strerror or exc}",
                       hint="check the file and its permissions") from exc
    if not head.strip():
        raise VdiError(f"{what} '{path}' is empty",
                       hint="check the path: the file holds no annotations")
