"""Every sentence of Charades-CG novel-word and Charades-STA test, parsed with spaCy: the masking
invariants hold on real data and the empty-Qs / empty-Qd counts match what the code reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdi_cli.masking import build_parsed_query, has_content
from vdi_cli.pipeline.parse import parse_texts

# (file, format, queries, empty Qs, empty Qd) with en_core_web_sm 3.8.0 (docs/parse.md, "Masking,
# and what we chose")
SPLITS = [
    ("charades_cg/novel_word.json", "mmn-json", 695, 0, 0),
    ("charades_sta/charades_sta_test.txt", "charades-sta", 3720, 1, 5),
]


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # as conftest


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def parsed():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    from vdi_cli import plugins
    from vdi_cli.datasets import load_dataset

    plugins.reset_host()
    out = {}
    for rel, fmt, *_ in SPLITS:
        queries = [a.query for a in load_dataset(fmt, SHARED_DATA / rel).annotations]
        out[rel] = (queries, parse_texts(queries))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("rel", "fmt", "count", "empty_qs", "empty_qd"), SPLITS)
def test_masking_invariants_on_real_sentences(parsed, rel, fmt, count, empty_qs, empty_qd):
    queries, report = parsed[rel]
    assert len(queries) == len(report.queries) == count
    no_chunk = only_chunks = 0
    for text, q in zip(queries, report.queries, strict=True):
        assert q.text == text
        # the tokens are the sentence (whitespace normalised)
        assert "".join(t.text + t.whitespace for t in q.tokens).strip() == " ".join(text.split())
        inside = [False] * len(q.tokens)
        last = 0
        for s, e in q.chunks:
            assert last <= s < e <= len(q.tokens)  # sorted, non-overlapping, in range
            last = e
            inside[s:e] = [True] * (e - s)
        assert list(q.dynamic_masked) == inside
        assert list(q.static_masked) == [not i for i in inside]
        kept_s = [t.text for t, i in zip(q.tokens, inside, strict=True) if i]
        kept_d = [t.text for t, i in zip(q.tokens, inside, strict=True) if not i]
        # every kept Qs token is inside a chunk and every chunk token is in Qs, in order
        assert _squash(q.static) == "".join(kept_s)
        # no chunk token is in Qd: Qd is exactly the other tokens, in order, or "" when
        # those are only punctuation
        if any(has_content(t) for t in kept_d):
            assert _squash(q.dynamic) == "".join(kept_d)
        else:
            assert q.dynamic == ""
        no_chunk += not q.chunks
        only_chunks += not any(has_content(t) for t in kept_d)
        # the placeholder strategy: one placeholder per masked word, punctuation dropped
        p = build_parsed_query(text, q.tokens, q.chunks, strategy="placeholder",
                               placeholder="MASKED")
        if p.dynamic:
            assert p.dynamic.count("MASKED") == sum(has_content(t) for t in kept_s)
    assert (report.empty_static, report.empty_dynamic) == (no_chunk, only_chunks)
    if report.parser_config["model_version"] == "3.8.0":
        assert (report.empty_static, report.empty_dynamic) == (empty_qs, empty_qd)


@pytest.mark.slow
def test_empty_sides_really_occur(parsed):
    _, report = parsed["charades_sta/charades_sta_test.txt"]
    no_qs = [q.text for q in report.queries if not q.has_static]
    no_qd = [q.text for q in report.queries if not q.has_dynamic]
    assert no_qs and no_qd
    assert all(not q.chunks for q in report.queries if not q.has_static)
