"""Synonym sets for the motion verbs (world version 4), split into trained and held-out synonyms.

Version 4 makes a novel *verb* testable. Image-text pretraining (`tiny-shapes-v2`) captions
still frames that show a motion in a single image (motion trails, `trails.py`) with every
synonym of a class; moment-retrieval training and test-iid queries use only the `trained`
synonyms, and the `test-novel-verb` split only the `held_out` ones. The held-out synonyms share
no word with any trained query, so a model can place them only through what pretraining taught
the text tower (Charades-CG's novel-word idea applied to verbs).

Only the classes a still frame can show get held-out synonyms (`NOVEL_VERB_ACTIONS`): a move, a
jump (an arc), growing and shrinking. Appearing, disappearing, blinking and changing colour
happen in time, a single frame cannot show them (as a photo cannot show "blinks"), so they keep
version 3's templates and never occur in `test-novel-verb`.
"""

from __future__ import annotations

from vdi_plugins.synthetic.events import TEMPLATES

TRAINED: dict[str, tuple[str, ...]] = {
    "left": ("{np} moves to the left", "{np} slides left", "{np} goes to the left"),
    "right": ("{np} moves to the right", "{np} slides right", "{np} goes to the right"),
    "up": ("{np} moves up", "{np} rises", "{np} goes upward"),
    "down": ("{np} moves down", "{np} sinks", "{np} goes downward"),
    "jump": ("{np} jumps", "{np} hops", "{np} bounces"),
    "grow": ("{np} grows", "{np} gets bigger", "{np} expands"),
    "shrink": ("{np} shrinks", "{np} gets smaller", "{np} contracts"),
}
HELD_OUT: dict[str, tuple[str, ...]] = {
    "left": ("{np} drifts westward", "{np} travels west"),
    "right": ("{np} drifts eastward", "{np} travels east"),
    "up": ("{np} ascends", "{np} climbs"),
    "down": ("{np} descends", "{np} plunges"),
    "jump": ("{np} leaps", "{np} vaults"),
    "grow": ("{np} swells", "{np} enlarges"),
    "shrink": ("{np} dwindles", "{np} diminishes"),
}
NOVEL_VERB_ACTIONS = tuple(TRAINED)
# Part of speech of the held-out words that are not verbs (for the `news` field); others: VERB.
UPOS = {"westward": "ADV", "eastward": "ADV", "west": "ADV", "east": "ADV"}


def templates(held_out: bool) -> dict[str, tuple[str, ...]]:
    """Version 4's sentence templates per action: the trained synonyms (train, test-iid,
    test-novel-word) or the held-out ones (test-novel-verb, only NOVEL_VERB_ACTIONS)."""
    if held_out:
        return dict(HELD_OUT)
    return {action: TRAINED.get(action, options) for action, options in TEMPLATES.items()}


def synonyms(action: str) -> tuple[str, ...]:
    """Every synonym of a class, trained first: what pretraining captions draw from."""
    return TRAINED[action] + HELD_OUT[action]


def phrase_words(template: str) -> set[str]:
    return set(template.replace("{np}", "").split())


def held_out_words() -> set[str]:
    """The words only held-out synonyms use (each test-novel-verb query has at least one)."""
    trained = set().union(*(phrase_words(t) for ts in templates(False).values() for t in ts))
    return set().union(*(phrase_words(t) for ts in HELD_OUT.values() for t in ts)) - trained
