"""Query parsing speed through the CLI against spaCy's own pipeline, measured in one run.

What a user waits for, on a dataset's sentences (default: ActivityNet Captions val, 17,505
sentences, 17,339 distinct, in ../shared/data):
  spacy     spaCy's own pipeline with the components the `spacy` parser uses (NER excluded),
            `nlp.pipe` + noun_chunks over the distinct sentences, load excluded, in a fresh
            process as a user's own script runs it (its first batches included, as in the
            CLI's), run before and after the CLI and averaged (the machine is shared); the
            rate warmed up in this process is printed beside it
  start-up  `vdi parse "one sentence"` with an empty store: process start to exit, spaCy's
            load included (what every parse command pays before its first sentence)
  parse     `vdi parse --dataset FORMAT --annotations FILE` with an empty store
            (sentences/s = distinct sentences / (its time - start-up))
  cached    the same command again: every parse is read back from the store

Targets (issue 21): parse >= 0.9x spaCy's sentences/s, start-up < 3 s, cached < 2 s.

Usage: .venv/bin/python benchmarks/bench_parse.py [--annotations FILE --dataset FORMAT]
       [--limit N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "activitynet" / "val.json"


def sentences(path: Path, dataset: str) -> list[str]:
    """Every query of the file, as the dataset plugin reads it."""
    from vdi_cli.datasets import load_dataset

    report = load_dataset(dataset, path, need_answers=False)
    return [a.query for a in report.all_queries() if a.query and a.query.strip()]


def spacy_rate(texts: list[str], batch_size: int) -> float:
    """Sentences/s of spaCy's own pipeline with the parser plugin's components."""
    from vdi_cli.registry import get_component

    parser = get_component("parser", "spacy").build({"batch_size": batch_size})
    nlp = parser.nlp  # the same pipeline object the plugin parses with: same components
    list(nlp.pipe(texts[:200]))  # warm
    start = time.perf_counter()
    for doc in nlp.pipe([" ".join(t.split()) for t in texts], batch_size=batch_size):
        list(doc.noun_chunks)
    return len(texts) / (time.perf_counter() - start)


FRESH = """
import json, sys, time
from vdi_cli.registry import get_component
texts = json.load(open(sys.argv[1], encoding="utf-8"))
nlp = get_component("parser", "spacy").build({"batch_size": int(sys.argv[2])}).nlp
start = time.perf_counter()
for doc in nlp.pipe([" ".join(t.split()) for t in texts], batch_size=int(sys.argv[2])):
    list(doc.noun_chunks)
print(len(texts) / (time.perf_counter() - start))
"""


def spacy_fresh_rate(texts: list[str], batch_size: int, work: Path) -> float:
    """Sentences/s of spaCy's own pipeline (same components) in a fresh process, load
    excluded but its first batches included: what a user's own script gets, and what a fresh
    `vdi parse` is compared with."""
    path = work / "texts.json"
    path.write_text(json.dumps(texts), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", FRESH, str(path), str(batch_size)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the spaCy reference failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def cli(args: list[str], home: Path) -> float:
    """Seconds one `vdi` process takes, start to exit (stdout discarded)."""
    env = {**os.environ, "VDI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vdi_cli", *args], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"vdi {' '.join(args)} failed:\n{done.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", type=Path, default=DEFAULT)
    ap.add_argument("--dataset", default="mmn-json")
    ap.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    if not args.annotations.exists():
        print(f"no {args.annotations}; pass --annotations FILE --dataset FORMAT",
              file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("VDI_PLUGINS", "")
    work = Path(tempfile.mkdtemp(prefix="bench-parse-"))
    annotations = args.annotations
    texts = sentences(annotations, args.dataset)
    if args.limit:
        texts = texts[:args.limit]
        annotations = work / "queries.txt"
        annotations.write_text("\n".join(texts) + "\n", encoding="utf-8")
    distinct = list(dict.fromkeys(texts))
    source = (["--file", str(annotations)] if args.limit else
              ["--dataset", args.dataset, "--annotations", str(annotations)])
    batch = ["--parser-option", f"batch_size={args.batch_size}"]

    warm = spacy_rate(distinct, args.batch_size)
    before = spacy_fresh_rate(distinct, args.batch_size, work)
    startup = cli(["parse", "a person opens the door", *batch], work / "home-startup")
    parse = cli(["parse", *source, *batch], work / "home")
    cached = cli(["parse", *source, *batch], work / "home")
    after = spacy_fresh_rate(distinct, args.batch_size, work)
    reference = (before + after) / 2
    rate = len(distinct) / max(parse - startup, 1e-9)

    import spacy

    print(f"{len(texts)} sentences ({len(distinct)} distinct) from {annotations.name}; "
          f"spaCy {spacy.__version__}; batch size {args.batch_size}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  spacy      {reference:7.0f} sentences/s in a fresh process (before {before:.0f}, "
          f"after {after:.0f}); warmed up in this one: {warm:.0f}")
    print(f"  start-up   {startup:7.2f} s      target < 3 s: "
          f"{'met' if startup < 3 else 'NOT met'}")
    print(f"  parse      {parse:7.2f} s      {rate:.0f} sentences/s after start-up = "
          f"{rate / reference:.2f}x spaCy; target >= 0.9x: "
          f"{'met' if rate >= 0.9 * reference else 'NOT met'}")
    print(f"  cached     {cached:7.2f} s      target < 2 s: "
          f"{'met' if cached < 2 else 'NOT met'}")
    if args.json:
        print(json.dumps({"sentences": len(texts), "distinct": len(distinct),
                          "spacy_per_s": reference, "spacy_warm_per_s": warm,
                          "startup_s": startup, "parse_s": parse, "parse_per_s": rate,
                          "ratio": rate / reference, "cached_s": cached}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
