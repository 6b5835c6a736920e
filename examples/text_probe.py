"""What a text tower knows about the synthetic world's queries, before and after training.

For the frozen `tiny-shapes` text tower and for the tower inside each given checkpoint, encode
every training and test-iid query of a generated world and report
- the mean pairwise cosine of the test sentence vectors (near 1: one direction dominates), and
- linear-probe accuracy (softmax regression fitted on the training queries' standardised
  vectors, scored on test-iid) for the query's action class and for its object (colour + shape).

On a world of version 4 (it has `test_novel_verb.json`) it also scores the action probe on the
test-novel-verb queries, whose verbs no training query uses, and, for the frozen tower, where
each held-out verb synonym lands among the trained ones (`verb_neighbours`): the check that
pretraining taught the held-out synonyms before any moment-retrieval training.

    .venv/bin/python examples/text_probe.py --data experiment-out/shapes \
        [--home VDI_HOME] [--backbone ID] [CHECKPOINT ...] [--json FILE]

A checkpoint is a folder such as VDI_HOME/stores/<store id>/runs/run-6/epoch-008 (`vdi runs
show ID` lists them).
This is how we found that fine-tuning the tower in `vdi train` loses what it knew
(docs/experiments.md, and "Which input holds it back" in examples/experiment-results/HISTORY.md).
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


def probe_tower(encode_texts, train, test, novel_verb=None) -> dict:
    x_train = encode(encode_texts, [a.query for a in train])
    x_test = encode(encode_texts, [a.query for a in test])
    (act_train, obj_train), (act_test, obj_test) = labels(train), labels(test)
    out = {"mean_pairwise_cosine": mean_pairwise_cosine(x_test),
           "action": linear_probe(x_train, act_train, x_test, act_test),
           "object": linear_probe(x_train, obj_train, x_test, obj_test)}
    if novel_verb:  # the probe fitted on trained synonyms, scored on held-out ones
        x_novel = encode(encode_texts, [a.query for a in novel_verb])
        out["action_novel_verb"] = linear_probe(x_train, act_train, x_novel,
                                                labels(novel_verb)[0])
    return out


def verb_neighbours(encode_texts, nouns: list[str]) -> dict:
    """Where each held-out verb synonym (world version 4) lands among the trained ones.

    A phrase's vector is the mean of its normalised sentence vectors over `nouns` ("the red
    square ..."), centred by the mean of all phrases (the noun part they share would make every
    cosine near 1). For each held-out synonym: the trained phrase nearest to it, its class, the
    rank (1 = nearest) of the nearest trained synonym of its own class among all trained
    phrases, and the cosines to that one and to the nearest of another class."""
    import torch.nn.functional as F

    from vdi_plugins.synthetic import verbs
    from vdi_plugins.synthetic.events import WORLD_ACTIONS

    trained = [(a, t) for a, ts in verbs.templates(False).items() if a in WORLD_ACTIONS
               for t in ts]  # the classes the world plans (not the dropped spin)
    held = [(a, t) for a in verbs.NOVEL_VERB_ACTIONS for t in verbs.HELD_OUT[a]]
    phrases = trained + held
    texts = [t.format(np=n, c2="blue") for _, t in phrases for n in nouns]
    x = F.normalize(encode(encode_texts, texts), dim=1).reshape(len(phrases), len(nouns), -1)
    v = x.mean(1)
    v = F.normalize(v - v.mean(0), dim=1)
    cos = v[len(trained):] @ v[:len(trained)].T
    rows = []
    for (action, template), c in zip(held, cos, strict=True):
        order = c.argsort(descending=True).tolist()
        own = [i for i in order if trained[i][0] == action]
        other = [i for i in order if trained[i][0] != action]
        rows.append({"held_out": template.replace("{np} ", ""), "action": action,
                     "nearest": trained[order[0]][1].replace("{np} ", ""),
                     "nearest_action": trained[order[0]][0],
                     "rank_own": order.index(own[0]) + 1, "cos_own": float(c[own[0]]),
                     "cos_other": float(c[other[0]])})
    return {"phrases": rows, "trained_phrases": len(trained),
            "nearest_is_own": sum(r["nearest_action"] == r["action"] for r in rows) / len(rows),
            "mean_rank_own": sum(r["rank_own"] for r in rows) / len(rows)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a generated synthetic-shapes folder")
    parser.add_argument("--home", help="VDI_HOME the checkpoints belong to")
    parser.add_argument("--backbone", help="the frozen tower (default: tiny-shapes-v2 for a "
                        "world of version 4, tiny-shapes otherwise)")
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
    novel_file = data / "test_novel_verb.json"
    novel = load_dataset("synthetic-shapes", novel_file).annotations if novel_file.is_file() \
        else None
    backbone_id = args.backbone or ("tiny-shapes-v2" if novel else "tiny-shapes")
    backbone = load_backbone(backbone_id)
    # the frozen tower read the way a model with the default text options reads it (no head)
    frozen = GroundingModel(backbone, head=None, head_id="", head_config={})
    results = {f"frozen {backbone_id}": probe_tower(frozen.encode_texts, train, test, novel)}
    verb_report = None
    if novel:
        from vdi_plugins.synthetic.generate import vocabulary

        vocab = vocabulary("train")
        nouns = [f"the {c} {s}" for c in vocab["colour"] for s in vocab["shape"]]
        verb_report = verb_neighbours(frozen.encode_texts, nouns)
        results[f"frozen {backbone_id}"]["verbs"] = verb_report
    for checkpoint in args.checkpoints:  # each loads its fine-tuned tower into the backbone
        model, _ = load_model(checkpoint, backbone=backbone)
        # the model's own encoding: its text_pool and context length, as at train time
        results[checkpoint] = probe_tower(model.encode_texts, train, test, novel)
    print(f"{'text tower':<44} {'cos':>5}  {'action (train/test)':>19}  "
          f"{'object (train/test)':>19}")
    for name, r in results.items():
        print(f"{name[-44:]:<44} {r['mean_pairwise_cosine']:>5.3f}  "
              f"{r['action'][0]:>9.3f}/{r['action'][1]:.3f}  "
              f"{r['object'][0]:>9.3f}/{r['object'][1]:.3f}")
    if novel:
        print("action probe on test-novel-verb (held-out synonyms): " + ", ".join(
            f"{name[-30:]} {r['action_novel_verb'][1]:.3f}" for name, r in results.items()))
    if verb_report:
        print_verbs(verb_report)
    print(f"(chance: action {1 / len(set(labels(train)[0])):.3f}; test queries {len(test)})",
          file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    return results


def print_verbs(report: dict) -> None:
    print(f"{'held-out synonym':<18} {'class':<7} {'nearest trained phrase':<22} "
          f"{'rank own':>8} {'cos own':>7} {'cos other':>9}")
    for r in report["phrases"]:
        print(f"{r['held_out']:<18} {r['action']:<7} {r['nearest']:<22} {r['rank_own']:>8} "
              f"{r['cos_own']:>7.3f} {r['cos_other']:>9.3f}")
    print(f"nearest trained phrase of its own class: {report['nearest_is_own']:.2f}; mean rank "
          f"of its own class's nearest {report['mean_rank_own']:.2f} of "
          f"{report['trained_phrases']} trained phrases")


if __name__ == "__main__":
    main()
