"""The winpq index: one inverted list per window (its proposals coded as residuals from the
window's centre), lists that grow as videos arrive, save/load and removal."""

import numpy as np
import pytest

from vdi_cli import vector_index
from vdi_cli.errors import VdiError
from vdi_cli.vector_index import VectorIndex, proposal_ids, split_ids

DIM, CELLS, WINDOWS = 16, 6, 5  # a video: 5 windows of 6 proposals


def _videos(count, seed=0):
    """Unit vectors clustered by window (window centre + small noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        centre = rng.standard_normal((WINDOWS, 1, DIM))
        v = centre + 0.3 * rng.standard_normal((WINDOWS, CELLS, DIM))
        v /= np.linalg.norm(v, axis=-1, keepdims=True)
        out.append(v.reshape(-1, DIM).astype(np.float32))
    return out


def _build(videos, **options):
    vi = VectorIndex.create("winpq", DIM, {"m": 4, "nprobe": 1000, **options})
    for slot, v in enumerate(videos):
        vi.add(v, proposal_ids(slot, len(v)), group=CELLS)
    vi.flush()
    return vi


def test_each_window_is_one_list_and_the_lists_grow(monkeypatch):
    monkeypatch.setattr(vector_index, "FIRST_LISTS", 4)  # 50 windows: grows 4 -> 8 -> ... -> 64
    videos = _videos(10)
    vi = _build(videos)
    faiss = vector_index.faiss_module()
    ivf = faiss.extract_index_ivf(vi.faiss)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    assert vi.size == 10 * WINDOWS * CELLS and ivf.nlist == 64
    for lst in range(10 * WINDOWS):
        ids = faiss.rev_swig_ptr(lists.get_ids(lst), lists.list_size(lst)).copy()
        slot, window = divmod(lst, WINDOWS)  # the windows in the order they were added
        assert sorted(ids) == list(proposal_ids(slot, CELLS, window * CELLS))
    assert all(lists.list_size(lst) == 0 for lst in range(10 * WINDOWS, 64))
    # the centres the graph holds are the windows' mean vectors, as fp16
    quantizer = faiss.downcast_index(ivf.quantizer)
    centre = videos[1][2 * CELLS : 3 * CELLS].mean(0)
    np.testing.assert_array_equal(quantizer.reconstruct(7), centre.astype(np.float16))


def test_a_score_is_the_centre_plus_the_coded_residual(monkeypatch):
    monkeypatch.setattr(vector_index, "FIRST_LISTS", 2)  # codes moved by 5 growths stay right
    videos = _videos(10)
    vi = _build(videos)
    q = videos[3][CELLS + 2 : CELLS + 3] + 0.1
    ips, ids = vi.search(q, 10)
    pq = vi.faiss.pq
    for ip, pid in zip(ips[0], ids[0], strict=True):
        slot, pos = split_ids(np.array([pid]))
        window = videos[int(slot[0])].reshape(WINDOWS, CELLS, DIM)[int(pos[0]) // CELLS]
        centre = window.mean(0).astype(np.float16).astype(np.float32)  # as the graph holds it
        residual = window[int(pos[0]) % CELLS] - centre
        coded = pq.decode(pq.compute_codes(residual[None].astype(np.float32)))[0]
        assert ip == pytest.approx(float(q[0] @ centre + q[0] @ coded), abs=1e-4)
    assert list(ips[0]) == sorted(ips[0], reverse=True)


def test_save_load_and_remove(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_index, "FIRST_LISTS", 8)
    videos = _videos(10)
    vi = _build(videos, nprobe=7)
    q = videos[2][:3]
    before = vi.search(q, 12)
    vi.save(tmp_path / "v.faiss")
    back = VectorIndex.load(tmp_path / "v.faiss", "winpq", DIM, vi.options)
    faiss = vector_index.faiss_module()
    ivf = faiss.extract_index_ivf(back.faiss)
    assert ivf.nprobe == 7 and faiss.downcast_index(ivf.quantizer).hnsw.efSearch == 16
    after = back.search(q, 12)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    assert back.remove_slot(2) == WINDOWS * CELLS
    _, ids = back.search(q, 40)
    slots, _ = split_ids(ids[ids >= 0])
    assert 2 not in set(slots.tolist()) and len(slots)
    back.add(_videos(1, seed=9)[0], proposal_ids(10, WINDOWS * CELLS), group=CELLS)  # after a load
    assert back.size == 10 * WINDOWS * CELLS


def test_bad_input():
    vi = VectorIndex.create("winpq", DIM, {"m": 4})
    with pytest.raises(ValueError, match="not windows of 4"):
        vi.add(np.ones((6, DIM), np.float32), np.arange(6), group=4)
    vi.add(_videos(1)[0], proposal_ids(0, WINDOWS * CELLS), group=CELLS)
    with pytest.raises(VdiError, match="needs at least 256 proposals"):
        vi.flush()
    with pytest.raises(VdiError, match="does not divide"):
        _build(_videos(10), m=5)
