"""The parse stage: sentences -> ParsedQuery (Q, Qs, Qd), cached in the `queries` table.

Training, evaluation and `vdi parse` all call `parse_texts`. A parse is keyed by the exact text,
the parser id and the parser's *output-deciding* configuration (`cache_config()`: model, model
version, masking, placeholder; not the batch size), written as canonical JSON with sorted keys.
A text already stored under the same key is read back instead of parsed again, so training reuses
what `vdi parse` stored, and a cache hit never loads the NLP model.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vdi_cli import clip_context
from vdi_cli.clip_context import LengthCheck
from vdi_cli.errors import VdiError
from vdi_cli.types import ParsedQuery, make_token

CHUNK = 1024  # texts per parse_many call (progress granularity)
# In `queries.parsed`: check_length's CLIP token counts of [Q, Qs, Qd] (exact for a text over
# 75 bytes; a shorter one fits whatever its count), so a re-parse need not count again.
COUNTS_KEY = "clip_tokens"
CUT_KEY = "clip_cut"  # beside it when a text is over: what CLIP cuts off [Q, Qs, Qd] ("" fits)


@dataclass(frozen=True)
class LongText:
    """A Q, Qs or Qd over the text context (CLIP's 77 tokens unless the backbone states its
    own)."""

    index: int  # position of the first input text it belongs to
    field: str  # "Q", "Qs" or "Qd"
    text: str
    check: LengthCheck


@dataclass
class ParseReport:
    """Parsed queries (one per input text, same order) and what happened to get them."""

    queries: list[ParsedQuery]
    parser: str
    parser_config: dict[str, Any]
    parsed: int = 0  # distinct texts parsed now
    cached: int = 0  # distinct texts read back from the store
    stored: int = 0  # rows written to the store
    long: list[LongText] = field(default_factory=list)

    @property
    def empty_static(self) -> int:
        """Input queries with no noun chunk (Qs == "")."""
        return sum(not q.has_static for q in self.queries)

    @property
    def empty_dynamic(self) -> int:
        """Input queries made only of noun chunks (Qd == "")."""
        return sum(not q.has_dynamic for q in self.queries)

    def summary(self) -> dict[str, Any]:
        return {
            "parser": self.parser,
            "parser_config": self.parser_config,
            "queries": len(self.queries),
            "distinct": len({q.text for q in self.queries}),
            "parsed": self.parsed,
            "cached": self.cached,
            "stored": self.stored,
            "empty_static": self.empty_static,
            "empty_dynamic": self.empty_dynamic,
            "over_context": len({t.index for t in self.long}),
        }


def config_key(config: dict[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces): the `queries.parser_config` column."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build_parser(
    parser_id: str | None = None, options: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The parser object (nothing loaded yet) and the configuration its parses are keyed by.

    A third-party parser without `cache_config()` is keyed by its whole validated config.
    `parser_id` None: the parser a plugin registers with `default_for="parser"`.
    """
    from vdi_cli.defaults import default_id
    from vdi_cli.registry import get_component

    parser_id = parser_id or default_id("parser")

    component = get_component("parser", parser_id)
    parser = component.build(options or None)
    if hasattr(parser, "cache_config"):
        key = dict(parser.cache_config())
    else:
        config = getattr(parser, "config", None)
        key = config.model_dump(mode="json") if hasattr(config, "model_dump") else {}
    return parser, key


def _bits(flags: Sequence[bool]) -> str:
    return "".join("1" if f else "0" for f in flags)


def row_data(q: ParsedQuery) -> dict[str, Any]:
    """How a parse is kept in `queries.parsed` (format 2): `to_dict` less what is derived
    (chunk_texts), tokens as [text, pos, lemma, whitespace] lists and masks as "0"/"1" strings:
    52% of the JSON on ActivityNet's sentences, so a re-parse decodes half as much."""
    return {"format": 2, "text": q.text,
            "tokens": [[t.text, t.pos, t.lemma, t.whitespace] for t in q.tokens],
            "chunks": [[s, e] for s, e in q.chunks], "static": q.static, "dynamic": q.dynamic,
            "static_masked": _bits(q.static_masked), "dynamic_masked": _bits(q.dynamic_masked),
            "parser": q.parser, "masking": q.masking, "placeholder": q.placeholder}


def row_query(data: dict[str, Any]) -> ParsedQuery:
    """The parse of a `queries.parsed` value: format 2 (`row_data`) or the `to_dict` shape that
    rows written before it hold. `data` must be freshly decoded (its parts are kept)."""
    if data.get("format") != 2:
        return ParsedQuery.from_dict(data, adopt=True)
    return ParsedQuery(
        text=data["text"], tokens=tuple(make_token(*t) for t in data["tokens"]),
        chunks=tuple((s, e) for s, e in data["chunks"]),
        static=data["static"], dynamic=data["dynamic"],
        static_masked=tuple(c == "1" for c in data["static_masked"]),
        dynamic_masked=tuple(c == "1" for c in data["dynamic_masked"]),
        parser=data["parser"], masking=data["masking"], placeholder=data["placeholder"])


def lookup(db: Any, texts: Sequence[str], parser_id: str, key: str
           ) -> tuple[dict[str, ParsedQuery], dict[str, tuple[Any, ...]]]:
    """Stored parses of `texts` under (parser_id, key), and the CLIP token counts of
    (Q, Qs, Qd) stored with them (rows written before counts were stored have none)."""
    found: dict[str, ParsedQuery] = {}
    counts: dict[str, tuple[Any, ...]] = {}
    unique = list(dict.fromkeys(texts))
    with gc_paused():
        _lookup(db, unique, parser_id, key, found, counts)
    return found, counts


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector off for the block. Decoding a dataset's parses makes ~1M
    acyclic objects (dicts, lists, tokens), and each collection pass walks every live one:
    with the collector on, reading back 17k ActivityNet parses took 2-3x as long, and a fresh
    parse of them 5-15% longer (measured in one process, interleaved)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _lookup(db: Any, unique: list[str], parser_id: str, key: str,
            found: dict[str, ParsedQuery], counts: dict[str, tuple[Any, ...]]) -> None:
    from vdi_cli.store.queries import stored_parses

    for text, parsed in stored_parses(db, unique, parser_id, key):
        data = json.loads(parsed)
        found[text] = row_query(data)
        if isinstance(data.get(COUNTS_KEY), list) and len(data[COUNTS_KEY]) == 3:
            cut = data.get(CUT_KEY)
            counts[text] = (*(int(n) for n in data[COUNTS_KEY]),
                            *(cut if isinstance(cut, list) and len(cut) == 3 else ()))


def store(
    db: Any, queries: Sequence[ParsedQuery], parser_id: str, key: str, *, replace: bool = False,
    counts: dict[str, tuple[Any, ...]] | None = None,
) -> int:
    """Insert parses (with the CLIP token counts of Q, Qs, Qd where `counts` has them);
    an existing row for the same text and key is kept, or with `replace` overwritten. Returns
    the rows written."""
    from vdi_cli.store.queries import insert_parses

    counts = counts or {}
    rows = [
        {
            "text": q.text,
            "parser": parser_id,
            "parser_config": key,
            "static": q.static,
            "dynamic": q.dynamic,
            "parsed": _row_json(q, counts.get(q.text)),
        }
        for q in queries
    ]
    return insert_parses(db, rows, replace=replace)


def remember_counts(db: Any, queries: Sequence[ParsedQuery], parser_id: str, key: str,
                    counts: dict[str, tuple[Any, ...]]) -> None:
    """Write the token counts into rows that were stored without them."""
    from vdi_cli.store.queries import update_parsed

    if not queries:
        return
    update_parsed(db, parser_id, key, [(q.text, _row_json(q, counts[q.text])) for q in queries])


def _row_json(q: ParsedQuery, counts: tuple[Any, ...] | None) -> str:
    """The `queries.parsed` value: `row_data` with the counts (and cut texts) when known."""
    data = row_data(q)
    if counts is not None:
        data[COUNTS_KEY] = list(counts[:3])
        if len(counts) == 6:
            data[CUT_KEY] = list(counts[3:])
    return json.dumps(data, ensure_ascii=False)


def _stored_checks(q: ParsedQuery, have: tuple[Any, ...],
                   limit: int = clip_context.CONTENT_TOKENS) -> list[LengthCheck] | None:
    """The length checks a stored row answers without counting: its three counts when all
    fit, or with the cut texts stored beside them; None when they must be counted again (the
    stored cut texts are CLIP's 75-token cut: another `limit` counts over ones again)."""
    fits = max(have[:3]) <= limit
    if not fits and (len(have) != 6 or limit != clip_context.CONTENT_TOKENS):
        return None
    cuts = have[3:] if len(have) == 6 else ("", "", "")
    out = []
    for text, n, cut in zip((q.text, q.static, q.dynamic), have[:3], cuts, strict=True):
        long = len(text.encode("utf-8")) > limit
        out.append(LengthCheck(n, long, max(0, n - limit), cut, limit))
    return out


def check_context(queries: Sequence[ParsedQuery], first_index: dict[str, int],
                  known: dict[str, tuple[Any, ...]] | None = None,
                  counted: dict[str, tuple[Any, ...]] | None = None,
                  context_length: int | None = None) -> list[LongText]:
    """Every Q / Qs / Qd over the text context (`context_length` tokens, the backbone's;
    None: CLIP's 77), once per distinct text.

    `known` holds what rows stored: (count Q, Qs, Qd) and, for a text that is over, the three
    cut texts; a text it answers is not counted again (a re-parse of a dataset then never
    loads the BPE). `counted` receives what is counted here (when exact, or when a short text
    needs no exact count), for `store` to keep."""
    known = known or {}
    limit = clip_context.content_tokens(context_length)
    out = []
    for q in queries:
        have = known.get(q.text)
        stored = _stored_checks(q, have, limit) if have is not None else None
        if stored is not None:
            checks = list(zip(("Q", "Qs", "Qd"), (q.text, q.static, q.dynamic), stored,
                              strict=True))
        else:
            checks = [(name, text, clip_context.check_length(text, context_length=context_length))
                      for name, text in (("Q", q.text), ("Qs", q.static), ("Qd", q.dynamic))]
            if counted is not None and limit == clip_context.CONTENT_TOKENS and all(
                    c.exact or len(t.encode("utf-8")) <= limit for _, t, c in checks):
                cut = tuple(c.cut_text for _, _, c in checks)
                counted[q.text] = (*(c.tokens for _, _, c in checks),
                                   *(cut if any(cut) else ()))
        out += [LongText(first_index[q.text], name, text, c) for name, text, c in checks
                if c.truncated]
    return out


def parse_texts(
    texts: Sequence[str],
    parser_id: str | None = None,
    options: dict[str, Any] | None = None,
    *,
    db: Any = None,
    use_cache: bool = True,
    check_length: bool = True,
    context_length: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ParseReport:
    """Parse `texts` (duplicates parsed once) with parser `parser_id` and its `options`.

    With `db`, stored parses under the same key are reused and new ones stored; with
    `use_cache=False` every text is parsed again and its stored row overwritten.
    `on_progress(n)` is called as each batch of n distinct texts is parsed or found. Empty or
    whitespace-only texts are a VdiError naming the first one (callers skip blank lines).
    `report.long` lists the Q / Qs / Qd over a text context of `context_length` tokens (the
    backbone's own, `LoadedBackbone.context_length`; None: CLIP's 77).
    """
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise VdiError(
                f"query {i + 1} of {len(texts)} is empty",
                hint="give a sentence with at least one word",
            )
    if parser_id is None:
        from vdi_cli.defaults import default_id

        parser_id = default_id("parser")
    parser, key_config = build_parser(parser_id, options)
    key = config_key(key_config)
    first_index: dict[str, int] = {}
    for i, text in enumerate(texts):
        first_index.setdefault(text, i)
    unique = list(first_index)
    done: dict[str, ParsedQuery] = {}
    known: dict[str, tuple[Any, ...]] = {}
    if db is not None and use_cache:
        done, known = lookup(db, unique, parser_id, key)
    report = ParseReport([], parser_id, key_config, cached=len(done))
    if done and on_progress:
        on_progress(len(done))
    todo = [t for t in unique if t not in done]
    fresh: list[ParsedQuery] = []
    for i in range(0, len(todo), CHUNK):
        batch = todo[i:i + CHUNK]
        with gc_paused():  # per chunk: a chunk's cyclic garbage waits at most one chunk
            parsed = list(parser.parse_many(batch))
        if len(parsed) != len(batch):
            raise VdiError(f"parser '{parser_id}' returned {len(parsed)} parses for "
                           f"{len(batch)} texts", hint="report this to the parser's author")
        pairs = zip(batch, parsed, strict=True)
        parsed = [q if q.text == t else replace(q, text=t) for t, q in pairs]
        fresh.extend(parsed)
        done.update(zip(batch, parsed, strict=True))
        if on_progress:
            on_progress(len(batch))
    report.parsed = len(fresh)
    fresh_texts = {q.text for q in fresh}
    counted: dict[str, tuple[Any, ...]] = {}
    if check_length:
        report.long = check_context([done[t] for t in unique], first_index, known, counted,
                                    context_length)
    if db is not None and fresh:
        report.stored = store(db, fresh, parser_id, key, replace=not use_cache, counts=counted)
    if db is not None and use_cache:  # rows stored before counts were kept: add them once
        old = {t: c for t, c in counted.items() if t not in known and t not in fresh_texts}
        remember_counts(db, [done[t] for t in old], parser_id, key, old)
    report.queries = [done[t] for t in texts]
    return report
