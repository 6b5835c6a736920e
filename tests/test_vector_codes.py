"""The exact index's fp16 scan: its measured code error bounds how far every scanned inner
product is from the exact one, it survives save / load through the index row, an index of the
older float32 kind still loads with error 0. (That the exact search through the fp16 scan
equals `vdi retrieve`: tests/test_index_search.py.)"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from vdi_cli.vector_index import VectorIndex, options_for, proposal_ids  # noqa: E402


def _vectors(rng, n, dim):
    x = rng.standard_normal((n, dim)) * rng.uniform(0.01, 3.0, (n, 1))  # varied norms
    x[:, :4] *= 1e-6  # components in fp16's subnormal range
    return x.astype(np.float32)


def test_fp16_scan_is_within_the_measured_code_error(tmp_path):
    rng = np.random.default_rng(0)
    x = _vectors(rng, 3000, 64)
    index = VectorIndex.create("flat", 64)
    assert index.options["fp16"] == 1
    index.add(x[:2000], proposal_ids(0, 2000))
    index.add(x[2000:], proposal_ids(1, 1000))
    err = index.code_error
    # fp16 keeps 11 significant bits: the error is at most ~2**-11 of the largest norm
    assert 0 < err <= 2.0 ** -11 * np.linalg.norm(x, axis=1).max()
    q = rng.standard_normal((5, 64)).astype(np.float32) * 2.0
    ips, ids = index.search(q, 3000)
    slot, pos = ids >> 32, ids & 0xFFFFFFFF
    exact = np.einsum("qd,qkd->qk", q.astype(np.float64), x[slot * 2000 + pos].astype(np.float64))
    slack = err * np.linalg.norm(q, axis=1, keepdims=True) + 1e-5  # + float32 accumulation
    assert np.all(np.abs(ips - exact) <= slack)
    assert np.abs(ips - exact).max() > 1e-5  # the codes are not exact: the error matters
    index.save(tmp_path / "a.faiss")
    again = VectorIndex.load(tmp_path / "a.faiss", "flat", 64, index.options)
    assert again.code_error == err and again.size == 3000
    assert again.remove_slot(1) == 1000 and again.size == 2000


def test_float32_flat_has_no_code_error(tmp_path):
    rng = np.random.default_rng(1)
    x = _vectors(rng, 500, 32)
    plain = VectorIndex.create("flat", 32, {"fp16": 0})
    plain.add(x, proposal_ids(0, 500))
    assert plain.code_error == 0.0
    q = rng.standard_normal((1, 32)).astype(np.float32)
    ips, ids = plain.search(q, 500)
    assert np.allclose(ips[0], (x @ q[0])[ids[0]], atol=1e-5)
    # an index saved before the option existed: options {}, an IndexFlatIP file
    plain.save(tmp_path / "old.faiss")
    old = VectorIndex.load(tmp_path / "old.faiss", "flat", 32, {})
    assert old.code_error == 0.0 and old.size == 500
    with pytest.raises(Exception, match="unknown option 'fp61'"):
        options_for("flat", {"fp61": 1})


def test_search_threads_apply_to_the_call_only(monkeypatch):
    import faiss

    from vdi_cli.errors import VdiError
    from vdi_cli.vector_index import search_threads

    index = VectorIndex.create("flat", 8)
    index.add(np.eye(8, dtype=np.float32), proposal_ids(0, 8))
    before = faiss.omp_get_max_threads()
    assert search_threads() == 1  # unset: one thread
    monkeypatch.setenv("VDI_SEARCH_THREADS", "2")
    assert search_threads() == 2
    _, ids = index.search(np.eye(8, dtype=np.float32)[3:4], 1)
    assert ids.tolist() == [[3]] and faiss.omp_get_max_threads() == before
    monkeypatch.setenv("VDI_SEARCH_THREADS", "-1")
    with pytest.raises(VdiError, match="got '-1'"):
        index.search(np.eye(8, dtype=np.float32)[:1], 1)
