"""The `clip-similarity` head's options (torch-free, so listing heads never imports torch)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SimilarityConfig(BaseModel):
    num_clips: int = Field(32, ge=2, le=256, description="N, the 2D map side (clips per window).")
    max_clips: int | None = Field(
        None, ge=1, description="Longest candidate moment in clips (default: N, any length).")
    context: float = Field(
        1.0, ge=0, description="Weight of the mean similarity outside the moment, subtracted "
        "from the mean inside (0: rank by the inside mean alone).")
    nms_thresh: float = Field(0.5, gt=0, le=1, description="NMS IoU threshold.")
