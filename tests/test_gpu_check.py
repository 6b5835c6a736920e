"""benchmarks/gpu_check.sh and its Python helpers, on the CPU: everything but the GPU itself.

The helpers run their `--quick` CPU modes in-process (tiny model, real videos, real training
steps); the script runs once on this CPU-only machine asking for cuda, where the steps that need
a GPU must fail, be reported, and not stop the others."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.slow
def test_step_time_helper_on_cpu(capsys):
    assert _load("gpu_step_time").main(["--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "VDI step: 4 videos" in out and "random weights are fine for timing" in out
    # ceil(5336 Charades-STA training videos / 4 per step) = 1334 steps
    for label in ("fp32", "autocast (no-op on cpu)"):
        assert f"step {label}: " in out
    assert out.count("a Charades-STA epoch (1334 steps of 4 videos) ~ ") == 2


@pytest.mark.slow
def test_extraction_rate_helper_on_cpu(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))  # the helper sets its own
    assert _load("bench_extract_scaling").main(["--quick", "--no-shards"]) == 0
    out = capsys.readouterr().out
    assert "2 videos of 2 s 160x90 at 25 fps" in out and "model rate (bare forward" in out
    # 2 videos x 2 s x 2 fps = 8 frames, through one thread and through 2 processes
    assert "workers 0: decode rate" in out and "for 8 frames), 1.00x workers 0" in out
    assert "workers 2: decode rate" in out and out.count("features identical") == 2


@pytest.mark.slow
def test_gpu_check_reports_each_failed_step_and_goes_on(tmp_path):
    """Asked for cuda on a machine without one: the environment, extraction and step-time
    steps fail (said so, with the reason), the gpu tests step still runs (its tests skip), DDP
    is skipped, the summary counts 3 failures and the exit status is 1."""
    env = {**os.environ, "GPU_CHECK_DEVICE": "cuda", "GPU_CHECK_QUICK": "1",
           "VDI_PYTHON": sys.executable, "VDI_HOME": str(tmp_path / "home"),
           "VDI_DB": str(tmp_path / "vdi.db")}
    proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], env=env, text=True,
                          capture_output=True, timeout=420)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "no CUDA device" in out and "-- environment: FAILED" in out
    assert "-- gpu-marked tests: ok" in out
    assert "-- extraction frames/s: FAILED" in out and "-- VDI training step: FAILED" in out
    assert "== DDP on nccl: skipped" in out
    assert ("3 step(s) failed: environment extraction frames/s VDI training step" in out)
