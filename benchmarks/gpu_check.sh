#!/usr/bin/env bash
# The GPU check of issue 22, for a machine with a GPU, unattended, offline, in under 8 minutes:
#   1. the environment (torch, CUDA, GPUs)
#   2. the `gpu`-marked tests
#   3. extraction frames/s, ViT-B-32 fp16, with the decode rate beside the model rate
#   4. one VDI training step, MMN's full Charades head, batch 48: fp32 and autocast
#   5. the 2-process DDP test on nccl (tests/test_ddp.py::test_ddp_nccl_two_gpus), when two GPUs
#      exist and the test does
# Every step has its own timeout; a failed step is reported and the others still run; the exit
# status is 1 when any step failed. ViT-B-32 runs with random weights (no network there): fine
# for timing, and said so in the output.
#
#   bash benchmarks/gpu_check.sh                     # on the GPU machine
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 bash benchmarks/gpu_check.sh   # smoke test on a CPU
# Python: $VDI_PYTHON, else .venv/bin/python (what `make setup` makes), else a python3 that can
# import vdi_cli, else `make setup` is run.
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
QUICK="${GPU_CHECK_QUICK:-0}"
START=$(date +%s)
FAILED=()

if [ -n "${VDI_PYTHON:-}" ]; then PY="$VDI_PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
elif python3 -c "import vdi_cli" 2>/dev/null; then PY=python3
else
  echo "== no venv: make setup (the README's install) =="
  timeout 600 make setup || { echo "FAIL setup: make setup failed"; exit 1; }
  PY=.venv/bin/python
fi

step() {  # step NAME SECONDS COMMAND...: run it with a timeout, record a failure
  local name="$1" limit="$2"; shift 2
  echo
  echo "== $name (timeout ${limit}s) =="
  local t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ $rc -eq 0 ]; then echo "-- $name: ok ($(( $(date +%s) - t0 )) s)"
  else
    [ $rc -eq 124 ] && echo "-- $name: FAILED, timed out after ${limit} s" \
                    || echo "-- $name: FAILED (exit $rc)"
    FAILED+=("$name")
  fi
}

gpus=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
step environment 60 "$PY" benchmarks/gpu_env.py "$DEVICE"

# pytest exits 5 when it collects nothing: that is a failure here too
step "gpu-marked tests" 120 bash -c '"$0" -m pytest -q -p no:cacheprovider -m gpu -rs tests/
rc=$?; [ $rc -eq 5 ] && { echo "no gpu-marked test was collected"; exit 1; }; exit $rc' "$PY"

if [ "$QUICK" = 1 ]; then
  EXTRACT=(--quick --no-shards --device "$DEVICE")
  STEP=(--quick --device "$DEVICE")
else
  W=$(( $(nproc) - 1 )); [ $W -gt 15 ] && W=15; [ $W -lt 1 ] && W=1
  EXTRACT=(--backbone open_clip:ViT-B-32 --device "$DEVICE" --precision fp16 --batch-size 256
           --videos 16 --seconds 30 --size 480x270 --video-fps 24 --fps 8
           --workers "0,$(( (W + 1) / 2 )),$W" --no-shards)
  STEP=(--device "$DEVICE" --repeats 10)
fi
step "extraction frames/s" 150 "$PY" benchmarks/bench_extract_scaling.py "${EXTRACT[@]}"
step "VDI training step" 90 "$PY" benchmarks/gpu_step_time.py "${STEP[@]}"

if [ ! -f tests/test_ddp.py ]; then
  echo; echo "== DDP on nccl: skipped (tests/test_ddp.py is not in this checkout yet) =="
elif [ "$gpus" -lt 2 ]; then
  echo; echo "== DDP on nccl: skipped ($gpus GPU$([ "$gpus" = 1 ] || echo s); it needs 2) =="
else
  step "DDP on nccl, 2 processes" 90 "$PY" -m pytest -q -p no:cacheprovider -rs \
    "tests/test_ddp.py::test_ddp_nccl_two_gpus"
fi

echo
echo "== gpu_check: $(( $(date +%s) - START )) s in all; ${#FAILED[@]} step(s) failed${FAILED[*]:+: ${FAILED[*]}} =="
[ ${#FAILED[@]} -eq 0 ]
