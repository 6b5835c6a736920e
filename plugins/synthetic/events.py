"""Events of the synthetic world: what an object does over [start, end], and how it is said.

Each action changes an object's state as a function of progress p in [0, 1] through its span.
Sentences come from templates with synonyms, optional scene phrases and speed adverbs, so a noun
phrase alone never locates a moment: the same object acts several times in one video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vdi_plugins.synthetic.world import COLOURS, ObjectState, moved

ACTIONS = ("left", "right", "up", "down", "appear", "disappear", "grow", "shrink", "jump",
           "spin", "recolour", "blink")
# Classes the renderer can draw but the generated world leaves out, and why (see docs/datasets.md).
DROPPED: dict[str, str] = {
    "spin": "not visible to the tiny-shapes backbone: static captions never state orientation and "
            "pretraining draws every still at a random angle, so the image features are trained "
            "to ignore rotation; even with a perfect text encoder spin stayed below its prior",
}
# What plan_video picks from, in this order (the order is part of the seeded plan).
WORLD_ACTIONS = tuple(a for a in ("left", "right", "up", "down", "appear", "grow", "shrink",
                                  "jump", "spin", "blink", "recolour", "disappear")
                      if a not in DROPPED)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "left": ("{np} moves to the left", "{np} slides left", "{np} goes to the left",
             "{np} drifts leftward"),
    "right": ("{np} moves to the right", "{np} slides right", "{np} goes to the right",
              "{np} drifts rightward"),
    "up": ("{np} moves up", "{np} rises", "{np} goes upward", "{np} floats up"),
    "down": ("{np} moves down", "{np} sinks", "{np} goes downward", "{np} drops down"),
    "appear": ("{np} appears", "{np} shows up", "{np} comes into view", "{np} emerges"),
    "disappear": ("{np} disappears", "{np} vanishes", "{np} fades away",
                  "{np} goes out of view"),
    "grow": ("{np} grows", "{np} gets bigger", "{np} expands", "{np} becomes larger"),
    "shrink": ("{np} shrinks", "{np} gets smaller", "{np} contracts", "{np} becomes smaller"),
    "jump": ("{np} jumps", "{np} hops", "{np} bounces", "{np} leaps up and lands"),
    "spin": ("{np} spins", "{np} rotates", "{np} turns around", "{np} twirls"),
    "recolour": ("{np} turns {c2}", "{np} changes colour to {c2}", "{np} becomes {c2}"),
    "blink": ("{np} blinks", "{np} flashes", "{np} flickers", "{np} pulses"),
}


@dataclass(frozen=True)
class Event:
    obj: int  # index of the object in the video
    action: str
    start: float
    end: float
    amount: float = 0.0  # pixels to move, target colour index, ...
    target: str = ""  # colour name for recolour


def apply(state: ObjectState, event: Event, t: float) -> ObjectState:
    """The state at time t given the state before the event started."""
    if t < event.start:
        return moved(state, alpha=0.0) if event.action == "appear" else state
    p = min(1.0, (t - event.start) / max(event.end - event.start, 1e-6))
    a = event.action
    if a in ("left", "right"):
        return moved(state, x=state.x + (-1 if a == "left" else 1) * event.amount * p)
    if a in ("up", "down"):
        return moved(state, y=state.y + (-1 if a == "up" else 1) * event.amount * p)
    if a == "appear":
        return moved(state, alpha=p)
    if a == "disappear":
        return moved(state, alpha=1.0 - p)
    if a == "grow":
        return moved(state, size=state.size * (1.0 + 0.9 * p))
    if a == "shrink":
        return moved(state, size=state.size * (1.0 - 0.55 * p))
    if a == "jump":
        return moved(state, y=state.y - event.amount * math.sin(math.pi * p))
    if a == "spin":
        return moved(state, angle=state.angle + 2 * math.pi * p)
    if a == "recolour":
        c2 = np.array(COLOURS[event.target], float)
        return moved(state, colour=tuple((1 - p) * np.array(state.colour) + p * c2))
    if a == "blink":
        if p >= 1.0:
            return state
        return moved(state, alpha=0.5 + 0.5 * math.cos(2 * math.pi * (t - event.start) / 0.9))
    raise ValueError(f"unknown action {a!r}")


def state_at(base: ObjectState, events: list[Event], t: float) -> ObjectState:
    """Fold the object's events (sorted by start) up to time t."""
    state = base
    for ev in events:
        if ev.action != "appear" and t < ev.start:
            break
        state = apply(state, ev, t)
        if t < ev.end:
            break
    return state


def sentence(rng: np.random.Generator, event: Event, np_text: str, scene: str,
             templates: dict[str, tuple[str, ...]] | None = None) -> str:
    """A query for the event: a template of its class (`templates`, default TEMPLATES: world
    versions 1-3; version 4 passes its synonym split, `verbs.templates`)."""
    options = (templates or TEMPLATES)[event.action]
    text = str(rng.choice(options)).format(np=np_text, c2=event.target)
    span = event.end - event.start
    if rng.random() < 0.25:
        adverb = "quickly" if span < 3.0 else ("slowly" if span > 4.5 else "")
        if adverb:
            text = f"{text} {adverb}" if rng.random() < 0.5 else f"{adverb} {text}"
    if rng.random() < 0.25:
        text = f"in the {scene} {text}" if rng.random() < 0.5 else f"{text} in the {scene}"
    return text
