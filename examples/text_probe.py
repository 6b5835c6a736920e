"""What a text tower knows about the synthetic world's queries, before and after training.

For the frozen `tiny-shapes` text tower and for the tower inside each given checkpoint, encode
every training and test-iid query of a generated world and report
- the mean pairwise cosine of the test sentence vectors (near 1: one direction dominates), and
- linear-probe accuracy (softmax regression fitted on the training queries' standardised
  vectors, scored on test-iid) for the query's action class and for its object (colour + shape).

    .venv/bin/python examples/text_probe.py --data experiment-out/shapes \
        [--home VDI_HOME] [CHECKPOINT ...] [--json FILE]

A checkpoint is a folder such as VDI_HOME/stores/<store id>/runs/run-6/epoch-008 (`vdi runs
show ID` lists them).
This is how we found that fine-tuning the tower in `vdi train` loses what it knew (README,
"Which input holds it back").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def mean_pairwise_cosine(x):
    """Mean cosine over all ordered pairs of distinct rows of x [n, d] (n >= 2)."""
    import torch.nn.functional as F

    c = F.normalize(x, dim=1)
    n = len(c)
    return float(((c @ c.T).sum() - (c * c).sum()) / (n * (n - 1)))


def linear_probe(x_train, y_train: list[str], x_test, y_test: list[str], steps: int = 300,
                 seed: int = 0) -> tuple[float, float]:
    """(train, test) accuracy of a softmax regression fitted by Adam (lr 0.01, `steps` full-batch
    steps) on x_train standardised by its own mean and std; a test label never seen in training
    counts as wrong."""
    import torch

    classes = sorted(set(y_train))
    index = {c: i for i, c in enumerate(classes)}
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    ya = torch.tensor([index[c] for c in y_train])
    yb = torch.tensor([index.get(c, -1) for c in y_test])
    torch.manual_seed(seed)
    probe = torch.nn.Linear(a.shape[1], len(classes))
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(probe(a), ya).backward()
        optimizer.step()
    with torch.no_grad():
        return (float((probe(a).argmax(1) == ya).float().mean()),
                float((probe(b).argmax(1) == yb).float().mean()))


def labels(anns) -> tuple[list[str], list[str]]:
    """Each query's action class and its object words (colour and shape, in order)."""
    from vdi_plugins.synthetic.world import COLOURS, SHAPES

    objects = [" ".join(w for w in a.query.lower().split() if w in COLOURS or w in SHAPES)
               for a in anns]
    return [a.extra["actions"] for a in anns], objects


def encode(encode_texts, texts: list[str], batch: int = 256):
    """`encode_texts` (a grounding model's, or the frozen tower's) over texts in batches."""
    import torch

    with torch.no_grad():
        return torch.cat([encode_texts(texts[i:i + batch]).float()
                          for i in range(0, len(texts), batch)])


def probe_tower(encode_texts, train, test) -> dict:
    x_train = encode(encode_texts, [a.query for a in train])
    x_test = encode(encode_texts, [a.query for a in test])
    (act_train, obj_train), (act_test, obj_test) = labels(train), labels(test)
    return {"mean_pairwise_cosine": mean_pairwise_cosine(x_test),
            "action": linear_probe(x_train, act_train, x_test, act_test),
            "object": linear_probe(x_train, obj_train, x_test, obj_test)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a generated synthetic-shapes folder")
    parser.add_argument("--home", help="VDI_HOME the checkpoints belong to")
    parser.add_argument("checkpoints", nargs="*", help="checkpoint folders to probe")
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args(argv)
    if args.home:
        os.environ["VDI_HOME"] = str(Path(args.home).resolve())
    from vdi_cli.backbones import load_backbone
    from vdi_cli.datasets import load_dataset
    from vdi_cli.model import GroundingModel, load_model

    data = Path(args.data)
    train = load_dataset("synthetic-shapes", data / "train.json").annotations
    test = load_dataset("synthetic-shapes", data / "test_iid.json").annotations
    backbone = load_backbone("tiny-shapes")
    # the frozen tower read the way a model with the default text options reads it (no head)
    frozen = GroundingModel(backbone, head=None, head_id="", head_config={})
    results = {"frozen tiny-shapes": probe_tower(frozen.encode_texts, train, test)}
    for checkpoint in args.checkpoints:  # each loads its fine-tuned tower into the backbone
        model, _ = load_model(checkpoint, backbone=backbone)
        # the model's own encoding: its text_pool and context length, as at train time
        results[checkpoint] = probe_tower(model.encode_texts, train, test)
    print(f"{'text tower':<44} {'cos':>5}  {'action (train/test)':>19}  "
          f"{'object (train/test)':>19}")
    for name, r in results.items():
        print(f"{name[-44:]:<44} {r['mean_pairwise_cosine']:>5.3f}  "
              f"{r['action'][0]:>9.3f}/{r['action'][1]:.3f}  "
              f"{r['object'][0]:>9.3f}/{r['object'][1]:.3f}")
    print(f"(chance: action {1 / len(set(labels(train)[0])):.3f}; test queries {len(test)})",
          file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
