"""What makes `vdi parse` fast, each checked for the behaviour it must keep: CLIP's BPE without
torch gives open_clip's ids; spaCy loads without torch and torch still imports afterwards; the
stored CLIP token counts spare a re-parse the counting and still warn about long queries;
the hand-written `to_dict` / `from_dict` keep the shape `asdict` gave."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vdi_cli import clip_bpe, clip_context
from vdi_cli.pipeline.parse import COUNTS_KEY, CUT_KEY, config_key, parse_texts
from vdi_cli.store import open_db
from vdi_cli.types import ParsedQuery, Token

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ODD = [
    "<start_of_text> a man <end_of_text> waves",
    "café naïve 日本語 emoji 😀 and a ﬁne ligature",
    "fish &amp;amp; chips &lt;b&gt; and Tom&#39;s dog",
    "it's we'll they'd I'm 12345 __init__ x_y -- ... !!!",
    "tabs\tand\nnew lines\r\nand  double  spaces",
    "\x1b[31mred\x1b[0m control\x07 bell",
    "A",
    "",
]


def _open_clip_tokenizer():
    import importlib.util

    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("open_clip is not installed")
    from vdi_cli.compat.torchvision_shim import ensure_torchvision

    ensure_torchvision()
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def test_bpe_ids_and_decoding_equal_open_clips_on_odd_text():
    ref, mine = _open_clip_tokenizer(), clip_bpe.load()
    assert mine is not None
    for text in ODD:
        ids = ref.encode(text)
        assert mine.encode(text) == ids, text
        assert mine.decode(ids) == ref.decode(ids), text
    # the word cache answers a repeat exactly as the first time
    assert mine.encode(ODD[3]) == ref.encode(ODD[3])


@pytest.mark.parametrize("name", ["activitynet/val.json",
                                  "qvhighlights/highlight_val_release.jsonl"])
def test_bpe_ids_equal_open_clips_on_every_long_query_of_a_real_file(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not here")
    raw = path.read_text(encoding="utf-8")
    if name.endswith(".json"):
        texts = [s for v in json.loads(raw).values() for s in v["sentences"]]
    else:
        texts = [json.loads(line)["query"] for line in raw.splitlines() if line.strip()]
    long = [t for t in texts if len(t.encode("utf-8")) > clip_context.CONTENT_TOKENS]
    assert long, "the file should have queries past 75 bytes"
    ref, mine = _open_clip_tokenizer(), clip_bpe.load()
    wrong = [t for t in long if mine.encode(t) != ref.encode(t)]
    assert wrong == []


def test_counting_a_long_query_imports_neither_torch_nor_open_clip():
    code = ("import sys\nfrom vdi_cli import clip_context\n"
            "c = clip_context.check_length('person opens the door ' * 30)\n"
            "assert c.exact and c.tokens == 120 and c.cut_tokens == 45, c\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_merges_file_missing_means_an_estimate(monkeypatch):
    monkeypatch.setattr(clip_bpe, "merges_path", lambda: None)
    clip_bpe.load.cache_clear()
    try:
        check = clip_context.check_length("person opens the door " * 30)
    finally:
        clip_bpe.load.cache_clear()
    assert (check.exact, check.tokens, check.cut_tokens) == (False, 120, 45)


def test_spacy_loads_without_torch_and_torch_imports_afterwards():
    pytest.importorskip("spacy")
    code = ("import sys\nfrom vdi_cli.registry import get_component\n"
            "p = get_component('parser', 'spacy').build(None)\n"
            "q = p.parse('a man opens the door')\n"
            "assert q.chunk_texts() == ['a man', 'the door'], q\n"
            "print('torch' in sys.modules)\n"
            "import thinc.compat, torch\n"
            "print(thinc.compat.has_torch, torch.ones(2).sum().item())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "VDI_PLUGINS": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "2.0"]


def test_a_pipeline_with_pytorch_layers_gets_torch(tmp_path):
    from vdi_plugins.parsers.spacy_parser import needs_torch, pipeline_config

    small = tmp_path / "small"
    (small / "small-1.0").mkdir(parents=True)
    (small / "small-1.0" / "config.cfg").write_text("[components.tok2vec]\nfactory = \"tok2vec\"\n")
    trf = tmp_path / "trf"
    trf.mkdir()
    (trf / "config.cfg").write_text("[components.transformer]\n"
                                    "@architectures = \"spacy-transformers.TransformerModel.v3\"\n")
    assert pipeline_config(str(small)).startswith("[components.tok2vec]")
    assert needs_torch(str(small)) is False
    assert needs_torch(str(trf)) is True
    assert needs_torch(str(tmp_path / "nowhere")) is True  # unknown: torch as usual


LONG = " ".join(["person slowly opens the wooden door"] * 20)  # 120 CLIP tokens


def _spy(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = clip_context.check_length

    def counting(text, **kw):
        seen.append(text)
        return real(text, **kw)

    monkeypatch.setattr(clip_context, "check_length", counting)
    return seen


def test_counts_are_stored_and_a_re_parse_counts_nothing(tmp_path, monkeypatch):
    pytest.importorskip("spacy")
    db = open_db(tmp_path / "v.db")
    texts = ["a man opens the door", "a woman sits on a chair near the window", LONG]
    first = parse_texts(texts, db=db)
    rows = {t: json.loads(p) for t, p in db.execute("select text, parsed from queries")}
    assert rows[LONG][COUNTS_KEY][0] == 120
    assert rows[LONG][CUT_KEY][0] == first.long[0].check.cut_text  # what a warning shows
    assert CUT_KEY not in rows["a man opens the door"]
    # Q; Qs "a man the door"; Qd "opens" (under 75 bytes: the fitting pieces counts)
    assert rows["a man opens the door"][COUNTS_KEY] == [5, 4, 1]
    seen = _spy(monkeypatch)
    again = parse_texts(texts, db=db)
    assert again.cached == 3 and again.parsed == 0
    assert seen == []  # the rows answer every check, the long query's warning included
    assert again.long == first.long
    assert (again.long[0].check.cut_tokens, again.long[0].check.exact) == (45, True)
    assert again.queries == first.queries
    # a row with counts that are over but no cut text is counted again
    data = dict(rows[LONG])
    del data[CUT_KEY]
    with db.conn:
        db.conn.execute("update queries set parsed = ? where text = ?", [json.dumps(data), LONG])
    third = parse_texts(texts, db=db)
    assert LONG in seen and "a man opens the door" not in seen
    assert third.long == first.long


def test_rows_stored_without_counts_get_them_on_the_next_parse(tmp_path, monkeypatch):
    pytest.importorskip("spacy")
    db = open_db(tmp_path / "v.db")
    report = parse_texts(["a man opens the door"], db=db)
    key = config_key(report.parser_config)
    q = report.queries[0]
    with db.conn:  # as a row written before counts were kept
        db.conn.execute("update queries set parsed = ?", [json.dumps(q.to_dict())])
    seen = _spy(monkeypatch)
    parse_texts(["a man opens the door"], db=db)
    assert seen  # counted once...
    (parsed,) = db.execute("select parsed from queries where parser_config = ?",
                           [key]).fetchone()
    assert json.loads(parsed)[COUNTS_KEY] == [5, 4, 1]
    seen.clear()
    parse_texts(["a man opens the door"], db=db)
    assert seen == []  # ...and never again


def test_to_dict_and_from_dict_keep_the_shape():
    q = ParsedQuery(text="a man waves", tokens=(Token("a", "DET", "a"), Token("man", "NOUN", "man"),
                                                Token("waves", "VERB", "wave", "")),
                    chunks=((0, 2),), static="a man", dynamic="waves",
                    static_masked=(False, False, True), dynamic_masked=(True, True, False),
                    parser="spacy", masking="delete")
    d = q.to_dict()
    assert d == {"text": "a man waves",
                 "tokens": [{"text": "a", "pos": "DET", "lemma": "a", "whitespace": " "},
                            {"text": "man", "pos": "NOUN", "lemma": "man", "whitespace": " "},
                            {"text": "waves", "pos": "VERB", "lemma": "wave", "whitespace": ""}],
                 "chunks": [[0, 2]], "static": "a man", "dynamic": "waves",
                 "static_masked": [False, False, True], "dynamic_masked": [True, True, False],
                 "parser": "spacy", "masking": "delete", "placeholder": "",
                 "chunk_texts": ["a man"]}
    assert list(d) == ["text", "tokens", "chunks", "static", "dynamic", "static_masked",
                       "dynamic_masked", "parser", "masking", "placeholder", "chunk_texts"]
    assert ParsedQuery.from_dict(d) == q
    adopted = ParsedQuery.from_dict(json.loads(json.dumps(d)), adopt=True)
    assert adopted == q and hash(adopted.tokens) == hash(q.tokens)
    copied_from = q.to_dict()
    copy = ParsedQuery.from_dict(copied_from)
    copied_from["tokens"][0]["text"] = "changed"  # without adopt, the caller's dicts are copied
    assert copy.tokens[0].text == "a"
    with pytest.raises(AttributeError):
        adopted.tokens[0].text = "b"  # still frozen


def test_the_stored_row_format_round_trips_and_old_rows_still_read():
    from vdi_cli.pipeline.parse import row_data, row_query

    q = ParsedQuery(text="he waves", tokens=(Token("he", "PRON", "he"), Token("waves", "VERB",
                                                                              "wave", "")),
                    chunks=((0, 1),), static="he", dynamic="*", static_masked=(False, True),
                    dynamic_masked=(True, False), parser="x", masking="placeholder",
                    placeholder="*")
    data = row_data(q)
    assert data["tokens"] == [["he", "PRON", "he", " "], ["waves", "VERB", "wave", ""]]
    assert (data["static_masked"], data["dynamic_masked"]) == ("01", "10")
    assert row_query(json.loads(json.dumps(data))) == q
    assert row_query(json.loads(json.dumps(q.to_dict()))) == q  # a row written before format 2
    words = ("a man in a red shirt opens the door of the small house and walks out").split()
    long = ParsedQuery(text=" ".join(words), tokens=tuple(Token(w, "X", w) for w in words),
                       chunks=((0, 2),), static="a man", dynamic="", parser="x",
                       static_masked=(False,) * 2 + (True,) * 13,
                       dynamic_masked=(True,) * 2 + (False,) * 13)
    assert len(json.dumps(row_data(long))) < 0.6 * len(json.dumps(long.to_dict()))
