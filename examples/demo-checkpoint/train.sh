#!/usr/bin/env bash
# How examples/demo-checkpoint/ was made (the exact command and seeds; ~10 min on 2 CPU cores):
# the synthetic world of generator seed 0 (1000 training videos), an MMN baseline head on the
# shipped tiny-shapes features, text tower frozen (so the checkpoint holds only the head).
# The best (= last) epoch's config.json and model.safetensors are what is shipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/demo-checkpoint-out}"
export VDI_HOME="$OUT/home" HF_HUB_OFFLINE=1
VDI="${VDI:-.venv/bin/vdi}"
$VDI datasets generate synthetic-shapes --out "$OUT/shapes" --videos 1000 --test-videos 100 \
  --seed 0 --force
$VDI train --dataset synthetic-shapes --annotations "$OUT/shapes/train.json" \
  --video-dir "$OUT/shapes/videos" --backbone tiny-shapes --fps 2 --epochs 8 \
  --batch-size 8 --lr 1e-3 --seed 0 --no-objective \
  -H hidden_size=64 -H conv_layers=4 -H temporal_delta=5 -H pool_linear=true -H pool_hidden=256 \
  -o freeze_text_epochs=8 -o patience=0 -o 'milestones=[7]' --json > "$OUT/train.json"
