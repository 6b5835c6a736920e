"""A third-party vdi plugin: the `keyword-chunks` query parser.

It needs no NLP model: a noun chunk is a determiner followed by any number of known modifiers
(colours, sizes, ...) and one more word, the head noun ("the big red square"). That is crude next
to spaCy, but it runs anywhere, instantly, and shows every step of writing a plugin:

1. implement a hook (`register_query_parsers`) with `@hookimpl`;
2. call `register(id, factory, config=..., description=...)` for each component;
3. list the module under `[project.entry-points.vdi]` in pyproject.toml and pip-install it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from vdi_cli.hookspecs import hookimpl
from vdi_cli.masking import DEFAULT_PLACEHOLDER, DEFAULT_STRATEGY, build_parsed_query
from vdi_cli.types import ParsedQuery, Token

DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "his", "her", "their", "its",
               "my", "your", "our", "some", "another", "one", "two", "three"}
MODIFIERS = {"red", "green", "blue", "yellow", "white", "black", "orange", "purple", "pink",
             "brown", "grey", "gray", "big", "small", "large", "little", "tiny", "huge", "old",
             "young", "new", "other", "second", "first", "wooden", "open", "closed"}
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]", re.UNICODE)


class KeywordChunksConfig(BaseModel):
    masking: str = Field(DEFAULT_STRATEGY, description="delete | placeholder")
    placeholder: str = Field(DEFAULT_PLACEHOLDER, description="Text of a masked word.")


class KeywordChunksParser:
    def __init__(self, config: KeywordChunksConfig) -> None:
        self.config = config

    def tokenize(self, text: str) -> list[Token]:
        matches = list(_WORD.finditer(text))
        tokens = []
        for i, m in enumerate(matches):
            nxt = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            tokens.append(Token(m.group(), lemma=m.group().lower(), whitespace=text[m.end():nxt]))
        return tokens

    def chunks(self, tokens: list[Token]) -> list[tuple[int, int]]:
        spans, i = [], 0
        words = [t.text.lower() for t in tokens]
        while i < len(words):
            if words[i] in DETERMINERS:
                j = i + 1
                while j < len(words) and words[j] in MODIFIERS:
                    j += 1
                if j < len(words) and words[j].isalpha():
                    spans.append((i, j + 1))
                    i = j + 1
                    continue
            i += 1
        return spans

    def parse(self, text: str) -> ParsedQuery:
        tokens = self.tokenize(text)
        return build_parsed_query(
            text,
            tokens,
            self.chunks(tokens),
            strategy=self.config.masking,
            placeholder=self.config.placeholder,
            parser="keyword-chunks",
        )

    def parse_many(self, texts: list[str]) -> list[ParsedQuery]:
        return [self.parse(t) for t in texts]


@hookimpl
def register_query_parsers(register: Any) -> None:
    register(
        "keyword-chunks",
        KeywordChunksParser,
        config=KeywordChunksConfig,
        description="Rule-based noun chunks (determiner + modifiers + noun); no model needed. "
        "Example third-party plugin.",
    )
