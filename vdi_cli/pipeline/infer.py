"""Batched inference of a grounding model over videos with cached features.

Used by training (validation each epoch), `vdi eval --checkpoint` and `vdi retrieve`. Only the
text tower and the head run: no VDI module (the paper's "no extra cost at inference").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vdi_cli.pipeline.train_data import VideoFeatures, VideoSample, collate

QUERY_FORMS = ("q", "static", "dynamic")


def texts_for(sample: VideoSample, query_form: str) -> list[str]:
    """The sentences to encode: the full query Q, or its static Qs / dynamic Qd form."""
    if query_form == "q":
        return list(sample.queries)
    if not sample.parsed:
        raise ValueError("static / dynamic query forms need parsed queries")
    return [p.static if query_form == "static" else p.dynamic for p in sample.parsed]


def predict(
    model: Any,
    samples: Sequence[VideoSample],
    features_for: Callable[[str], VideoFeatures],
    *,
    batch_size: int = 32,
    query_form: str = "q",
    top_k: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[tuple[float, float, float]]]:
    """Ranked windows [(start, end, score), ...] per sentence, in the samples' sentence order."""
    import torch

    device = model.backbone.device
    out: list[list[tuple[float, float, float]]] = []
    model.head.eval()
    with torch.no_grad():
        for i in range(0, len(samples), batch_size):
            chunk = list(samples[i : i + batch_size])
            batch = collate(chunk, features_for, need_patches=False)
            texts = [t for s in chunk for t in texts_for(s, query_form)]
            outputs = model.scores(batch.frames.to(device), batch.frame_mask.to(device), texts,
                                   batch.video_index.to(device))
            ranked = model.head.rank(outputs, batch.durations, top_k=top_k)
            for q in range(len(ranked.counts)):
                n = int(ranked.counts[q])
                out.append([(float(ranked.windows[q, k, 0]), float(ranked.windows[q, k, 1]),
                             float(ranked.scores[q, k])) for k in range(n)])
            if on_batch:
                on_batch(len(chunk))
    return out


def evaluate_samples(model: Any, samples: Sequence[VideoSample],
                     features_for: Callable[[str], VideoFeatures], *, batch_size: int = 32,
                     query_form: str = "q") -> tuple[Any, list[list[tuple[float, float, float]]]]:
    """(RetrievalMetrics, predictions) of the model on the samples' annotated moments."""
    from vdi_cli.pipeline.evaluate import evaluate_windows
    from vdi_cli.types import Annotation

    preds = predict(model, samples, features_for, batch_size=batch_size, query_form=query_form,
                    top_k=5)
    annotations = [
        Annotation(s.video_id, s.duration, q, m[0], m[1], qid)
        for s in samples
        for q, m, qid in zip(s.queries, s.moments, s.query_ids, strict=True)
    ]
    windows = [[(a, b) for a, b, _ in p] for p in preds]
    return evaluate_windows(annotations, windows), preds
