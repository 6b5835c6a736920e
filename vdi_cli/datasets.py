"""Reading annotation files through the dataset-format plugins.

Every format normalises to `Annotation` rows (video id, duration, query, start, end, query id) and
reports what it dropped or clipped instead of hiding it: real files have quirks (Charades-STA's
train split has 4 rows with start >= end; 562 test rows end after the video).
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

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": self.path,
            "videos": len(self.videos),
            "queries": len(self.annotations),
            "dropped": self.dropped,
            "clipped": self.clipped,
            "messages": list(self.messages),
        }


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


def finish_report(report: DatasetReport, drops: dict[str, int]) -> DatasetReport:
    for reason, count in sorted(drops.items()):
        report.messages.append(f"dropped {count} rows: {reason}")
    if report.clipped:
        report.messages.append(f"clipped {report.clipped} moments to [0, duration]")
    return report


def load_dataset(format_id: str, annotations: str | Path, **options: Any) -> DatasetReport:
    """Read `annotations` with the dataset-format plugin `format_id` (options: its config)."""
    from vdi_cli.registry import get_component

    component = get_component("dataset", format_id)
    path = Path(annotations)
    if not path.exists():
        raise VdiError(
            f"annotation file '{path}' does not exist",
            hint="check the path given to --annotations",
        )
    reader = component.build(options or None)
    return reader.read(path)
