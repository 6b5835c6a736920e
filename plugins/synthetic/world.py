"""The synthetic moving-shapes world: vocabulary, object states and frame rendering (numpy).

Coloured shapes on scene backgrounds. Everything a caption or a query can name is defined here,
so image-text pretraining (static captions) and the moment-retrieval videos share one vocabulary.
Rendering is pure numpy: a frame is an [S, S, 3] uint8 array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 185, 60),
    "blue": (50, 80, 235),
    "yellow": (240, 220, 40),
    "white": (250, 250, 250),
    "orange": (250, 140, 30),
    "cyan": (40, 220, 220),
    "purple": (150, 60, 205),
}
SHAPES = ("square", "circle", "triangle", "cross", "diamond")
SCENES = ("beach", "forest", "night", "snow", "city", "desert")
# Never in a training video or query; present in pretraining captions (test-novel-word).
HELD_OUT = {"colour": ("purple",), "shape": ("diamond",), "scene": ("desert",)}
ROTATING_SHAPES = ("square", "triangle", "cross", "diamond")  # a circle's spin is invisible


@dataclass(frozen=True)
class ObjectState:
    shape: str
    colour: tuple[float, float, float]
    x: float  # centre, pixels
    y: float
    size: float  # half extent, pixels
    angle: float = 0.0  # radians
    alpha: float = 1.0  # 0 invisible .. 1 opaque


def _vertical(size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    col = (1 - t) * np.array(top, float) + t * np.array(bottom, float)
    return np.broadcast_to(col, (size, size, 3)).copy()


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    return yy, xx


def background(scene: str, size: int) -> np.ndarray:
    """A float [S, S, 3] background that identifies the scene (a fresh copy)."""
    return _background(scene, size).copy()


@lru_cache(maxsize=32)
def _background(scene: str, size: int) -> np.ndarray:
    yy, xx = (g / size for g in _grid(size))
    if scene == "beach":
        img = _vertical(size, (120, 190, 245), (130, 200, 250))
        img[yy > 0.55] = (225, 200, 140)
    elif scene == "forest":
        img = _vertical(size, (30, 90, 40), (20, 70, 30))
        img[(np.floor(xx * 8) % 2 == 0) & (yy < 0.7)] *= 0.6
    elif scene == "night":
        img = _vertical(size, (10, 12, 40), (25, 25, 70))
        img[((xx * 97 + yy * 57) * 13 % 1.0 < 0.01)] = (230, 230, 230)
    elif scene == "snow":
        img = _vertical(size, (200, 215, 230), (235, 240, 245))
    elif scene == "city":
        img = _vertical(size, (110, 110, 120), (80, 80, 90))
        img[(np.floor(xx * 6) % 2 == 0) & (yy > 0.35) & (np.floor(yy * 12) % 2 == 0)] *= 0.55
    elif scene == "desert":
        img = _vertical(size, (250, 215, 160), (215, 150, 80))
        img[yy > 0.6] = (200, 130, 60)
    else:
        raise ValueError(f"unknown scene {scene!r}")
    return img


def shape_mask(state: ObjectState, size: int) -> np.ndarray:
    """A boolean [S, S] mask of the object's pixels."""
    yy, xx = _grid(size)
    dx, dy = xx - state.x, yy - state.y
    c, s = math.cos(-state.angle), math.sin(-state.angle)
    u, v = c * dx - s * dy, s * dx + c * dy
    r = max(state.size, 0.0)
    if state.shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= r
    if state.shape == "circle":
        return u * u + v * v <= r * r
    if state.shape == "diamond":
        return np.abs(u) + np.abs(v) <= r * 1.2
    if state.shape == "triangle":
        return (v <= r) & (np.abs(u) <= (v + r) / 2)
    if state.shape == "cross":
        arm = r / 3
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    raise ValueError(f"unknown shape {state.shape!r}")


def render(scene: str, objects: list[ObjectState], size: int) -> np.ndarray:
    """Draw `objects` (back to front) over the scene; returns uint8 [S, S, 3]."""
    img = background(scene, size)
    for obj in objects:
        if obj.alpha <= 0.0 or obj.size <= 0.5:
            continue
        mask = shape_mask(obj, size)
        img[mask] = (1 - obj.alpha) * img[mask] + obj.alpha * np.array(obj.colour, float)
    return np.clip(img, 0, 255).astype(np.uint8)


def where(state: ObjectState, size: int) -> str:
    """Coarse position words for captions: 'at the top left', 'in the middle', ..."""
    col = ("left", "", "right")[min(int(state.x / size * 3), 2)]
    row = ("top", "", "bottom")[min(int(state.y / size * 3), 2)]
    if not col and not row:
        return "in the middle"
    return "at the " + " ".join(w for w in (row, col) if w)


def size_word(state: ObjectState, size: int) -> str:
    return "big" if state.size > size * 0.14 else ("small" if state.size < size * 0.09 else "")


def static_caption(scene: str, objects: list[tuple[str, ObjectState]], size: int) -> str:
    """A caption with objects, colours, sizes, positions and the scene: no motion words."""
    parts = []
    for name, obj in objects:
        if obj.alpha < 0.5:
            continue
        colour, shape = name.split()
        adjs = " ".join(w for w in (size_word(obj, size), colour) if w)
        parts.append(f"a {adjs} {shape} {where(obj, size)}")
    body = " and ".join(parts) if parts else "nothing"
    return f"{body} in the {scene}"


def random_still(rng: np.random.Generator, size: int, allowed: dict[str, tuple[str, ...]]
                 ) -> tuple[np.ndarray, str]:
    """One random still frame and its static caption (for image-text pretraining)."""
    scene = str(rng.choice(allowed["scene"]))
    count = int(rng.integers(1, 4))
    colours = rng.choice(allowed["colour"], size=count, replace=False)
    shapes = rng.choice(allowed["shape"], size=count, replace=True)
    objects = []
    for colour, shape in zip(colours, shapes, strict=True):
        r = float(rng.uniform(0.06, 0.18) * size)
        state = ObjectState(str(shape), COLOURS[str(colour)], float(rng.uniform(r, size - r)),
                            float(rng.uniform(r, size - r)), r,
                            angle=float(rng.uniform(0, math.pi)))
        objects.append((f"{colour} {shape}", state))
    frame = render(scene, [o for _, o in objects], size)
    return frame, static_caption(scene, objects, size)


def moved(state: ObjectState, **changes: float) -> ObjectState:
    return replace(state, **changes)
