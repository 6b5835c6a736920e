"""The query-parser contract (`register_query_parsers`): sentence -> Q, Qs, Qd.

`vdi parse` and the parse step of `vdi train` / `vdi eval` call `parse_many` on chunks of up to
1,024 sentences and store the result keyed by the parser id and `cache_config()` (or the whole
validated config when the parser has none). Build the `ParsedQuery` with
`vdi_cli.masking.build_parsed_query` so that it masks like the built-ins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from vdi_cli.types import ParsedQuery


@runtime_checkable
class ParserFactory(Protocol):
    """How `vdi_cli.pipeline.parse` calls the registered factory: `factory(config)`."""

    def __call__(self, config: Any) -> Parser:
        """Build the parser; loading a model may wait for the first parse."""
        ...


@runtime_checkable
class Parser(Protocol):
    """A query parser."""

    def parse(self, text: str) -> ParsedQuery:
        """One sentence -> its ParsedQuery (`text` kept as given, `tokens`, noun `chunks`,
        `static` Qs, `dynamic` Qd and the masks): used for single queries (`vdi parse TEXT`)."""
        ...

    def parse_many(self, texts: Sequence[str]) -> list[ParsedQuery]:
        """Many sentences, one result per text in the same order, equal to `parse` of each:
        the stages parse datasets through it (batching is where the speed is)."""
        ...


@runtime_checkable
class CachingParser(Parser, Protocol):
    """A parser that says what decides its output (optional; the built-ins do)."""

    def cache_config(self) -> dict[str, Any]:
        """JSON-ready values that decide the output (model, model version, masking), the key
        of its stored parses: two configs with equal keys must parse alike (so no batch size)."""
        ...
