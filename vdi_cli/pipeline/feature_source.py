"""Frame features for a set of dataset videos: extracted once (cache), then served by video id.

Global features are kept in memory; patch features too when they fit in `memory_budget` bytes,
otherwise they are read from the cache file for each batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError, param
from vdi_cli.pipeline.train_data import VideoFeatures
from vdi_cli.video import video_for_id


class FeatureSource:
    def __init__(self, db: Any, backbone: Any, sampling: dict[str, Any], patches: bool,
                 memory_budget: int = 1_500_000_000) -> None:
        self.db, self.backbone, self.sampling = db, backbone, sampling
        self.patches = patches
        self.memory_budget = memory_budget
        self.sha: dict[str, str] = {}
        self._cache: dict[str, VideoFeatures] = {}
        self._keep_patches = True
        self.failed: dict[str, str] = {}

    def ensure(self, video_ids: Iterable[str], video_dir: str | Path, batch_size: int = 32,
               show_progress: bool = True) -> None:
        """Extract what is not cached yet; videos that fail are recorded in `failed`."""
        from vdi_cli.pipeline.extract import extract_features

        ids = [v for v in dict.fromkeys(video_ids) if v not in self.sha]
        pairs = [(v, video_for_id(video_dir, v)) for v in ids]
        report = extract_features(self.db, pairs, loaded=self.backbone, sampling=self.sampling,
                                  batch_size=batch_size, show_progress=show_progress)
        for vid, outcome in zip(ids, report.videos, strict=True):
            if outcome.status in ("extracted", "cached") and outcome.sha256:
                self.sha[vid] = outcome.sha256
            else:
                self.failed[vid] = outcome.error or outcome.status
        if not self.sha:
            raise VdiError(f"no usable video in '{video_dir}' ({len(self.failed)} failed)",
                           hint=f"{param('video_dir')} must hold <video id>.mp4 files of the "
                           "dataset")

    def __call__(self, video_id: str) -> VideoFeatures:
        hit = self._cache.get(video_id)
        if hit is not None and (hit.patches is not None or not self.patches):
            return hit
        from vdi_cli.features import load_features

        if video_id not in self.sha:
            raise VdiError(f"no features for video '{video_id}'",
                           hint="it failed to extract; see the run summary")
        g, p, meta = load_features(self.db, self.sha[video_id], self.backbone.id,
                                   self.backbone.weights_id, self.sampling, patches=self.patches)
        import torch

        feats = VideoFeatures(g, p, torch.tensor(meta["times"], dtype=torch.float32))
        size = sum(t.numel() * t.element_size() for t in (g, p) if t is not None)
        if self._keep_patches and size * (len(self.sha)) > self.memory_budget:
            self._keep_patches = False
        self._cache[video_id] = feats if self._keep_patches else VideoFeatures(g, None, feats.times)
        return feats
