"""Generate the synthetic-shapes benchmark: real mp4 files (PyAV) + MMN-JSON annotations.

Splits: `train`, `test-iid` (same vocabulary) and `test-novel-word` (every object has a held-out
colour or shape, so every query holds a word no training query has; like Charades-CG's
novel-word split, each query's novel words are written in `news`). World version 4 adds
`test-novel-verb`: every query says its action with a held-out synonym (`verbs.py`), one that
only image-text pretraining has seen. Deterministic from the seed and the version; version 3
(the default) writes exactly what it wrote before version 4 existed (tested by hash).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vdi_plugins.synthetic import staging, verbs
from vdi_plugins.synthetic.events import DROPPED, WORLD_ACTIONS, Event, sentence, state_at
from vdi_plugins.synthetic.world import (
    COLOURS,
    HELD_OUT,
    ROTATING_SHAPES,
    SCENES,
    SHAPES,
    ObjectState,
    render,
)

SPLITS = ("train", "test-iid", "test-novel-word")
# 2: spin dropped (events.DROPPED); 3: longer moves, larger objects; 4: verb synonym sets split
# into trained and held-out, and the test-novel-verb split. Older than 3: `git checkout` (HISTORY).
VERSIONS = (3, 4)
GENERATOR_VERSION = 3  # the default, so a plain command keeps writing the same world
# How far a move goes, as a fraction of the frame: at least the first number, at most the second
# or as far as the object can go inside the frame. Version 2 moved 0.28 (13 px, about 1.5 ViT
# patches, in the backbone's 48 px frames) and even a perfect text encoder left the moves the
# weakest classes; version 3 moves 0.36-0.48, so a move crosses 2-3 patches.
MOVE = {"left": (0.36, 0.48), "right": (0.36, 0.48), "up": (0.36, 0.48), "down": (0.36, 0.48),
        "jump": (0.3, 0.3)}
RADIUS = (0.09, 0.13)  # object radius range, fraction of the frame (v2: 0.08-0.11)


@dataclass
class VideoPlan:
    vid: str
    scene: str
    duration: float
    objects: list[tuple[str, ObjectState]]  # ("red square", initial state)
    events: list[Event] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)


def splits(version: int) -> tuple[str, ...]:
    return SPLITS + ("test-novel-verb",) if version >= 4 else SPLITS


def vocabulary(split: str) -> dict[str, tuple[str, ...]]:
    """Colours, shapes and scenes a split may use (held-out ones only in test-novel-word)."""
    base = {
        "colour": tuple(c for c in COLOURS if c not in HELD_OUT["colour"]),
        "shape": tuple(s for s in SHAPES if s not in HELD_OUT["shape"]),
        "scene": tuple(s for s in SCENES if s not in HELD_OUT["scene"]),
    }
    if split != "test-novel-word":
        return base
    return {"colour": tuple(COLOURS), "shape": SHAPES, "scene": SCENES}


def _pick_objects(rng: np.random.Generator, split: str, size: int, count: int
                  ) -> list[tuple[str, ObjectState]]:
    vocab = vocabulary(split)
    colours = list(rng.choice(vocab["colour"], size=count, replace=False))
    shapes = list(rng.choice(vocab["shape"], size=count, replace=count > len(vocab["shape"])))
    if split == "test-novel-word":  # each object carries a held-out colour or shape
        for i in range(count):
            if colours[i] in HELD_OUT["colour"] or shapes[i] in HELD_OUT["shape"]:
                continue
            if rng.random() < 0.5 and HELD_OUT["colour"][0] not in colours:
                colours[i] = HELD_OUT["colour"][0]
            else:
                shapes[i] = HELD_OUT["shape"][0]
    objects = []
    for colour, shape in zip(colours, shapes, strict=True):
        r = float(rng.uniform(*RADIUS) * size)
        x = float(rng.uniform(0.15, 0.85) * size)
        y = float(rng.uniform(0.2, 0.8) * size)
        objects.append((f"{colour} {shape}", ObjectState(str(shape), COLOURS[str(colour)], x, y,
                                                         r)))
    return objects


def room(action: str, state: ObjectState, size: int) -> float:
    """How far (pixels) the object can move in the direction of `action` and stay in frame."""
    edge = state.size + 2.0
    return {"left": state.x - edge, "right": size - edge - state.x, "up": state.y - edge,
            "down": size - edge - state.y, "jump": state.y - edge}[action]


def _feasible(action: str, state: ObjectState, size: int, first: bool, used: set[str]) -> bool:
    if action == "appear":
        return first
    if action in MOVE:
        return room(action, state, size) >= MOVE[action][0] * size
    if action == "spin":
        return state.shape in ROTATING_SHAPES
    if action == "grow":
        return state.size < 0.14 * size
    if action == "shrink":
        return state.size > 0.06 * size
    return True


def plan_video(rng: np.random.Generator, vid: str, split: str, size: int,
               version: int = GENERATOR_VERSION) -> VideoPlan:
    """The video's scene, objects, events and sentences. Version 4 words the motion classes
    with their trained synonyms, or in test-novel-verb with held-out ones (and only plans the
    classes that have them); the rest of the plan is drawn exactly as in version 3."""
    vocab = vocabulary(split)
    novel_verb = split == "test-novel-verb"
    templates = verbs.templates(novel_verb) if version >= 4 else None
    allowed = verbs.NOVEL_VERB_ACTIONS if novel_verb else WORLD_ACTIONS
    duration = float(np.round(rng.uniform(10.0, 40.0) * 2) / 2)
    objects = _pick_objects(rng, split, size, int(rng.integers(2, 4)))
    plan = VideoPlan(vid, str(rng.choice(vocab["scene"])), duration, objects)
    used = {name.split()[0] for name, _ in objects}
    for index, (_, base) in enumerate(objects):
        cursor, mine = float(rng.uniform(0.0, 0.35 * duration)), []
        for k in range(int(rng.integers(1, 4))):
            span = float(rng.uniform(2.0, 6.0))
            if cursor + span > duration - 0.5:
                break
            state = state_at(base, mine, cursor)
            last_allowed = k == 2 or cursor + span + 4.0 > duration
            options = [a for a in WORLD_ACTIONS
                       if a in allowed and _feasible(a, state, size, k == 0, used)
                       and (a not in ("disappear", "recolour") or last_allowed)]
            action = str(rng.choice(options))
            target = ""
            if action == "recolour":
                free = [c for c in vocab["colour"] if c not in used]
                target = str(rng.choice(free))
                used.add(target)
            amount = 0.0
            if action in MOVE:
                low, high = MOVE[action]
                top = min(high * size, room(action, state, size))
                amount = round(float(rng.uniform(low * size, top)), 2) if top > low * size \
                    else low * size
            ev = Event(index, action, round(cursor, 2), round(cursor + span, 2), amount, target)
            mine.append(ev)
            cursor += span + float(rng.uniform(0.5, 4.0))
            if action in ("disappear", "recolour"):
                break
        plan.events.extend(mine)
    plan.events.sort(key=lambda e: (e.start, e.obj))
    for ev in plan.events:
        name = objects[ev.obj][0]
        det = "the" if rng.random() < 0.7 else "a"
        plan.sentences.append(sentence(rng, ev, f"{det} {name}", plan.scene, templates))
    return plan


def frames_of(plan: VideoPlan, fps: float, size: int):
    """Yield the video's frames (uint8 [S, S, 3]) at `fps`."""
    per_object = [[e for e in plan.events if e.obj == i] for i in range(len(plan.objects))]
    for i in range(int(round(plan.duration * fps))):
        t = i / fps
        states = [state_at(base, evs, t) for (_, base), evs in zip(plan.objects, per_object,
                                                                    strict=True)]
        yield render(plan.scene, states, size)


def write_mp4(path: Path, frames, fps: float, size: int) -> None:
    """Encode frames with libx264 (yuv420p) through a temp file + rename (atomic). The temp
    name (`.NAME.mp4.tmp`) is hidden and has no video extension, so no folder scan takes a
    half-written file for a video; it is removed if encoding fails."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _encode(tmp, frames, fps, size)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _encode(tmp: Path, frames, fps: float, size: int) -> None:
    import av

    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()}


def _upos(word: str) -> str:
    if word in verbs.UPOS:
        return verbs.UPOS[word]
    if word in COLOURS:
        return "ADJ"
    if word in SHAPES or word in SCENES:
        return "NOUN"
    return "VERB"


def generate(out: str | Path, videos: int, seed: int, test_videos: int | None = None,
             fps: float = 8.0, size: int = 64, progress: Any = None,
             force: bool = False, version: int = GENERATOR_VERSION) -> dict[str, Any]:
    """Write `out/videos/*.mp4` and `out/{train,test_iid,test_novel_word}.json` (version 4:
    also `test_novel_verb.json`); returns meta.

    `out` must be new or empty; `force` replaces a set generated there before (see `staging`:
    the new set is written aside and moved in only when complete)."""
    if version not in VERSIONS:
        from vdi_cli.errors import VdiError

        raise VdiError(f"synthetic-shapes has no world version {version!r}",
                       hint=f"choose one of {', '.join(map(str, VERSIONS))} (--dataset-option "
                       "version=4: "
                       "the world with held-out verb synonyms); older ones: see "
                       "examples/experiment-results/HISTORY.md")
    out = Path(out)
    stage = staging.prepare(out, force)
    try:
        meta = _generate(stage, videos, seed, test_videos, fps, size, progress, version)
        staging.commit(stage, out)
    except BaseException:
        staging.discard(stage)
        raise
    return meta


def _generate(out: Path, videos: int, seed: int, test_videos: int | None, fps: float, size: int,
              progress: Any, version: int = GENERATOR_VERSION) -> dict[str, Any]:
    """The whole set, written into `out` (the staging folder)."""
    tests = test_videos if test_videos is not None else max(1, videos // 4)
    counts = {split: videos if split == "train" else tests for split in splits(version)}
    plans: dict[str, list[VideoPlan]] = {}
    for code, split in enumerate(splits(version)):
        plans[split] = [
            plan_video(np.random.default_rng([seed, code, i]), f"{split}-{i:05d}", split, size,
                       version)
            for i in range(counts[split])
        ]
    train_vocab = set().union(*(_words(s) for p in plans["train"] for s in p.sentences))
    meta: dict[str, Any] = {"generator": "synthetic-shapes", "version": version,
                            "seed": seed, "fps": fps, "size": size, "held_out": HELD_OUT,
                            "actions": list(WORLD_ACTIONS), "dropped": DROPPED, "splits": {}}
    if version >= 4:
        meta["verbs"] = {a: {"trained": list(verbs.TRAINED[a]), "held_out": list(verbs.HELD_OUT[a])}
                         for a in verbs.NOVEL_VERB_ACTIONS}
    held_verbs = verbs.held_out_words()
    total = sum(len(v) for v in plans.values())
    bar = progress(total=total, desc="videos", unit="video") if progress else None
    for split, split_plans in plans.items():
        annotations: dict[str, Any] = {}
        for plan in split_plans:
            entry: dict[str, Any] = {
                "duration": plan.duration,
                "timestamps": [[e.start, e.end] for e in plan.events],
                "sentences": plan.sentences,
                "actions": [e.action for e in plan.events],
            }
            if split != "train":
                news = []
                for s in plan.sentences:
                    novel = sorted(_words(s) - train_vocab)
                    if split == "test-novel-word" and not novel:
                        raise AssertionError(f"query without a novel word: {s!r}")
                    if split == "test-novel-verb" and not held_verbs & set(novel):
                        raise AssertionError(f"query without a held-out verb: {s!r}")
                    by_pos: dict[str, list[str]] = {}
                    for w in novel:
                        by_pos.setdefault(_upos(w), []).append(w)
                    news.append(by_pos)
                entry["news"] = news
            annotations[plan.vid] = entry
            write_mp4(out / "videos" / f"{plan.vid}.mp4", frames_of(plan, fps, size), fps, size)
            if bar is not None:
                bar.update(1)
        name = split.replace("-", "_") + ".json"
        (out / name).write_text(json.dumps(annotations, indent=1))
        meta["splits"][split] = {"file": name, "videos": len(split_plans),
                                 "queries": sum(len(p.sentences) for p in split_plans)}
    if bar is not None:
        bar.close()
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta
