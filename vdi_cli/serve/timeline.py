"""`GET /api/timeline?q=...&vid=...`: one indexed video's per-frame scores for one sentence
(the curve `--plot` draws), computed when a moment is clicked rather than for every found
video in the search itself: a search answers sooner, and only the watched video is scored in
full (every window, the head's exact score, as `vdi search --plot` does)."""

from __future__ import annotations

import math
from typing import Any

from vdi_cli.errors import VdiError


def video_timeline(searcher: Any, query: str, vid: str) -> dict[str, Any]:
    """{vid, path, url, duration, times, timeline} of `vid` (a video of the searcher's index)
    for `query`; raises VdiError for a video not in the index."""
    import torch

    from vdi_cli.pipeline.retrieve_windows import rank_scores
    from vdi_cli.serve.media import video_url

    slot = next((s for s, r in searcher.videos.items() if r["vid"] == vid), None)
    if slot is None:
        raise VdiError(f"no video '{vid}' in index '{searcher.index['name']}'",
                       hint="use a vid from the search's answer")
    with torch.no_grad():
        qvec = searcher.head.encode_queries(searcher.retriever.encode([query]))
    vp = searcher._video(slot, times=True)[0]  # a timeline needs the frame times
    ranking = rank_scores(vp, searcher.exact_scores(slot, qvec), top_k=1, keep_maps=True)
    row = searcher.videos[slot]

    def finite(values: Any) -> list[float | None]:
        return [round(float(v), 5) if math.isfinite(float(v)) else None for v in values]

    return {"vid": vid, "path": row["path"], "url": video_url(row["path"]),
            "duration": round(float(vp.duration), 3), "times": finite(ranking.times),
            "timeline": finite(ranking.timeline[0])}
