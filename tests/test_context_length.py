"""Each backbone states its own text context (`LoadedBackbone.context_length`), and the core
checks query length against it instead of CLIP's 77: tiny-shapes reads 32 tokens."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vdi_cli import clip_context
from vdi_cli.hookspecs import hookimpl
from vdi_cli.pipeline.parse import parse_texts
from vdi_cli.testing import WordParser, plugin_host

FORTY_WORDS = " ".join(["word"] * 40)  # 40 CLIP tokens: over 32's 30, within 77's 75


def test_a_32_token_backbone_states_and_cuts_at_32(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from vdi_cli.backbones import load_backbone
    from vdi_cli.pipeline.train_run import text_context

    monkeypatch.setenv("VDI_HOME", str(tmp_path))
    shapes = load_backbone("tiny-shapes")
    assert shapes.context_length == 32
    assert tuple(shapes.tokenize([FORTY_WORDS]).shape) == (1, 32)
    trainer = SimpleNamespace(config=SimpleNamespace(context_length=None))
    assert text_context(trainer, shapes) == 32  # what training checks its queries against
    trainer.config.context_length = 20  # --context-length wins
    assert text_context(trainer, shapes) == 20
    assert text_context(SimpleNamespace(config=SimpleNamespace(context_length=None)),
                        SimpleNamespace()) is None  # a backbone that states none: CLIP's


def test_the_length_check_cuts_at_the_given_context():
    clip = clip_context.check_length(FORTY_WORDS)
    assert not clip.truncated and clip.limit == 75
    short = clip_context.check_length(FORTY_WORDS, context_length=32)
    assert (short.tokens, short.limit, short.cut_tokens) == (40, 30, 10)
    assert short.cut_text == " ".join(["word"] * 10)
    assert "the backbone's text encoder reads 30, so the last 10 are cut" in \
        clip_context.describe(short)


class _WordsPlugin:
    __name__ = "words-plugin"

    @hookimpl
    def register_query_parsers(self, register):
        register("words", WordParser)


def test_parse_reports_long_queries_against_the_backbones_context(monkeypatch):
    monkeypatch.setenv("VDI_PLUGINS", "")
    with plugin_host(_WordsPlugin()):
        texts = [FORTY_WORDS, "a dog runs"]
        assert parse_texts(texts, "words").long == []
        long = parse_texts(texts, "words", context_length=32).long
    assert [(x.index, x.field, x.check.cut_tokens) for x in long] == [(0, "Q", 10), (0, "Qd", 9)]
