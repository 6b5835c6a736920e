"""Static / dynamic query construction from tokens and noun-chunk spans (paper section 3.1).

The static query Qs keeps only the noun-chunk tokens; the dynamic query Qd keeps every token
outside the noun chunks. Parsers supply tokens and chunks; this module does the masking, so every
parser (built-in or third-party) masks the same way.

Strategies:
- "delete": masked words are dropped ("opens and walks out of").
- "placeholder": each masked word becomes `placeholder` ("* opens * * and walks out of * *").
"""

from __future__ import annotations

from collections.abc import Sequence

from vdi_cli.types import ParsedQuery, Token

STRATEGIES = ("delete", "placeholder")
DEFAULT_STRATEGY = "delete"
DEFAULT_PLACEHOLDER = "*"


def _join(tokens: Sequence[Token], keep: Sequence[bool], strategy: str, placeholder: str) -> str:
    parts: list[str] = []
    for tok, kept in zip(tokens, keep, strict=False):
        if kept:
            parts.append(tok.text)
        elif strategy == "placeholder":
            parts.append(placeholder)
    return " ".join(p for p in parts if p.strip())


def build_parsed_query(
    text: str,
    tokens: Sequence[Token],
    chunks: Sequence[tuple[int, int]],
    *,
    strategy: str = DEFAULT_STRATEGY,
    placeholder: str = DEFAULT_PLACEHOLDER,
    parser: str = "",
) -> ParsedQuery:
    """Mask `tokens` by noun-chunk spans into Qs and Qd.

    Chunk spans are [start, end) token indices; overlapping or out-of-range spans are an error
    of the parser that produced them.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown masking strategy {strategy!r}; expected one of {STRATEGIES}")
    in_chunk = [False] * len(tokens)
    for start, end in chunks:
        if not 0 <= start < end <= len(tokens):
            raise ValueError(f"chunk span {(start, end)} outside {len(tokens)} tokens")
        for i in range(start, end):
            if in_chunk[i]:
                raise ValueError(f"chunk spans overlap at token {i}")
            in_chunk[i] = True
    static = _join(tokens, in_chunk, strategy, placeholder)
    dynamic = _join(tokens, [not c for c in in_chunk], strategy, placeholder)
    return ParsedQuery(
        text=text,
        tokens=tuple(tokens),
        chunks=tuple((int(s), int(e)) for s, e in chunks),
        static=static,
        dynamic=dynamic,
        static_masked=tuple(not c for c in in_chunk),
        dynamic_masked=tuple(in_chunk),
        parser=parser,
        masking=strategy,
    )
