"""Plain dataclasses passed between stages. Torch-free so every stage and plugin can share them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Token:
    """One word of a query as a parser saw it."""

    text: str
    pos: str = ""
    lemma: str = ""
    whitespace: str = " "  # what follows the token in the original text


_TOKEN_KEYS = ("text", "pos", "lemma", "whitespace")


def make_token(text: str, pos: str = "", lemma: str = "", whitespace: str = " ") -> Token:
    """`Token(...)` without the frozen dataclass's four `object.__setattr__` calls, for code
    that makes hundreds of thousands (reading back a dataset's stored parses)."""
    token = object.__new__(Token)
    object.__setattr__(token, "__dict__", {"text": text, "pos": pos, "lemma": lemma,
                                           "whitespace": whitespace})
    return token


def _token(d: dict[str, Any], adopt: bool) -> Token:
    """A Token from its dict, built as `make_token` builds one. With `adopt` (a dict nobody
    else holds, e.g. freshly decoded JSON) one with exactly the four fields becomes the token's
    own `__dict__`, not even copied."""
    if adopt and len(d) == 4 and all(k in d for k in _TOKEN_KEYS):
        token = object.__new__(Token)
        object.__setattr__(token, "__dict__", d)
        return token
    return make_token(d["text"], d.get("pos", ""), d.get("lemma", ""), d.get("whitespace", " "))


@dataclass(frozen=True)
class ParsedQuery:
    """A sentence Q, its static query Qs (noun chunks kept), dynamic query Qd (chunks masked).

    `chunks` are token spans [start, end). `static_masked[i]` / `dynamic_masked[i]` say whether
    token i was masked in Qs / Qd. `static` / `dynamic` are "" when that side keeps no word
    (no noun chunk, or nothing but noun chunks): see `has_static` / `has_dynamic`.
    """

    text: str
    tokens: tuple[Token, ...]
    chunks: tuple[tuple[int, int], ...]
    static: str
    dynamic: str
    static_masked: tuple[bool, ...]
    dynamic_masked: tuple[bool, ...]
    parser: str = ""
    masking: str = ""
    placeholder: str = ""  # the text of a masked word when masking == "placeholder"

    @property
    def has_static(self) -> bool:
        """False when the sentence has no noun chunk: Qs is "" and terms needing Qs skip it."""
        return bool(self.static)

    @property
    def has_dynamic(self) -> bool:
        """False when the sentence is only noun chunks: Qd is "" and terms needing Qd skip it."""
        return bool(self.dynamic)

    def chunk_texts(self) -> list[str]:
        """The noun chunks as written (the tokens with their original spacing)."""
        return [
            "".join(t.text + t.whitespace for t in self.tokens[s:e]).strip()
            for s, e in self.chunks
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the `queries.parsed` column, `vdi parse --json`), with
        `chunk_texts` added. Written out field by field: `dataclasses.asdict` deep-copies and
        was a quarter of a 17k-sentence parse."""
        return {
            "text": self.text,
            "tokens": [{"text": t.text, "pos": t.pos, "lemma": t.lemma,
                        "whitespace": t.whitespace} for t in self.tokens],
            "chunks": [[s, e] for s, e in self.chunks],
            "static": self.static,
            "dynamic": self.dynamic,
            "static_masked": list(self.static_masked),
            "dynamic_masked": list(self.dynamic_masked),
            "parser": self.parser,
            "masking": self.masking,
            "placeholder": self.placeholder,
            "chunk_texts": self.chunk_texts(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, adopt: bool = False) -> ParsedQuery:
        """Inverse of `to_dict` (extra keys such as chunk_texts are ignored), e.g. for rows
        read back from the `queries` table. `adopt=True` lets the tokens keep `d`'s token
        dicts instead of copying them: only for a `d` that nothing else holds or changes
        (freshly decoded JSON)."""
        return cls(
            text=d["text"],
            tokens=tuple(_token(t, adopt) for t in d["tokens"]),
            chunks=tuple((int(s), int(e)) for s, e in d["chunks"]),
            static=d["static"],
            dynamic=d["dynamic"],
            static_masked=tuple(bool(m) for m in d["static_masked"]),
            dynamic_masked=tuple(bool(m) for m in d["dynamic_masked"]),
            parser=d.get("parser", ""),
            masking=d.get("masking", ""),
            placeholder=d.get("placeholder", ""),
        )


@dataclass(frozen=True)
class Annotation:
    """One (video, query, moment) triple, normalised from any dataset format. Times in seconds."""

    video_id: str
    duration: float
    query: str
    start: float
    end: float
    query_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Moment:
    """A ranked prediction: [start, end] in seconds with its score."""

    start: float
    end: float
    score: float


@dataclass(frozen=True)
class RunEvent:
    """Something that happened in a run, sent to every `track_event` implementation."""

    kind: str  # started | epoch_finished | checkpoint_saved | finished
    run_id: int | None
    command: str
    payload: dict[str, Any] = field(default_factory=dict)
