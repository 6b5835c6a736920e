"""The `stanza` query parser: noun chunks derived from a Universal Dependencies tree.

Stanza has no `noun_chunks`, so a chunk is built here from the tree: a nominal head (NOUN,
PROPN or PRON, as in spaCy) with its determiners, adjectival and numeric modifiers, compounds
and possessors (and what those carry: "very" in "the very big door", "'s" in "the man's hat"),
never a clause (acl, relcl) or a prepositional phrase, cut to the contiguous stretch of words
around the head. The chunking works on any stanza `Document`, including one built by hand.

Stanza downloads its models at run time; this parser never does (download_method=None): missing
models are a VdiError that names the directory and the command that downloads them.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.masking import build_parsed_query, masking_key
from vdi_cli.types import ParsedQuery, Token

PROCESSORS = "tokenize,pos,lemma,depparse"
HEAD_UPOS = {"NOUN", "PROPN", "PRON"}
# Dependents that belong to their head's chunk (UD v2 relations, subtypes by prefix).
NP_DEPS = {"det", "det:poss", "det:predet", "amod", "nummod", "nmod:poss", "poss", "fixed",
           "goeswith"}
NP_DEP_PREFIXES = ("compound", "flat")
# Inside a modifier: "very" under an adjective or number, "'s" under a possessor.
INNER_DEPS = {"amod": {"advmod"}, "nummod": {"advmod"}, "nmod:poss": {"case"},
              "poss": {"case"}}


def _is_np_dep(deprel: str) -> bool:
    return deprel in NP_DEPS or deprel.split(":")[0] in NP_DEP_PREFIXES


def _get(word: Any, name: str) -> Any:
    return word[name] if isinstance(word, dict) else getattr(word, name)


def chunk_sentence(words: Sequence[Any]) -> list[tuple[int, int]]:
    """Noun-chunk spans [start, end) over the 0-based positions of one sentence's `words`.

    `words` are stanza `Word`s or dicts with id (1-based), head (0 = root), deprel and upos.
    """
    n = len(words)
    ids = [int(_get(w, "id")) for w in words]
    pos = {wid: i for i, wid in enumerate(ids)}
    heads = [int(_get(w, "head") or 0) for w in words]
    rels = [(_get(w, "deprel") or "").lower() for w in words]
    upos = [_get(w, "upos") or "" for w in words]
    children: dict[int, list[int]] = {i: [] for i in range(n)}
    for i, h in enumerate(heads):
        if h in pos:
            children[pos[h]].append(i)

    def collect(i: int, members: set[int]) -> None:
        for c in children[i]:
            allowed = _is_np_dep(rels[c]) or rels[c] in INNER_DEPS.get(rels[i], ())
            if allowed and c not in members:
                members.add(c)
                collect(c, members)

    spans = []
    for i in range(n):
        if upos[i] not in HEAD_UPOS or _is_np_dep(rels[i]):
            continue  # not nominal, or part of another noun's chunk
        members = {i}
        collect(i, members)
        start = end = i
        while start - 1 in members:
            start -= 1
        while end + 1 in members:
            end += 1
        spans.append((start, end + 1))
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):  # a malformed tree could make spans overlap: keep the first
        if not out or s >= out[-1][1]:
            out.append((s, e))
    return out


def document_tokens_and_chunks(doc: Any) -> tuple[list[Token], list[tuple[int, int]]]:
    """Tokens (one per syntactic word) and noun chunks over the whole stanza document."""
    tokens: list[Token] = []
    chunks: list[tuple[int, int]] = []
    for sentence in doc.sentences:
        offset = len(tokens)
        for tok in sentence.tokens:
            words = tok.words
            for k, w in enumerate(words):
                ws = (tok.spaces_after or "") if k == len(words) - 1 else ""
                tokens.append(Token(w.text, w.upos or "", w.lemma or "", ws))
        chunks.extend((s + offset, e + offset) for s, e in chunk_sentence(sentence.words))
    return tokens, chunks


def download_command(model_dir: Path) -> str:
    return (
        f"python -c \"import stanza; stanza.download('en', model_dir='{model_dir}', "
        f"processors='{PROCESSORS}')\""
    )


def check_models(model_dir: Path) -> None:
    """Raise a VdiError unless `model_dir` holds stanza's English models for PROCESSORS."""
    missing = []
    if not (model_dir / "resources.json").is_file():
        missing.append("resources.json")
    for proc in PROCESSORS.split(","):
        folder = model_dir / "en" / proc
        if not folder.is_dir() or not any(folder.iterdir()):
            missing.append(f"en/{proc}")
    if missing:
        raise VdiError(
            f"Stanza's English models are not downloaded in {model_dir} "
            f"(missing: {', '.join(missing)})",
            hint=f"download them once (needs network): {download_command(model_dir)}; "
            "or pass --parser-option model_dir=DIR, or use the default parser: --parser spacy",
        )


class StanzaParser:
    """Parses with a stanza Pipeline (tokenize, pos, lemma, depparse), loaded on first parse."""

    id = "stanza"

    def __init__(self, config: Any) -> None:
        self.config = config
        self._nlp: Any = None

    def model_dir(self) -> Path:
        if self.config.model_dir:
            return Path(self.config.model_dir).expanduser()
        env = os.environ.get("STANZA_RESOURCES_DIR")
        if env:
            return Path(env).expanduser()
        from stanza.resources.common import DEFAULT_MODEL_DIR

        return Path(DEFAULT_MODEL_DIR)

    def cache_config(self) -> dict[str, Any]:
        try:
            version = importlib.metadata.version("stanza")
        except importlib.metadata.PackageNotFoundError:
            version = ""
        return {"package": self.config.package, "stanza_version": version,
                **masking_key(self.config.masking, self.config.placeholder)}

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            self._nlp = self._load()
        return self._nlp

    def _load(self) -> Any:
        try:
            import stanza
        except ImportError as exc:
            raise VdiError(f"the stanza parser needs stanza, which could not be imported ({exc})",
                           hint="pip install -c constraints.txt 'vdi[stanza]'") from exc
        model_dir = self.model_dir()
        check_models(model_dir)
        try:
            return stanza.Pipeline(
                "en", dir=str(model_dir), package=self.config.package, processors=PROCESSORS,
                download_method=None, logging_level="WARN", tokenize_no_ssplit=True,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise VdiError(
                f"Stanza's English models in {model_dir} cannot be loaded: {exc}",
                hint=f"download them again: {download_command(model_dir)}",
            ) from exc

    def from_document(self, text: str, doc: Any) -> ParsedQuery:
        tokens, chunks = document_tokens_and_chunks(doc)
        return build_parsed_query(text, tokens, chunks, strategy=self.config.masking,
                                  placeholder=self.config.placeholder, parser=self.id)

    def parse(self, text: str) -> ParsedQuery:
        return self.parse_many([text])[0]

    def parse_many(self, texts: Sequence[str]) -> list[ParsedQuery]:
        import stanza

        clean = [" ".join(t.split()) for t in texts]
        todo = [c for c in clean if c]
        docs: Iterable[Any] = ()
        if todo:
            done: list[Any] = []
            size = self.config.batch_size
            for i in range(0, len(todo), size):
                batch = [stanza.Document([], text=c) for c in todo[i:i + size]]
                done.extend(self.nlp.bulk_process(batch))
            docs = done
        it = iter(docs)
        return [
            self.from_document(text, next(it)) if c
            else build_parsed_query(text, [], [], strategy=self.config.masking,
                                    placeholder=self.config.placeholder, parser=self.id)
            for text, c in zip(texts, clean, strict=True)
        ]
