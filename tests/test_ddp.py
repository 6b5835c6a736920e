"""`vdi train` under torchrun: 2 gloo ranks x (global batch 2B split) equal 1 process x 2B.

Tolerances (float32 sums in another order; both sides on one CPU thread per process):
- loss terms: relative 1e-5 (seen: ~1e-7);
- gradients, tensor by tensor: max |diff| <= 1e-4 x max |grad| of that tensor + 1e-8 (seen:
  2.4e-6 relative);
- trained tensors after the steps: 1e-5 absolute, except the tensors whose true gradient is
  zero (conv biases before BatchNorm, attention in-projection biases: softmax and BatchNorm
  cancel them), where AdamW turns float noise into steps of up to lr each, and the BatchNorm
  running means that follow those biases: steps x lr.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

# tensors float noise drives: zero true gradient (BatchNorm / softmax cancel them), and the
# running means that follow those conv biases
NOISE_DRIVEN = re.compile(r"(convs\.\d+\.bias|in_proj_bias|bns\.\d+\.running_mean)$")
ARGS = ("train", "--dataset", "mmn-json", "--annotations", "{data}/train.json", "--val",
        "{data}/test_iid.json", "--video-dir", "{data}/videos", "--backbone", "tiny-shapes",
        "--fps", "2", "--batch-size", "4", "-H", "hidden_size=32", "-H", "conv_layers=2",
        "-o", "patience=0", "-o", "freeze_text_epochs=1", "--seed", "3", "--json")


def torchrun(nproc: int, args: list[str], env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m ARGS`."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={nproc}", "-m", *args], capture_output=True,
                          text=True, env=full, timeout=timeout)


def steps(tmp: Path, nproc: int, *extra: str) -> dict[str, Any]:
    out = tmp / f"steps-{nproc}.pt"
    args = ["vdi_cli.testing_ddp", "--out", str(out), "--steps", "3", "--batch", "5",
            "--freeze-text-epochs", "1", *extra]
    if nproc == 1:
        done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    else:
        done = torchrun(nproc, args)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


def assert_same_steps(one: dict[str, Any], two: dict[str, Any], lr: float = 1e-3,
                      floor: float = 0.0) -> None:
    """`floor`: a gradient tolerance relative to the largest gradient of the step (GPU kernels
    may add noise to the tensors whose true gradient is zero)."""
    assert two["world"] == 2 and one["world"] == 1
    for a, b in zip(one["losses"], two["losses"], strict=True):
        assert sorted(a) == sorted(b)
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k
    for step, (a, b) in enumerate(zip(one["grads"], two["grads"], strict=True), start=1):
        # step 1 trains with the text tower frozen: no text gradient on either side
        assert sorted(a) == sorted(b)
        assert any(k.startswith("text.") for k in a) == (step > 1)
        biggest = max(float(g.abs().max()) for g in a.values())
        for k in a:
            # a tensor whose true gradient is zero (a conv bias before BatchNorm) holds float32
            # rounding of the step's sums: tolerated at a few ulps of the largest gradient
            noise = 1e-6 * biggest if NOISE_DRIVEN.search(k) else 0.0
            tol = 1e-4 * float(a[k].abs().max()) + 1e-8 + max(floor * biggest, noise)
            assert float((a[k] - b[k]).abs().max()) <= tol, (step, k)
    n = len(one["losses"])
    for k, p in one["params"].items():
        tol = 2 * n * lr if NOISE_DRIVEN.search(k) else 1e-5  # see the resume test
        assert float((p - two["params"][k]).abs().max()) <= tol, k


@pytest.mark.slow
def test_two_gloo_ranks_take_the_steps_of_one_process(tmp_path) -> None:
    """Losses, every step's gradients (text tower frozen, then trained; VDI objectives with
    dropout on) and the trained tensors of 2 ranks equal one process on the same global
    batch."""
    assert_same_steps(steps(tmp_path, 1), steps(tmp_path, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                    reason="needs two CUDA devices")
def test_ddp_nccl_two_gpus(tmp_path) -> None:
    """The same equivalence on nccl, one rank per GPU (float32: --no-amp)."""
    assert_same_steps(steps(tmp_path, 1, "--device", "cuda", "--no-amp"),
                      steps(tmp_path, 2, "--device", "cuda", "--no-amp"), floor=1e-6)


def test_shard_range_splits_in_order() -> None:
    from vdi_cli.distributed import shard_range

    assert [shard_range(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard_range(1, 2, r) for r in range(2)] == [(0, 1), (1, 1)]
    assert [shard_range(4, 2, r) for r in range(2)] == [(0, 2), (2, 4)]


def test_without_nproc() -> None:
    from vdi_cli.commands._train_ranks import without_nproc

    assert without_nproc(["train", "--nproc", "2", "--epochs", "3"]) == ["train", "--epochs",
                                                                           "3"]
    assert without_nproc(["--db", "x", "train", "--nproc=4"]) == ["--db", "x", "train"]


def test_single_process_session_is_not_distributed(monkeypatch) -> None:
    from vdi_cli.distributed import start, under_torchrun

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    session = start("cpu")
    assert not under_torchrun() and not session.active and session.is_main
    assert session.broadcast(5) == 5 and session.gather_objects("a") == ["a"]
    session.close()


# --- the CLI: torchrun ... vdi train, --nproc, --resume ------------------------------------

def _fill(args: tuple[str, ...], data: Path) -> list[str]:
    return [a.replace("{data}", str(data)) for a in args]


def _db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _newest_weights(db: Path, run: int) -> dict[str, Any]:
    from vdi_cli.checkpoints import load_tensors

    path = _db_rows(db, f"select path from checkpoints where run_id = {run} "
                    "order by epoch desc limit 1")[0][0]
    return load_tensors(path)


@pytest.mark.slow
def test_torchrun_train_equals_one_process_then_resumes(tmp_path, monkeypatch) -> None:
    """`torchrun --nproc-per-node 2 -m vdi_cli train` (1 epoch) writes one run row, one
    checkpoint and the single process's losses and validation metrics; `vdi train --resume 1
    --epochs 2 --nproc 2` then continues to the single process's epoch-2 weights."""
    from vdi_cli.testing import run_vdi
    from vdi_plugins.synthetic.generate import generate

    data = tmp_path / "data"
    generate(data, videos=8, seed=7, test_videos=2, fps=2, size=32)
    home = tmp_path / "home"
    one_db, two_db = tmp_path / "one.db", tmp_path / "two.db"
    args = _fill(ARGS, data)
    one = run_vdi([*args, "--epochs", "2"], env={"VDI_DB": str(one_db), "VDI_HOME": str(home),
                                                "OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(2, ["vdi_cli", *args, "--epochs", "1"],
                   env={"VDI_DB": str(two_db), "VDI_HOME": str(home)})
    assert two.returncode == 0, two.stderr[-3000:]
    summary = json.loads(two.stdout)  # rank 0 alone prints: one JSON document
    assert summary["run_id"] == 1 and summary["ranks"] == 2
    assert _db_rows(two_db, "select id, status from runs") == [(1, "ok")]
    assert _db_rows(two_db, "select run_id, epoch from checkpoints") == [(1, 1)]
    runs = sorted(p.name for p in (home / "stores").glob("*/runs/*"))
    assert runs == ["run-1", "run-1"]  # one folder per database: one.db's and two.db's
    sql = "select split, name, value from metrics where epoch = 1 order by split, name"
    want, got = _db_rows(one_db, sql), _db_rows(two_db, sql)
    assert [r[:2] for r in got] == [r[:2] for r in want] and len(got) > 8
    for (split, name, a), (_, _, b) in zip(want, got, strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6), (split, name)

    resumed = run_vdi(["train", "--resume", "1", "--epochs", "2", "--nproc", "2", "--json"],
                      env={"VDI_DB": str(two_db), "VDI_HOME": str(home)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["resumed_from"] == 1
    assert _db_rows(two_db, "select id, status from runs") == [(1, "ok"), (2, "ok")]
    a, b = _newest_weights(one_db, 1), _newest_weights(two_db, 2)
    assert sorted(a) == sorted(b)
    for k in a:  # 4 steps at lr 1e-4 (the preset's); AdamW moves a noise-driven tensor up to
        # ~lr a step on each side, possibly in opposite directions: 2 x steps x lr
        tol = 2 * 4 * 1e-4 if NOISE_DRIVEN.search(k) else 1e-5
        assert float((a[k].float() - b[k].float()).abs().max()) <= tol, k
