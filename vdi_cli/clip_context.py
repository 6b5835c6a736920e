"""How much of a sentence fits CLIP's text context (77 tokens: start, 75 words' tokens, end).

CLIP-style text encoders cut a sentence after 75 BPE tokens. `check_length` says whether a text
is cut and what is lost, so `vdi parse` can warn before training silently drops words.

Counting: a text whose UTF-8 size is at most 75 bytes always fits (a BPE token covers at least
one byte), so most queries need no tokenizer. Longer ones are counted exactly with CLIP's BPE
(`vdi_cli.clip_bpe`, which reads open_clip's merges file without importing torch) when
open_clip is installed. Without it the count is an estimate: the number of
pieces CLIP's pre-tokenizer splits the text into (words, numbers digit by digit, punctuation
runs, "'s"-style suffixes). Each piece is at least one BPE token and a common English word is
exactly one, so the estimate is a lower bound that is exact for plain English.

77 is CLIP's context and the default; a backbone states its own (`LoadedBackbone.
context_length`: tiny-shapes reads 32) and callers that know the backbone pass it
(`context_length=`), so the check cuts where that backbone's tokenizer cuts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CONTEXT_LENGTH = 77
CONTENT_TOKENS = CONTEXT_LENGTH - 2  # start-of-text and end-of-text take two

# CLIP's pre-tokenizer (open_clip.tokenizer), with Python's `re`: \p{L} ~ [^\W\d_], \p{N} ~ \d.
_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


@dataclass(frozen=True)
class LengthCheck:
    """The CLIP token count of a text and, when it is over, what the encoder never sees."""

    tokens: int
    exact: bool  # counted with the CLIP tokenizer (else a word-based lower bound)
    cut_tokens: int  # tokens past the 75 that fit (0 when it fits)
    cut_text: str  # the text of those tokens ("" when it fits)
    limit: int = CONTENT_TOKENS  # the content tokens that fit (the context minus start and end)

    @property
    def truncated(self) -> bool:
        return self.cut_tokens > 0


def _clip_tokenizer() -> Any:
    """CLIP's BPE (`vdi_cli.clip_bpe`: open_clip's merges file, without importing torch or
    open_clip), or None when it is not installed."""
    from vdi_cli import clip_bpe

    return clip_bpe.load()


def estimate_pieces(text: str) -> list[str]:
    """The pieces CLIP's pre-tokenizer makes of `text` (lower-cased, as CLIP reads it)."""
    return _PIECES.findall(" ".join(text.lower().split()))


def content_tokens(context_length: int | None) -> int:
    """The tokens of text that fit a context of `context_length` (None or 0: CLIP's 77)."""
    return int(context_length or CONTEXT_LENGTH) - 2


def check_length(text: str, *, use_tokenizer: bool = True,
                 context_length: int | None = None) -> LengthCheck:
    """Count `text` in CLIP tokens and describe what falls past the ones that fit a context of
    `context_length` tokens (None: CLIP's 77, so 75 fit)."""
    limit = content_tokens(context_length)
    if len(text.encode("utf-8")) <= limit:
        return LengthCheck(len(estimate_pieces(text)), False, 0, "", limit)
    tok = _clip_tokenizer() if use_tokenizer else None
    if tok is not None:
        ids = tok.encode(text)
        cut = ids[limit:]
        return LengthCheck(len(ids), True, len(cut), tok.decode(cut).strip() if cut else "",
                           limit)
    pieces = estimate_pieces(text)
    cut = pieces[limit:]
    return LengthCheck(len(pieces), False, len(cut), " ".join(cut), limit)


def describe(check: LengthCheck, what: str = "the query", width: int = 60) -> str:
    """A one-line warning: how long, what is cut, how it was counted."""
    shown = check.cut_text if len(check.cut_text) <= width else check.cut_text[:width] + "..."
    how = "counted with the CLIP tokenizer" if check.exact else "estimated from its words"
    reader = "a CLIP text encoder" if check.limit == CONTENT_TOKENS else \
        "the backbone's text encoder"
    return (
        f"{what} has {check.tokens} CLIP tokens ({how}); {reader} reads "
        f"{check.limit}, so the last {check.cut_tokens} are cut: \"{shown}\""
    )
