"""benchmarks/bench_search.py --quick runs end to end (real build through the Charades head,
simulated libraries searched through LibrarySearcher) and prints figures that parse; the exact
index's top-10 equals exhaustive scoring (recall 1.0, identical)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

ROOT = Path(__file__).resolve().parents[1]
NUM = r"(\d+(?:\.\d+)?)"
BUILD = re.compile(rf"^\s+(flat|winpq|ivfpq|hnsw)\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s*$")
# hours kind proposals build-s FAISS-GB RSS anon file p50 p95 FAISS-p50 text recall M
# [identical]
SEARCH = re.compile(rf"^\s+{NUM}\s+(flat|winpq|ivfpq|hnsw)\s+(\d+)\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}"
                    rf"\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+(\d+)( identical)?\s*$")


@pytest.mark.slow
def test_quick_benchmark_prints_parseable_figures(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VDI_PLUGINS": ""}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), "--quick",
         "--tmp", str(tmp_path / "work"), "--cold"],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    build = {m[1]: [float(x) for x in m.groups()[1:]] for m in map(BUILD.match, lines) if m}
    search = {m[2]: m.groups() for m in map(SEARCH.match, lines) if m}
    assert set(build) == set(search) == {"flat", "winpq", "ivfpq", "hnsw"}, proc.stdout
    for kind, (sec_h, props_h, faiss_mb_h, npy_mb_h) in build.items():
        assert sec_h > 0 and faiss_mb_h > 0, kind
        assert props_h == pytest.approx(32640, rel=0.05)  # 240 windows x 136 cells an hour
        assert npy_mb_h == pytest.approx(props_h * 512 * 4 / 1e6, rel=0.02)  # float32 iou+con
    for kind, g in search.items():
        proposals, p50, p95, recall = int(g[2]), float(g[8]), float(g[9]), float(g[12])
        stage1 = float(g[10])  # the FAISS search alone: part of the whole query's time
        rss, anon, file = float(g[5]), float(g[6]), float(g[7])
        assert proposals > 0 and 0 < p50 <= p95 and 0 < stage1, kind
        assert 0 < anon <= rss + 0.01 and file <= rss + 0.01, kind  # now <= the peak
        assert 0.0 <= recall <= 1.0
    assert float(search["flat"][12]) == 1.0 and search["flat"][14] == " identical"
    assert not (tmp_path / "work").exists()  # the data files are cleaned up
