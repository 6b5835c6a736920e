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


def check_length(text: str, *, use_tokenizer: bool = True) -> LengthCheck:
    """Count `text` in CLIP tokens and describe what falls past the 75 that fit."""
    if len(text.encode("utf-8")) <= CONTENT_TOKENS:
        return LengthCheck(len(estimate_pieces(text)), False, 0, "")
    tok = _clip_tokenizer() if use_tokenizer else None
    if tok is not None:
        ids = tok.encode(text)
        cut = ids[CONTENT_TOKENS:]
        return LengthCheck(len(ids), True, len(cut), tok.decode(cut).strip() if cut else "")
    pieces = estimate_pieces(text)
    cut = pieces[CONTENT_TOKENS:]
    return LengthCheck(len(pieces), False, len(cut), " ".join(cut))


def describe(check: LengthCheck, what: str = "the query", width: int = 60) -> str:
    """A one-line warning: how long, what is cut, how it was counted."""
    shown = check.cut_text if len(check.cut_text) <= width else check.cut_text[:width] + "..."
    how = "counted with the CLIP tokenizer" if check.exact else "estimated from its words"
    return (
        f"{what} has {check.tokens} CLIP tokens ({how}); a CLIP text encoder reads "
        f"{CONTENT_TOKENS}, so the last {check.cut_tokens} are cut: \"{shown}\""
    )
