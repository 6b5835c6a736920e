"""Static / dynamic query construction from tokens and noun-chunk spans (paper section 3.1).

The static query Qs keeps only the noun-chunk tokens; the dynamic query Qd keeps every token
outside the noun chunks. Parsers supply tokens and chunks; this module does the masking, so every
parser (built-in or third-party) masks the same way.

Strategies:
- "delete" (default): masked words are dropped ("opens and walks out of").
- "placeholder": each masked word becomes `placeholder` ("* opens * * and walks out of * *").

Why "delete" is the default: the queries feed a CLIP BPE tokenizer, which has no mask token.
Every candidate placeholder is an ordinary piece of its vocabulary with a meaning of its own:
"*" and "_" are one token each (an asterisk, an underscore), "<mask>" and "[MASK]" split into
three tokens that include the real word "mask", so a placeholder injects a word that was never
in the sentence, once per masked word, and eats context. Deleting leaves only words the
sentence had, in their order, which is the kind of short caption fragment CLIP was trained on.
The placeholder strategy keeps the word count and positions, for experiments.

Rendering rules (both strategies):
- Kept tokens keep the spacing they had in the sentence ("turn on." not "turn on ."); where
  masked tokens were removed in between, the spacing before the next kept token is used, and
  two words never run together.
- Punctuation, symbols and emoji (tokens without a letter or digit) are never replaced by a
  placeholder: on the side where they are masked they are simply dropped.
- A side with no kept letter or digit is the empty string "", whatever the strategy: a sentence
  without noun chunks has Qs == "" and one made only of noun chunks has Qd == "" (both occur in
  the real data). Consumers test `ParsedQuery.has_static` / `has_dynamic`; the VDI objectives
  leave such sentences out of the terms that need the missing side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vdi_cli.types import ParsedQuery, Token

STRATEGIES = ("delete", "placeholder")
DEFAULT_STRATEGY = "delete"
DEFAULT_PLACEHOLDER = "*"


_CONTENT = re.compile(r"[^\W_]")  # a letter or a digit, in any script


def has_content(text: str) -> bool:
    """True when `text` has a letter or a digit (in any script)."""
    return _CONTENT.search(text) is not None


def _space(ws: str) -> str:
    """Any run of whitespace becomes one space; no whitespace stays none."""
    return " " if ws else ""


def render(
    tokens: Sequence[Token], keep: Sequence[bool], strategy: str, placeholder: str
) -> str:
    """The text of one side (Qs or Qd): kept tokens, masked ones deleted or replaced."""
    out: list[str] = []
    prev_index = -1  # index of the last token written
    prev_is_placeholder = False
    any_content = False
    for i, tok in enumerate(tokens):
        if not tok.text.strip():
            continue
        if keep[i]:
            piece, is_placeholder = tok.text, False
            any_content = any_content or has_content(tok.text)
        elif strategy == "placeholder" and has_content(tok.text):
            piece, is_placeholder = placeholder, True
        else:
            continue
        if out:
            sep = _space(tokens[i - 1].whitespace)
            adjacent = prev_index == i - 1 and not (is_placeholder or prev_is_placeholder)
            wordlike = (is_placeholder or has_content(piece)) and (
                prev_is_placeholder or has_content(out[-1]))
            if not sep and not adjacent and wordlike:
                sep = " "  # a gap or a placeholder: never glue two words together
            out.append(sep)
        out.append(piece)
        prev_index, prev_is_placeholder = i, is_placeholder
    if not any_content:
        return ""
    return "".join(out).strip()


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
    of the parser that produced them. `static_masked[i]` is True for every token outside the
    chunks and `dynamic_masked[i]` for every token inside one (whether or not the token is
    rendered: punctuation is never turned into a placeholder).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown masking strategy {strategy!r}; expected one of {STRATEGIES}")
    if strategy == "placeholder" and (not placeholder or placeholder != placeholder.strip()
                                      or " " in placeholder):
        raise ValueError(f"placeholder must be a non-empty word without spaces, "
                         f"got {placeholder!r}")
    in_chunk = [False] * len(tokens)
    for start, end in chunks:
        if not 0 <= start < end <= len(tokens):
            raise ValueError(f"chunk span {(start, end)} outside {len(tokens)} tokens")
        for i in range(start, end):
            if in_chunk[i]:
                raise ValueError(f"chunk spans overlap at token {i}")
            in_chunk[i] = True
    static = render(tokens, in_chunk, strategy, placeholder)
    dynamic = render(tokens, [not c for c in in_chunk], strategy, placeholder)
    return ParsedQuery(
        text=text,
        tokens=tuple(tokens),
        chunks=tuple(sorted((int(s), int(e)) for s, e in chunks)),
        static=static,
        dynamic=dynamic,
        static_masked=tuple(not c for c in in_chunk),
        dynamic_masked=tuple(in_chunk),
        parser=parser,
        masking=strategy,
        placeholder=placeholder if strategy == "placeholder" else "",
    )


def masking_key(strategy: str, placeholder: str) -> dict[str, str]:
    """The masking settings that change a parse (part of every parser's cache key): the
    placeholder only matters when it is written."""
    out = {"masking": strategy}
    if strategy == "placeholder":
        out["placeholder"] = placeholder
    return out
