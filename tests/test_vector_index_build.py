"""An ivfpq index trains once PENDING_LIMIT vectors are pending, then streams the rest in, so a
big first build holds at most PENDING_LIMIT vectors (not every vector twice); the automatic
nlist caps at MAX_NLIST, the value 4 sqrt(PENDING_LIMIT) gives, so training early picks the
same lists as training at the end."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from vdi_cli import vector_index  # noqa: E402
from vdi_cli.vector_index import VectorIndex, auto_nlist, proposal_ids  # noqa: E402


def _unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_auto_nlist_caps_where_the_pending_limit_trains():
    assert auto_nlist(10_000) == 400
    assert auto_nlist(vector_index.PENDING_LIMIT) == vector_index.MAX_NLIST == 4096
    assert auto_nlist(32_640_000) == 4096  # 1,000 hours: was 22,852 lists


def test_ivfpq_trains_at_the_pending_limit_and_streams_the_rest(monkeypatch):
    monkeypatch.setattr(vector_index, "PENDING_LIMIT", 2_000)
    rng = np.random.default_rng(0)
    vi = VectorIndex.create("ivfpq", 32, {"nlist": 8, "m": 8, "nprobe": 8})
    pieces = [_unit(rng, 900) for _ in range(4)]
    vi.add(pieces[0], proposal_ids(0, 900))
    vi.add(pieces[1], proposal_ids(1, 900))
    assert vi.faiss is None and len(vi.pending) == 2  # 1,800 < 2,000: still waiting
    vi.add(pieces[2], proposal_ids(2, 900))
    assert vi.faiss is not None and not vi.pending and vi.size == 2_700  # trained, added
    vi.add(pieces[3], proposal_ids(3, 900))
    assert vi.size == 3_600 and not vi.pending  # straight in
    # every slot is found: its own vectors are its nearest neighbours
    for slot, piece in enumerate(pieces):
        _, ids = vi.search(piece[:5], 1)
        assert set((ids[:, 0] >> 32).tolist()) == {slot}


def test_ivfpq_samples_its_training_set_across_pieces():
    """train_size below the pending count: the sample is drawn from every piece (three far
    apart clusters), so the coarse centres cover all three, not only the first piece's."""
    import faiss

    rng = np.random.default_rng(1)
    axes = np.eye(32, dtype=np.float32)[:3]
    vi = VectorIndex.create("ivfpq", 32, {"nlist": 6, "m": 8, "train_size": 900})
    for k in range(3):
        piece = axes[k] + 0.05 * _unit(rng, 600)
        vi.add(piece / np.linalg.norm(piece, axis=1, keepdims=True), proposal_ids(k, 600))
    vi.flush()
    assert vi.size == 1_800 and not vi.pending
    ivf = faiss.extract_index_ivf(vi.faiss)
    centres = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    assert set((centres @ axes.T).argmax(1).tolist()) == {0, 1, 2}
