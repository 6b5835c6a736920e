"""Motion in a single image: still frames with motion trails, for image-text pretraining (v4).

CLIP learns "jumping" from photos that show a jump in one frame; this world's stills learn
motion verbs the same way. An object doing an action is drawn with fading copies of where it
was (older copies fainter, the object itself opaque):

- left / right / up / down: copies along a straight path behind it;
- jump: copies along an arc (up and down again, drifting sideways), the object where it lands;
- shrink: larger faint copies behind it, a halo that fades outward;
- grow: its earlier, smaller outlines drawn inside it in a darker shade.

The caption names the action with one of its synonyms, drawn from the whole set (trained and
held-out, `verbs.synonyms`), so pretraining sees both in the same kind of image. The videos
themselves never show trails; an object in a video moves.
"""

from __future__ import annotations

import math

import numpy as np

from vdi_plugins.synthetic.verbs import NOVEL_VERB_ACTIONS, synonyms
from vdi_plugins.synthetic.world import (
    COLOURS,
    ObjectState,
    background,
    moved,
    shape_mask,
    size_word,
    where,
)

COPIES = 4  # earlier copies per trail
MOVES = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def trail(action: str, state: ObjectState, travel: float) -> list[tuple[ObjectState, str]]:
    """The copies to draw, back to front, each with how ("fill" or "outline"); the last is the
    object itself, opaque. `travel`: the path length in pixels (moves, jump)."""
    out: list[tuple[ObjectState, str]] = []
    for k in range(COPIES):
        p = k / COPIES  # progress of this earlier copy, 0 = where the action started
        alpha = 0.15 + 0.45 * p
        if action in MOVES:
            dx, dy = MOVES[action]
            back = travel * (1 - p)
            out.append((moved(state, x=state.x - dx * back, y=state.y - dy * back, alpha=alpha),
                        "fill"))
        elif action == "jump":
            side = travel * 0.6 * (1 - p)
            out.append((moved(state, x=state.x - side, y=state.y - travel * math.sin(math.pi * p),
                              alpha=alpha), "fill"))
        elif action == "shrink":
            out.append((moved(state, size=state.size / (1 - 0.55 * (1 - p)), alpha=alpha), "fill"))
        elif action == "grow":
            pass
        else:
            raise ValueError(f"a still cannot show {action!r}")
    out.append((state, "fill"))
    if action == "grow":
        for k in range(1, COPIES):
            out.append((moved(state, size=state.size * (0.4 + 0.6 * k / COPIES), alpha=0.6),
                        "outline"))
    return out


def _box(action: str, r: float, travel: float, size: int) -> tuple[float, float, float, float]:
    """(lo_x, hi_x, lo_y, hi_y): where the object can end so that its trail stays in frame."""
    lo_x, hi_x, lo_y, hi_y = r, size - r, r, size - r
    if action in MOVES:
        dx, dy = MOVES[action]  # the earlier copies lie `travel` pixels behind it
        lo_x, hi_x = lo_x + travel * (dx > 0), hi_x - travel * (dx < 0)
        lo_y, hi_y = lo_y + travel * (dy > 0), hi_y - travel * (dy < 0)
    elif action == "jump":
        lo_x, lo_y = lo_x + travel * 0.6, lo_y + travel
    elif action == "shrink":
        big = r / 0.45
        lo_x, hi_x, lo_y, hi_y = big, size - big, big, size - big
    return lo_x, hi_x, lo_y, hi_y


def room_for(action: str, r: float, travel: float, size: int, rng: np.random.Generator,
             also: str = "") -> tuple[float, float]:
    """A centre for the final object such that its whole trail stays in the frame (for twins:
    one that suits `also` too, where both fit, so the twins' position words agree)."""
    lo_x, hi_x, lo_y, hi_y = _box(action, r, travel, size)
    if also:
        other = _box(also, r, travel, size)
        lo_x, hi_x = max(lo_x, other[0]), min(hi_x, other[1])
        lo_y, hi_y = max(lo_y, other[2]), min(hi_y, other[3])
    return float(rng.uniform(lo_x, max(lo_x, hi_x))), float(rng.uniform(lo_y, max(lo_y, hi_y)))


def draw(img: np.ndarray, state: ObjectState, how: str) -> None:
    """Blend one copy into img (float [S, S, 3]) in place."""
    size = img.shape[0]
    if state.alpha <= 0.0 or state.size <= 0.5:
        return
    mask = shape_mask(state, size)
    colour = np.array(state.colour, float)
    if how == "outline":
        mask &= ~shape_mask(moved(state, size=state.size - 1.5), size)
        colour = colour * 0.45
    img[mask] = (1 - state.alpha) * img[mask] + state.alpha * colour


# The class a twin still shows instead (the hardest confusion: the opposite motion).
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up", "grow": "shrink",
            "shrink": "grow", "jump": "up"}


def motion_still(rng: np.random.Generator, size: int, allowed: dict[str, tuple[str, ...]],
                 p_motion: float = 0.6, force: str = "", twin: str = ""
                 ) -> tuple[np.ndarray, str]:
    """One still frame of 1-3 objects, each doing a trail action with probability p_motion,
    and its caption ("a big red square slides left at the top in the snow and ..."). `force`
    makes the first object do that action, placed where `twin`'s trail fits too (twins: the
    same draws with another action)."""
    scene = str(rng.choice(allowed["scene"]))
    count = int(rng.integers(1, 4))
    colours = rng.choice(allowed["colour"], size=count, replace=False)
    shapes = rng.choice(allowed["shape"], size=count, replace=True)
    img, parts = background(scene, size), []
    for i, (colour, shape) in enumerate(zip(colours, shapes, strict=True)):
        action = str(rng.choice(NOVEL_VERB_ACTIONS)) if rng.random() < p_motion else ""
        if force and i == 0:
            action = force
        r = float(rng.uniform(0.06, 0.14 if action else 0.18) * size)
        travel = float(rng.uniform(0.25, 0.4) * size)
        if action:
            x, y = room_for(action, r, travel, size, rng, also=twin if i == 0 else "")
        else:
            x, y = float(rng.uniform(r, size - r)), float(rng.uniform(r, size - r))
        state = ObjectState(str(shape), COLOURS[str(colour)], x, y, r,
                            angle=float(rng.uniform(0, math.pi)))
        for copy, how in (trail(action, state, travel) if action else [(state, "fill")]):
            draw(img, copy, how)
        adjs = " ".join(w for w in (size_word(state, size), str(colour)) if w)
        noun = f"a {adjs} {shape}"
        said = str(rng.choice(synonyms(action))).format(np=noun) if action else noun
        parts.append(f"{said} {where(state, size)}")
    frame = np.clip(img, 0, 255).astype(np.uint8)
    return frame, f"{' and '.join(parts)} in the {scene}"


def twin_stills(rng: np.random.Generator, size: int, allowed: dict[str, tuple[str, ...]],
                p_motion: float = 0.6) -> list[tuple[np.ndarray, str]]:
    """Two stills drawn alike except that the first object does opposite actions ("slides left"
    / "slides right"), so a contrastive batch can tell them apart only by the motion and its
    verb: without such pairs the verbs were the least needed words of a caption, and the
    held-out move synonyms stayed far from their classes (docs/experiments.md, tiny-shapes-v2)."""
    seed = int(rng.integers(2**32))
    a = str(rng.choice(NOVEL_VERB_ACTIONS))
    b = OPPOSITE[a]
    return [motion_still(np.random.default_rng(seed), size, allowed, p_motion, force=x, twin=y)
            for x, y in ((a, b), (b, a))]
