"""Plain dataclasses passed between stages. Torch-free so every stage and plugin can share them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Token:
    """One word of a query as a parser saw it."""

    text: str
    pos: str = ""
    lemma: str = ""
    whitespace: str = " "  # what follows the token in the original text


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
        d = asdict(self)
        d["tokens"] = [asdict(t) for t in self.tokens]
        d["chunks"] = [list(c) for c in self.chunks]
        d["chunk_texts"] = self.chunk_texts()
        d["static_masked"] = list(self.static_masked)
        d["dynamic_masked"] = list(self.dynamic_masked)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParsedQuery:
        """Inverse of `to_dict` (extra keys such as chunk_texts are ignored), e.g. for rows
        read back from the `queries` table."""
        return cls(
            text=d["text"],
            tokens=tuple(Token(**t) for t in d["tokens"]),
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
