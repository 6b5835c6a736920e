"""Benchmark of `vdi index` + `vdi search`: build cost, bytes, query latency, memory and recall.

Model: MMN with the Charades preset (N = 16, 136 valid cells a window, 8 conv layers of 5x5,
hidden 512, joint 256, so search vectors of 512 dimensions) and random weights, on ViT-B-32 with
random weights (D = 512), 1 fps, windows of `--span` s (30) with overlap 0.5: 240 windows and
32,640 proposals an hour of video. No decoding anywhere, and nothing is downloaded.

1. Build, the real path: frame features for `--build-hours` of video are written straight into
   the feature cache with the extract stage's own writer and commit (`FeatureWriter`,
   `extract._commit`; a 1-patch grid: indexing reads only the global features), then
   `build_index` runs as `vdi index build` does (the extract stage finds every video cached, the
   head's `encode_proposals` on every window, the .npy files, FAISS). Per kind: seconds and
   bytes an hour of video (FAISS file, exact .npy vectors).
2. Search, SIMULATED proposal vectors: for each library size in `--sizes` (hours), videos of
   `--video-minutes` get unit proposal vectors drawn from a mixture (topics -> per-video centre
   -> per-window centre -> per-cell vector, in both joint spaces) at the count and dimension the
   head gives, written as an index's .npy files (a rows file a video, as `vdi index` writes);
   each kind's FAISS index and SQLite rows are made from them with the real `VectorIndex` and
   commit. Queries come from the same
   distribution (around one window of a random video). Searched through `LibrarySearcher`
   (stage 1 FAISS, stage 2 the head's exact `score_proposals` + per-video NMS) in a warm worker
   process: p50 / p95 over `--queries` queries (the text tower's time for one sentence is given
   apart), peak RSS of that process and the FAISS file size. Recall@10 = overlap of the top-10
   moments with the exhaustive top-10 (every proposal of every video scored, as `vdi retrieve`
   does). A size that does not fit this machine's free memory or disk is skipped with the
   estimate from the measured bytes per proposal.

Run: .venv/bin/python benchmarks/bench_search.py [--quick] [--sizes 100,1000] [--kinds ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUICK_ARCH = "vdi-bench-512"  # a tiny open_clip with a 512-dimensional joint space (--quick)
QUICK_CONFIG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TOP = 10


def register_quick_arch() -> None:
    from vdi_cli.compat.torchvision_shim import ensure_torchvision
    from vdi_cli.store.db import app_dir

    ensure_torchvision()
    import open_clip

    if QUICK_ARCH not in open_clip.list_models():
        path = app_dir() / f"{QUICK_ARCH}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(QUICK_CONFIG), encoding="utf-8")
        open_clip.add_model_config(path)


def make_checkpoint(backbone_id: str, folder: Path, hidden: int, span: float,
                    reuse: bool = False) -> Path:
    """The Charades-preset MMN head with random weights, saved as `vdi train` saves one (the
    recorded training span `durations.max` is the window). `reuse` (--keep): the one a kept
    run saved there, as it is (the same seed makes the same weights): writing its 445 MB
    again just before the searches slowed their cold reads (p50 102 ms against 86 ms 30 s
    later, the host's disk still busy with the write)."""
    if reuse and (folder / "config.json").is_file():
        return folder
    import torch

    from vdi_cli import __version__
    from vdi_cli.backbones import load_backbone
    from vdi_cli.checkpoints import save_checkpoint
    from vdi_cli.model import build_model

    torch.manual_seed(0)
    backbone = load_backbone(backbone_id, device="cpu")
    model = build_model(backbone, "mmn", {"preset": "charades", "hidden_size": hidden})
    config = {
        "vdi_version": __version__, "epoch": 0, "metrics": {},
        "backbone": {"id": backbone.id, "weights": backbone.weights_id, "weights_path": None,
                     "options": {}, "embed_dim": backbone.embed_dim,
                     "patch_grid": list(backbone.patch_grid)},
        "sampling": {"fps": 1.0}, "context_length": None,
        "head": {"id": "mmn", "config": model.head_config},
        "durations": {"min": span / 2, "max": span, "mean": span},
        "note": "benchmark: random weights",
    }
    path, _ = save_checkpoint(folder, config, model.state_tensors())
    return path


def write_cached_videos(db: Any, retriever: Any, folder: Path, hours: float, minutes: float
                        ) -> list[Any]:
    """Stand-in video files (unique bytes, so unique content hashes) whose frame features are
    committed to the feature cache exactly as `vdi extract` commits them."""
    from types import SimpleNamespace

    from vdi_cli.features import FeatureWriter, features_dir
    from vdi_cli.pipeline.extract import ExtractReport, VideoOutcome, _commit
    from vdi_cli.pipeline.retrieve import VideoInput
    from vdi_cli.store.hashes import cached_sha256
    from vdi_cli.video import Sampling

    bb = retriever.loaded.backbone
    sampling = Sampling.from_any(retriever.loaded.sampling)
    report = ExtractReport(bb.id, bb.weights_id, sampling.to_dict(), "float16", "cpu")
    rng = np.random.default_rng(1)
    count = max(1, round(hours * 60 / minutes))
    frames = int(round(minutes * 60))
    out = []
    for i in range(count):
        path = folder / f"sim{i:05d}.video"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"simulated video {i}\n".encode() + rng.bytes(64))
        outcome = VideoOutcome(path=str(path.resolve()), name=path.stem,
                               sha256=cached_sha256(db, path))
        feats = np.cumsum(rng.standard_normal((frames, bb.embed_dim), np.float32), 0)
        with FeatureWriter("float16") as writer:
            writer.append(feats, np.zeros((frames, 1, bb.embed_dim), np.float32),
                          [float(t) for t in range(frames)])
            info = SimpleNamespace(duration=float(frames), fps=1.0, width=64, height=64,
                                   num_frames=frames)
            _commit(db, report, outcome, writer, info, bb, sampling, features_dir(), None)
        out.append(VideoInput(path.stem, path))
    return out


def part_build(args: argparse.Namespace, db: Any, ckpt: Path, tmp: Path) -> dict[str, Any]:
    from vdi_cli.pipeline.index import build_index
    from vdi_cli.pipeline.retrieve import Retriever

    retriever = Retriever(db, checkpoint=str(ckpt))
    videos = write_cached_videos(db, retriever, tmp / "build", args.build_hours,
                                 args.video_minutes)
    hours = len(videos) * args.video_minutes / 60
    print(f"\n[1] build, the real path: {len(videos)} videos of {args.video_minutes:g} min "
          f"({hours:g} h), features written into the cache; Charades MMN head (hidden "
          f"{args.hidden}), random weights, window {args.span:g} s, overlap 0.5")
    print(f"    {'kind':6s} {'s/hour':>8s} {'proposals/h':>12s} {'FAISS MB/h':>11s} "
          f"{'.npy MB/h':>10s}")
    per_prop: dict[str, float] = {}
    for kind in args.kinds:
        t0 = time.perf_counter()
        rep = build_index(db, f"real-{kind}", videos, kind=kind, checkpoint=str(ckpt),
                          options=kind_options(args, kind))
        wall = time.perf_counter() - t0
        index = _index_row(db, f"real-{kind}")
        faiss_b = Path(index["path"]).stat().st_size
        npy_b = sum(f.stat().st_size for f in (Path(index["path"]).parent / "videos").glob("*"))
        per_prop[kind] = faiss_b / rep.proposals
        print(f"    {kind:6s} {wall / hours:8.1f} {rep.proposals / hours:12.0f} "
              f"{faiss_b / hours / 1e6:11.1f} {npy_b / hours / 1e6:10.1f}")
    per_prop["npy"] = npy_b / rep.proposals
    return per_prop


def kind_options(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    if kind == "ivfpq" and args.nlist:
        return {"nlist": args.nlist}
    return {}


def _index_row(db: Any, name: str) -> dict[str, Any]:
    from vdi_cli.store.indexes import get_index

    return get_index(db, name)


# ---- simulated libraries ---------------------------------------------------------------------
def _noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return rng.standard_normal(shape, np.float32) * np.float32(scale / np.sqrt(shape[-1]))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def simulated_video(seed: int, slot: int, windows: int, cells: int, joint: int
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({space: [W, C, J] unit vectors}, {space: [W, J] window centres}): topic -> video centre
    -> window centre -> cell, noise 0.8 at each level (cos(cell, window) ~ 0.78, two cells of a
    window ~ 0.6), so a query's best proposals are spread over windows and videos."""
    topics = np.random.default_rng([seed, 0])
    rng = np.random.default_rng([seed, 1, slot])
    vecs, centres = {}, {}
    for space in ("iou", "con"):
        topic = _unit(topics.standard_normal((32, joint), np.float32))[slot % 32]
        video = _unit(topic + _noise(rng, (joint,), 0.8))
        win = _unit(video + _noise(rng, (windows, joint), 0.8))
        vecs[space] = _unit(win[:, None, :] + _noise(rng, (windows, cells, joint), 0.8))
        centres[space] = win
    return vecs, centres


def sim_plan(args: argparse.Namespace, hours: float) -> dict[str, Any]:
    from vdi_cli.pipeline.retrieve_windows import plan_windows

    seconds = args.video_minutes * 60
    windows = len(plan_windows(seconds, args.span, 0.5))
    videos = max(1, round(hours * 60 / args.video_minutes))
    cells = 136  # the Charades preset's valid cells (N = 16, 15 diagonals)
    return {"hours": hours, "videos": videos, "windows": windows, "cells": cells,
            "duration": seconds, "proposals": videos * windows * cells, "joint": 256}


def write_library(plan: dict[str, Any], folder: Path, seed: int, queries: int) -> float:
    """The .npy files of every simulated video, and the queries; returns seconds taken."""
    from vdi_cli.pipeline.vector_rows import ROWS_SUFFIX, write_rows

    t0 = time.perf_counter()
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    w, c, j = plan["windows"], plan["cells"], plan["joint"]
    times = np.arange(int(plan["duration"]), dtype=np.float64)
    for slot in range(plan["videos"]):
        vecs, _ = simulated_video(seed, slot, w, c, j)
        write_rows(folder / "videos" / f"{slot}-{ROWS_SUFFIX}.npy",
                   {space: v.reshape(w * c, j) for space, v in vecs.items()})
        np.save(folder / "videos" / f"{slot}-times.npy", times)
    rng = np.random.default_rng([seed, 2])
    out: dict[str, list[np.ndarray]] = {"iou": [], "con": []}
    for _ in range(queries):
        slot, win = int(rng.integers(plan["videos"])), int(rng.integers(w))
        _, centres = simulated_video(seed, slot, w, 1, j)
        for space in out:
            out[space].append(_unit(centres[space][win] + _noise(rng, (j,), 0.8)))
    np.savez(folder / "queries.npz", **{k: np.stack(v) for k, v in out.items()})
    return time.perf_counter() - t0


def worker_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Make index `spec['name']` of `spec['kind']` over the simulated .npy files."""
    from vdi_cli.pipeline.index import IndexReport, _commit, _search_dim, model_record
    from vdi_cli.pipeline.retrieve import Retriever
    from vdi_cli.pipeline.retrieve_windows import plan_windows
    from vdi_cli.pipeline.vector_rows import ROWS_SUFFIX
    from vdi_cli.store import open_db
    from vdi_cli.store.indexes import create_index_row
    from vdi_cli.vector_index import VectorIndex, options_for, proposal_ids

    db = open_db()
    retriever = Retriever(db, checkpoint=spec["checkpoint"])
    head = retriever.loaded.model.head
    record, key = model_record(retriever)
    plan, folder, kind = spec["plan"], Path(spec["folder"]), spec["kind"]
    opts = options_for(kind, spec["options"])
    index = create_index_row(db, spec["name"], kind, opts, record, key, _search_dim(retriever))
    windows = [list(x) for x in plan_windows(plan["duration"], spec["span"], 0.5)]
    t0 = time.perf_counter()
    vindex = VectorIndex.create(kind, index["dim"], opts)
    added = []
    for slot in range(plan["videos"]):
        prefix = folder / "videos" / f"{slot}-"
        records = np.load(f"{prefix}{ROWS_SUFFIX}.npy", mmap_mode="r")
        flat = {s: records[s] for s in ("iou", "con")}
        count = len(flat["iou"])
        vindex.add(head.search_vectors(flat), proposal_ids(slot, count),
                   group=count // len(windows))
        added.append({"slot": slot, "sha256": f"{slot:064x}", "vid": f"sim{slot:05d}",
                      "path": str(prefix) + "video", "duration": float(plan["duration"]),
                      "num_clips": int(head.params.num_clips), "windows": windows,
                      "proposals": count, "vectors_path": str(prefix)})
    _commit(db, index, vindex, added, [], IndexReport(spec["name"], kind, record))
    seconds = time.perf_counter() - t0
    path = _index_row(db, spec["name"])["path"]
    return {"seconds": seconds, "faiss_bytes": Path(path).stat().st_size,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker_search(spec: dict[str, Any]) -> dict[str, Any]:
    from vdi_cli.pipeline.search import LibrarySearcher
    from vdi_cli.store import open_db

    db = open_db()
    searcher = LibrarySearcher(db, spec["name"])
    if spec.get("nprobe"):  # the lists scanned (ivfpq, winpq; a search-time setting too)
        searcher.vectors.options["nprobe"] = int(spec["nprobe"])
        searcher.vectors._probe()
    head, folder = searcher.head, Path(spec["folder"])
    loaded = np.load(folder / "queries.npz")
    qvec = {k: loaded[k] for k in ("iou", "con")}
    search_q = head.search_query(qvec)
    tops, lat, rounds = [], [], []
    for qi in range(-1, len(search_q)):  # the first query twice: a warm-up
        one = {k: v[max(qi, 0): max(qi, 0) + 1] for k, v in qvec.items()}
        t0 = time.perf_counter()
        pool, m, _ = searcher._one(search_q[max(qi, 0): max(qi, 0) + 1], one, TOP,
                                   spec.get("candidates"))
        if qi >= 0:
            lat.append(time.perf_counter() - t0)
            rounds.append(m)
            tops.append(_keys([(searcher.videos[s]["vid"], x) for s, x in pool]))
    stage1 = []  # stage 1 alone (the FAISS search of the same M), to split the latency
    for qi in range(len(search_q)):
        t0 = time.perf_counter()
        searcher.vectors.search(search_q[qi : qi + 1], int(rounds[qi]))
        stage1.append(time.perf_counter() - t0)
    searcher.search(["a person walks in"], top_k=TOP)  # the text tower's first call: warm-up
    text = searcher.search(["a person opens the door"], top_k=TOP).timings["text"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    memory = memory_now()
    truth_path = folder / "exhaustive.json"
    if not truth_path.is_file():
        truth_path.write_text(json.dumps(exhaustive(searcher, qvec)))
    truth = json.loads(truth_path.read_text())
    recall = [len({tuple(x[:3]) for x in a} & {tuple(x[:3]) for x in b}) / TOP
              for a, b in zip(tops, truth, strict=True)]
    identical = all(a == b for a, b in zip(tops, truth, strict=True))
    return {"p50": statistics.median(lat), "p95": float(np.percentile(lat, 95)),
            "faiss_p50": statistics.median(stage1), "text_s": text, "rss_mib": rss, **memory,
            "recall": float(np.mean(recall)),
            "min_recall": float(min(recall)), "identical": identical,
            "candidates": statistics.median(rounds)}


def memory_now() -> dict[str, float]:
    """The process's resident memory now, MiB, split as the kernel counts it: anonymous (heap:
    the model, FAISS's lists, Python objects: what the index needs) and file-backed (pages of the
    memory-mapped .npy vectors and of the libraries' files that queries touched: page cache,
    shared and reclaimable: the kernel drops them under pressure and reads them again)."""
    fields = {"RssAnon": "anon_mib", "RssFile": "file_mib"}  # the peak: ru_maxrss
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in fields:
                out[fields[key]] = int(value.split()[0]) / 1024
    return out


def exhaustive(searcher: Any, qvec: dict[str, np.ndarray]) -> list[list[list[Any]]]:
    """Every proposal of every video scored with the head's exact score, per-video NMS, ranked
    across the library: what `vdi retrieve FOLDER` computes."""
    from vdi_cli.pipeline.retrieve_windows import rank_scores

    pools: list[list[tuple[str, Any]]] = [[] for _ in range(len(qvec["iou"]))]
    for slot in sorted(searcher.videos):
        vp, _ = searcher._video(slot)
        scores = searcher.exact_scores(slot, qvec)
        ranking = rank_scores(vp, scores, top_k=TOP)
        for qi, moments in enumerate(ranking.moments):
            pools[qi] += [(searcher.videos[slot]["vid"], m) for m in moments]
    return [_keys(sorted(p, key=lambda x: -x[1].score)[:TOP]) for p in pools]


def _keys(pool: list[tuple[str, Any]]) -> list[list[Any]]:
    return [[vid, round(m.start, 4), round(m.end, 4), round(m.score, 6)] for vid, m in pool]


def run_worker(what: str, spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--worker", what, json.dumps(spec)],
                          capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode:
        raise SystemExit(f"worker {what} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fits(plan: dict[str, Any], kind: str, folder: Path, disk_use: float = 0.8) -> str | None:
    """Why a simulated library does not fit here (None: it fits): more than `disk_use` of the
    free disk, or 80 % of the available memory, while it is built."""
    from vdi_cli.vector_index import PENDING_LIMIT

    p = plan["proposals"]
    per_vector = 2 * plan["joint"] * 4  # float32, both spaces: an .npy row pair, a search vector
    npy = vec = p * per_vector
    faiss = {"flat": vec // 2 + 8 * p, "hnsw": vec + 8 * p + 64 * 4 * p,  # flat: fp16 codes
             "ivfpq": 80 * p, "winpq": 80 * p}[kind]
    # ivfpq streams: it holds at most PENDING_LIMIT vectors (and a copy) until it has trained
    pending = 2 * min(p, PENDING_LIMIT) * per_vector
    build_ram = {"flat": faiss, "hnsw": faiss, "ivfpq": faiss + pending,
                 "winpq": faiss + pending}[kind]
    with open("/proc/meminfo") as f:
        avail = next(int(x.split()[1]) * 1024 for x in f if x.startswith("MemAvailable"))
    disk = shutil.disk_usage(folder).free
    have_npy = (folder / "videos").is_dir()
    need_disk = faiss + (0 if have_npy else npy)
    if need_disk > disk_use * disk:
        return f"needs {need_disk / 1e9:.0f} GB of disk, {disk / 1e9:.0f} GB free"
    if build_ram > 0.8 * avail:
        return f"needs {build_ram / 1e9:.0f} GB of memory, {avail / 1e9:.0f} GB available"
    return None


def part_search(args: argparse.Namespace, ckpt: Path, tmp: Path, per_prop: dict[str, float]
                ) -> None:
    print(f"\n[2] search, SIMULATED proposal vectors (a mixture with per-video and per-window "
          f"clusters; queries from the same distribution), {args.queries} queries, "
          f"top-{TOP}, warm worker process; videos of {args.video_minutes:g} min")
    print(f"    {'hours':>6s} {'kind':6s} {'proposals':>10s} {'build s':>8s} {'FAISS GB':>9s} "
          f"{'RSS GiB':>8s} {'anon':>5s} {'file':>5s} {'p50 ms':>7s} {'p95 ms':>7s} "
          f"{'FAISS ms':>8s} {'text ms':>7s} {'recall@10':>9s}"
          f"  M")
    for hours in args.sizes:
        plan = sim_plan(args, hours)
        folder = tmp / f"sim-{hours:g}"
        folder.mkdir(parents=True, exist_ok=True)
        made = False
        for kind in args.kinds:
            why = fits(plan, kind, folder, args.disk_use)
            if why:
                est = per_prop.get(kind, 0) * plan["proposals"]
                npy = per_prop.get("npy", 2 * plan["joint"] * 4) * plan["proposals"]
                print(f"    {hours:6g} {kind:6s} {plan['proposals']:10d}  skipped: {why}; "
                      f"estimate from the bytes per proposal measured: FAISS "
                      f"{est / 1e9:.1f} GB, .npy {npy / 1e9:.1f} GB")
                continue
            library = {"plan": plan, "seed": args.seed, "queries": args.queries,
                       "files": "rows"}
            if not made and args.keep and _read_json(folder / "library.json") == library:
                print("    (the simulated library kept by an earlier --keep run: reused)")
                made = True
            if not made:
                gen = write_library(plan, folder, args.seed, args.queries)
                (folder / "library.json").write_text(json.dumps(library))
                print(f"    ({plan['videos']} videos x {plan['windows']} windows x "
                      f"{plan['cells']} cells written in {gen:.0f} s)", flush=True)
                made = True
            spec = {"name": f"sim-{hours:g}-{kind}", "kind": kind, "plan": plan,
                    "cold": args.cold,
                    "folder": str(folder), "checkpoint": str(ckpt), "span": args.span,
                    "options": kind_options(args, kind)}
            built = folder / f"build-{kind}.json"
            b = _read_json(built) if args.keep else None
            if b is None or b.get("options") != spec["options"]:
                _drop_index(spec["name"])
                b = {**run_worker("build", spec), "options": spec["options"]}
                built.write_text(json.dumps(b))
            per_prop.setdefault(kind, b["faiss_bytes"] / plan["proposals"])
            for cand in (args.candidates if kind != "flat" else [None]):
                for nprobe in (args.nprobe if kind in ("ivfpq", "winpq") else [None]):
                    _search_row({**spec, "nprobe": nprobe}, cand, b, hours, kind, plan)
            if not args.keep:
                _drop_index(spec["name"])
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _search_row(spec: dict[str, Any], cand: int | None, b: dict[str, Any], hours: float,
                kind: str, plan: dict[str, Any]) -> None:
    """One search worker with `cand` candidates (None: the kind's default) and its line."""
    if spec.get("cold"):
        evict(Path(spec["folder"]) / "videos")
    s = run_worker("search", {**spec, "candidates": cand})
    exact = " identical" if s["identical"] else ""
    if spec.get("nprobe"):
        exact += f" nprobe {spec['nprobe']}"
    print(f"    {hours:6g} {kind:6s} {plan['proposals']:10d} {b['seconds']:8.1f} "
          f"{b['faiss_bytes'] / 1e9:9.2f} {s['rss_mib'] / 1024:8.2f} "
          f"{s['anon_mib'] / 1024:5.2f} {s['file_mib'] / 1024:5.2f} "
          f"{s['p50'] * 1e3:7.1f} {s['p95'] * 1e3:7.1f} {s['faiss_p50'] * 1e3:8.1f} "
          f"{s['text_s'] * 1e3:7.1f} "
          f"{s['recall']:9.3f}  {s['candidates']:.0f}{exact}", flush=True)


def evict(folder: Path) -> None:
    """Drop the vector files' pages from the page cache (POSIX_FADV_DONTNEED: clean pages go),
    so a search worker does not find the pages an earlier worker's same queries read; written
    pages (the FAISS file just saved) are flushed first, so no write-back competes with it."""
    os.sync()
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _drop_index(name: str) -> None:
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.index import remove_index
    from vdi_cli.store import open_db

    try:
        remove_index(open_db(), name)
    except VdiError:  # not there (a --keep run's first build)
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--sizes", default="100,1000", help="simulated library sizes, hours")
    parser.add_argument("--kinds", default="flat,winpq,ivfpq,hnsw")
    parser.add_argument("--build-hours", type=float, default=2.0)
    parser.add_argument("--video-minutes", type=float, default=30.0)
    parser.add_argument("--span", type=float, default=30.0, help="window length, seconds")
    parser.add_argument("--hidden", type=int, default=512, help="MMN proposal conv channels")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--nlist", type=int, default=0, help="ivfpq lists (0: automatic)")
    parser.add_argument("--candidates", default="", help="approximate kinds: candidates to "
                        "rescore, comma-separated, one line each (default: the kind's own)")
    parser.add_argument("--nprobe", default="", help="ivfpq, winpq: lists scanned, "
                        "comma-separated, one line each (default: the index's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action="store_true", help="drop the vector files from the "
                        "page cache before each search worker (a fair start for each line)")
    parser.add_argument("--disk-use", type=float, default=0.8,
                        help="largest share of the free disk a simulated library may take")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--tmp", default=None, help="work folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="with --tmp: keep the simulated "
                        "libraries and their indexes there, and reuse them on the next run "
                        "(the same sizes, seed and queries; an index with other options is "
                        "built again): search settings compared without a rebuild")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if os.environ.get("VDI_BENCH_QUICK"):
            register_quick_arch()
        what, spec = args.worker
        fn = worker_build if what == "build" else worker_search
        print(json.dumps(fn(json.loads(spec))))
        return
    if args.quick:
        args.sizes, args.build_hours, args.video_minutes = "0.25", 0.1, 6.0
        args.hidden, args.nlist = 64, 16
    args.sizes = [float(x) for x in args.sizes.split(",") if x.strip()]
    args.kinds = args.kinds.split(",")
    args.candidates = [int(x) for x in args.candidates.split(",") if x.strip()] or [None]
    args.nprobe = [int(x) for x in args.nprobe.split(",") if x.strip()] or [None]
    if args.keep and not args.tmp:
        parser.error("--keep needs --tmp DIR (where the libraries are kept)")
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="vdi-bench-search-"))
    os.environ.update({"VDI_HOME": str(tmp / "home"), "VDI_DB": str(tmp / "bench.db"),
                       "HF_HUB_OFFLINE": "1", "VDI_PLUGINS": os.environ.get("VDI_PLUGINS", "")})
    backbone = "open_clip:ViT-B-32"
    if args.quick:
        os.environ["VDI_BENCH_QUICK"] = "1"
        register_quick_arch()
        backbone = f"open_clip:{QUICK_ARCH}"
    import torch

    from vdi_cli.store import open_db

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; backbone {backbone} (random weights)")
    try:
        ckpt = make_checkpoint(backbone, tmp / "ckpt", args.hidden, args.span, reuse=args.keep)
        db = open_db()
        per_prop = {} if args.skip_build else part_build(args, db, ckpt, tmp)
        part_search(args, ckpt, tmp, per_prop)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)  # simulated libraries are tens of GB
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
