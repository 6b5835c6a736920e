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


def _spaced(pairs):
    """Tokens from (text, whitespace-after) pairs, as a parser gives them."""
    return [Token(t, whitespace=w) for t, w in pairs]


# "He doesn't open the door, then sits." as spaCy tokenises it; chunks: He, the door.
SENT = _spaced([("He", " "), ("does", ""), ("n't", " "), ("open", " "), ("the", " "),
                ("door", ""), (",", " "), ("then", " "), ("sits", ""), (".", "")])
CHUNKS = [(0, 1), (4, 6)]


def test_original_spacing_is_kept_and_gaps_never_glue_words():
    q = build_parsed_query("He doesn't open the door, then sits.", SENT, CHUNKS)
    # "doesn't" stays one word; "," follows "open" as it followed "door"; the final "." stays
    assert q.dynamic == "doesn't open, then sits."
    assert q.static == "He the door"
    assert q.chunk_texts() == ["He", "the door"]


def test_placeholder_replaces_words_but_never_punctuation():
    q = build_parsed_query("x", SENT, CHUNKS, strategy="placeholder", placeholder="*")
    # 7 non-chunk words/punctuation: does n't open then sits -> 5 stars; ", ." dropped
    assert q.static == "He * * * the door * *"
    assert q.dynamic == "* doesn't open * *, then sits."
    assert q.placeholder == "*" and q.masking == "placeholder"


@pytest.mark.parametrize("strategy", ["delete", "placeholder"])
def test_a_side_without_words_is_empty_in_both_strategies(strategy):
    toks = _spaced([("walks", " "), ("away", ""), (".", "")])
    q = build_parsed_query("walks away.", toks, [], strategy=strategy)
    assert (q.static, q.dynamic) == ("", "walks away.")
    assert (q.has_static, q.has_dynamic) == (False, True)
    toks = _spaced([("a", " "), ("person", ""), (".", "")])
    q = build_parsed_query("a person.", toks, [(0, 2)], strategy=strategy)
    # only punctuation is left outside the chunk: Qd keeps no word, so it is ""
    assert (q.static, q.dynamic) == ("a person", "")
    assert (q.has_static, q.has_dynamic) == (True, False)


def test_whitespace_tokens_are_never_rendered():
    toks = _spaced([("sits", ""), ("  ", ""), ("down", "")])
    q = build_parsed_query("sits   down", toks, [])
    assert q.dynamic == "sits down"


@pytest.mark.parametrize("placeholder", ["", " ", "a b", " *"])
def test_bad_placeholders_are_rejected(placeholder):
    with pytest.raises(ValueError):
        build_parsed_query("a b", _tokens("a b"), [(0, 1)], strategy="placeholder",
                           placeholder=placeholder)


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError):
        build_parsed_query("a b", _tokens("a b"), [], strategy="mask")


def test_to_dict_round_trips_through_from_dict():
    from vdi_cli.types import ParsedQuery

    q = build_parsed_query("x", SENT, CHUNKS, strategy="placeholder", placeholder="_")
    d = q.to_dict()
    assert d["chunk_texts"] == ["He", "the door"]
    assert ParsedQuery.from_dict(d) == q


def test_clip_tokenizer_reads_placeholders_as_words_which_is_why_delete_is_the_default():
    """CLIP's BPE has no mask token: "<mask>" becomes three tokens including the word "mask",
    "*" is one real token per masked word; deleting feeds only the sentence's own words."""
    import importlib.util

    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("open_clip is not installed")
    from vdi_cli.clip_context import _clip_tokenizer

    tok = _clip_tokenizer()
    assert tok is not None
    words = [tok.tokens[i] for i in tok.encode("<mask> opens")]
    assert words == ["<</w>", "mask</w>", "></w>", "opens</w>"]
    assert [tok.tokens[i] for i in tok.encode("* opens")] == ["*</w>", "opens</w>"]
    toks = _tokens("person opens the door and walks out of the room")
    q = build_parsed_query("", toks, [(0, 1), (2, 4), (8, 10)])
    assert set(tok.encode(q.dynamic)) <= set(tok.encode(" ".join(t.text for t in toks)))
    q = build_parsed_query("", toks, [(0, 1), (2, 4), (8, 10)], strategy="placeholder")
    assert len(tok.encode(q.dynamic)) == 10  # one token per word, 5 of them "*"
