"""Static / dynamic query masking from token spans."""

from __future__ import annotations

import pytest

from vdi_cli.masking import build_parsed_query
from vdi_cli.types import Token


def _tokens(text):
    return [Token(w) for w in text.split()]


def test_delete_strategy_keeps_chunks_in_static_and_the_rest_in_dynamic():
    toks = _tokens("a person opens the door")
    q = build_parsed_query("a person opens the door", toks, [(0, 2), (3, 5)])
    assert q.static == "a person the door"
    assert q.dynamic == "opens"
    assert q.static_masked == (False, False, True, False, False)
    assert q.dynamic_masked == (True, True, False, True, True)
    assert q.chunk_texts() == ["a person", "the door"]


def test_placeholder_strategy_keeps_word_positions():
    toks = _tokens("a person opens the door")
    q = build_parsed_query("x", toks, [(0, 2), (3, 5)], strategy="placeholder", placeholder="_")
    assert q.static == "a person _ the door"
    assert q.dynamic == "_ _ opens _ _"


def test_no_chunks_and_only_chunks():
    toks = _tokens("walks away")
    q = build_parsed_query("walks away", toks, [])
    assert (q.static, q.dynamic) == ("", "walks away")
    q = build_parsed_query("walks away", toks, [(0, 2)])
    assert (q.static, q.dynamic) == ("walks away", "")


@pytest.mark.parametrize("spans", [[(0, 2), (1, 3)], [(0, 9)], [(2, 2)]])
def test_bad_spans_are_rejected(spans):
    with pytest.raises(ValueError):
        build_parsed_query("a b c", _tokens("a b c"), spans)
