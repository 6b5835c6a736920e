"""Rendering retrieval results: table, JSON (QVHighlights prediction shape), JSONL, SRT, WebVTT.

Pure functions over plain data (no torch), so they are tested on hand-made lists.

- `--json` / `--format json`: one object: run id, backbone, weights, head, where the model came
  from, and `predictions`: one record per (query, video) in the QVHighlights / Moment-DETR shape
  `{"query", "vid", "pred_relevant_windows": [[start_s, end_s, score], ...]}` (best first), plus
  `corpus`: per query the best moments across all videos as [vid, start_s, end_s, score].
- `--format jsonl`: one prediction record per line (what `vdi eval --predictions` reads), each
  with run_id, backbone and head.
- `--format srt|vtt`: one cue per moment, in time order, text "#rank query (score)".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("table", "json", "jsonl", "srt", "vtt")


def clock(seconds: float) -> str:
    """h:mm:ss.s (tenths, rounded): 75.25 -> '0:01:15.2', 3599.96 -> '1:00:00.0'."""
    tenths = int(round(max(0.0, float(seconds)) * 10))
    h, rest = divmod(tenths, 36000)
    m, rest = divmod(rest, 600)
    return f"{h}:{m:02d}:{rest // 10:02d}.{rest % 10}"


def subtitle_time(seconds: float, sep: str = ",") -> str:
    """HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (sep='.', WebVTT), milliseconds rounded."""
    ms = int(round(max(0.0, float(seconds)) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _window(m: Any) -> list[float]:
    return [round(float(m.start), 3), round(float(m.end), 3), round(float(m.score), 4)]


def prediction_records(queries: Sequence[str], videos: Sequence[Any]) -> list[dict[str, Any]]:
    """QVHighlights-shaped records, query-major: for each query, each video's ranked windows.
    `videos` items have .vid, .duration and .moments (per query, a list of Moment)."""
    return [
        {"query": q, "vid": v.vid, "pred_relevant_windows": [_window(m) for m in v.moments[qi]],
         "duration": round(float(v.duration), 3)}
        for qi, q in enumerate(queries)
        for v in videos
    ]


def corpus_records(queries: Sequence[str], corpus: Sequence[Sequence[tuple[str, Any]]]
                   ) -> list[dict[str, Any]]:
    return [{"query": q, "pred_relevant_windows": [[vid, *_window(m)] for vid, m in corpus[qi]]}
            for qi, q in enumerate(queries)]


def render_json(data: Any) -> str:
    """Indented JSON with every list of scalars (a window) on one line."""
    return _dump(data, 0) + "\n"


def _dump(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dump(v, depth + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + _dump(v, depth + 1) for v in value) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def render_jsonl(records: Sequence[dict[str, Any]], extra: dict[str, Any]) -> str:
    return "".join(json.dumps({**r, **extra}, ensure_ascii=False) + "\n" for r in records)


def render_table(queries: Sequence[str], videos: Sequence[Any],
                 corpus: Sequence[Sequence[tuple[str, Any]]] | None = None,
                 searched: int | None = None) -> str:
    """Per query: a title line and a table (rank, start, end, duration, score); with several
    videos the table ranks moments across videos and has a video column."""
    from vdi_cli.output import table

    blocks = []
    for qi, q in enumerate(queries):
        if corpus is not None:
            title = f"query: {q}  ({searched or len(videos)} videos)"
            rows = [(r, vid, clock(m.start), clock(m.end), f"{m.end - m.start:.1f}",
                     f"{m.score:.4f}") for r, (vid, m) in enumerate(corpus[qi], 1)]
            headers = ["rank", "video", "start", "end", "duration", "score"]
        else:
            v = videos[0]
            windows = len(v.windows)
            title = (f"query: {q}  ({v.vid}, {clock(v.duration)}"
                     + (f", {windows} windows" if windows > 1 else "") + ")")
            rows = [(r, clock(m.start), clock(m.end), f"{m.end - m.start:.1f}",
                     f"{m.score:.4f}") for r, m in enumerate(v.moments[qi], 1)]
            headers = ["rank", "start", "end", "duration", "score"]
        body = table(rows, headers) if rows else "(no moment)"
        blocks.append(f"{title}\n{body}")
    return "\n\n".join(blocks) + "\n"


def cues(queries: Sequence[str], moments: Sequence[Sequence[Any]]) -> list[tuple[float, float,
                                                                                  str]]:
    """(start, end, text) per moment of every query, sorted by start, then end, then text."""
    out = [(float(m.start), float(m.end), f"#{r} {q} ({m.score:.2f})")
           for q, ms in zip(queries, moments, strict=True) for r, m in enumerate(ms, 1)]
    return sorted(out)


def render_srt(queries: Sequence[str], moments: Sequence[Sequence[Any]]) -> str:
    blocks = [f"{i}\n{subtitle_time(s)} --> {subtitle_time(e)}\n{text}\n"
              for i, (s, e, text) in enumerate(cues(queries, moments), 1)]
    return "\n".join(blocks)


def render_vtt(queries: Sequence[str], moments: Sequence[Sequence[Any]]) -> str:
    blocks = [f"{subtitle_time(s, '.')} --> {subtitle_time(e, '.')}\n{text}\n"
              for s, e, text in cues(queries, moments)]
    return "WEBVTT\n\n" + "\n".join(blocks)
