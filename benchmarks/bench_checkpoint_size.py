"""Checkpoint size of a CLIP ViT-B/32 run with a tiny MMN head (random weights, offline).

Trains `open_clip:ViT-B-32` (pretrained=None: random weights, nothing downloaded) for 2 epochs
on 4 generated videos with the whole text tower trainable from epoch 1, keeping every epoch,
then prints each epoch folder's files and sizes. The frozen visual tower is never stored; the
text tensors are stored once trained; only the newest epoch keeps the optimiser state, which
resume needs (AdamW: two moments per trained tensor). Also prints what the same epoch held
before (weights + optimiser state in every epoch).

Run: .venv/bin/python benchmarks/bench_checkpoint_size.py [--work DIR]   (~2 min on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="vdi-ckpt-size-"))
    os.environ.update(VDI_HOME=str(work / "home"), VDI_DB=str(work / "vdi.db"),
                      HF_HUB_OFFLINE="1")
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.runs import run_context
    from vdi_cli.store import get_run, open_db
    from vdi_plugins.synthetic.generate import generate

    generate(work / "data", videos=4, seed=5, test_videos=0, fps=2, size=32)
    config = TrainConfig(
        dataset="mmn-json", annotations=str(work / "data" / "train.json"),
        video_dir=str(work / "data" / "videos"), backbone="open_clip:ViT-B-32", fps=1,
        epochs=2, batch_size=2, lr=1e-4, patience=0, freeze_text_epochs=0, objectives=[],
        head_options={"hidden_size": 32, "joint_size": 16, "conv_layers": 2},
        context_length=32, keep_checkpoints="all")
    db = open_db()
    with run_context(db, "train", config.resolved().model_dump()) as run:
        run_training(config, db, run, quiet=True, show_progress=False)
    for row in sorted(get_run(db, run.id)["checkpoints"], key=lambda r: r["epoch"]):
        folder = Path(row["path"])
        sizes = {f.name: f.stat().st_size for f in sorted(folder.iterdir())}
        print(f"epoch {row['epoch']}: {sum(sizes.values()) / 1e6:.1f} MB  "
              + "  ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    newest = sizes
    print(f"before (every epoch): {sum(newest.values()) / 1e6:.1f} MB; now: epochs before the "
          f"newest {(newest['config.json'] + newest['model.safetensors']) / 1e6:.1f} MB, "
          "the newest as above")


if __name__ == "__main__":
    main()
