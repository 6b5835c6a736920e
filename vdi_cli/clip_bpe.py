"""CLIP's byte-level BPE, to count and cut text at the 77-token context without torch.

`open_clip.tokenizer` imports torch, and importing it runs `open_clip/__init__`, which builds
every model class and imports torchvision: 3-7 s, and a gigabyte of memory, to count the tokens
of a sentence (`vdi parse` spent half its start-up there). The tokenizer needs neither. This
module reads the merges file open_clip ships (located with `importlib.util.find_spec`, which does
not import the package) and follows CLIP's steps: ftfy and HTML clean-up, whitespace folding and
lower case, CLIP's pre-tokenizer, then byte-level BPE merges by rank. Its ids equal open_clip's
`SimpleTokenizer` ids (tests compare them on every long query of the real annotation files).
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGE_COUNT = 49152 - 256 - 2  # CLIP's vocabulary: 256 bytes x 2, these merges, 2 specials
SPECIALS = ("<start_of_text>", "<end_of_text>")
END = "</w>"  # marks the last symbol of a word
_PLAIN = re.compile(r"[ -%'-~\t\n\r]*")  # printable ASCII but `&`, and the usual whitespace


def byte_alphabet() -> dict[int, str]:
    """Each byte's symbol: printable Latin-1 bytes stand for themselves, the other 68 take the
    code points from 256 up, in byte order. Ordered as CLIP's vocabulary lists them (the
    printable ones first), which fixes the ids."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1),
                 *range(ord("\xae"), ord("\xff") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(others)})
    return table


def merges_path() -> Path | None:
    """open_clip's merges file, found without importing open_clip (None when not installed)."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MERGES_FILE
        if path.is_file():
            return path
    return None


class ClipBpe:
    """Encode text to CLIP token ids and decode them back, as CLIP's tokenizer does."""

    def __init__(self, path: str | Path) -> None:
        import regex  # open_clip's own dependency: \p{L} and \p{N} classes

        lines = gzip.open(path).read().decode("utf-8").split("\n")[1:MERGE_COUNT + 1]
        merges = [tuple(line.split()) for line in lines]
        self.symbols = byte_alphabet()
        self.bytes_of = {s: b for b, s in self.symbols.items()}
        base = list(self.symbols.values())
        vocab = base + [s + END for s in base] + ["".join(m) for m in merges] + list(SPECIALS)
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.tokens = vocab
        self.rank = {pair: r for r, pair in enumerate(merges)}
        self._words: dict[str, tuple[str, ...]] = {s: (s,) for s in SPECIALS}
        self._ids_of: dict[str, tuple[int, ...]] = {}  # piece as written -> its ids
        specials = "|".join(SPECIALS)
        self._pieces = regex.compile(
            specials + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE)

    @staticmethod
    def clean(text: str) -> str:
        """ftfy's repair, HTML entities undone (twice, as CLIP does), whitespace runs folded,
        lower case. Plain printable ASCII without `&` is what every step leaves as it is (ftfy
        changes only non-ASCII text, control characters, terminal escapes and entities), so
        it skips them: ftfy costs ~0.1 ms a sentence, most of the time here."""
        if not _PLAIN.fullmatch(text):
            import ftfy

            text = html.unescape(html.unescape(ftfy.fix_text(text)))
        return " ".join(text.split()).lower()

    def word(self, piece: str) -> tuple[str, ...]:
        """The BPE symbols of one pre-tokenized piece (already in byte symbols), cached: a
        dataset repeats its words."""
        found = self._words.get(piece)
        if found is not None:
            return found
        symbols = [*piece[:-1], piece[-1] + END]
        while len(symbols) > 1:
            pairs = list(zip(symbols, symbols[1:], strict=False))
            ranks = [self.rank.get(pair, MERGE_COUNT) for pair in pairs]
            best = min(ranks)
            if best == MERGE_COUNT:  # no adjacent pair is a merge
                break
            first, second = pairs[ranks.index(best)]
            merged: list[str] = []
            i = 0
            while i < len(symbols):  # merge every occurrence of the pair, left to right
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        out = tuple(symbols)
        self._words[piece] = out
        return out

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        known = self._ids_of
        for piece in self._pieces.findall(self.clean(text)):
            found = known.get(piece)
            if found is None:  # a piece seen for the first time: bytes -> symbols -> BPE
                symbols = "".join(self.symbols[b] for b in piece.encode("utf-8"))
                found = known[piece] = tuple(self.ids[s] for s in self.word(symbols))
            ids.extend(found)
        return ids

    def decode(self, ids: list[int]) -> str:
        """The text of `ids` (word ends become spaces, as CLIP's decoder writes them)."""
        raw = bytearray(self.bytes_of[c] for c in "".join(self.tokens[i] for i in ids))
        return raw.decode("utf-8", errors="replace").replace(END, " ")


@lru_cache(maxsize=1)
def load() -> Any:
    """The tokenizer, read once per process; None when open_clip's merges file, ftfy or regex
    is not installed (callers then estimate)."""
    path = merges_path()
    if path is None:
        return None
    try:
        import ftfy  # noqa: F401 - checked here so `clean` cannot fail later

        return ClipBpe(path)
    except (ImportError, OSError):
        return None
