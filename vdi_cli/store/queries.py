"""The `queries` table: a parser's parse of a query text (Q, Qs, Qd and the parsed JSON), keyed
by (text, parser, canonical parser configuration), so training and retrieval never parse a
sentence twice. What the JSON holds is the parse module's business (`vdi_cli.pipeline.parse`);
here it is text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from vdi_cli.store.runs import now

SQL_VARS = 500  # texts per `IN (...)` lookup (SQLite's limit on variables is far above)


def stored_parses(db: Any, texts: Sequence[str], parser: str, key: str
                  ) -> Iterator[tuple[str, str]]:
    """`(text, parsed JSON)` of the stored parses of `texts` by `parser` with configuration
    `key` (texts never parsed so are absent)."""
    for i in range(0, len(texts), SQL_VARS):
        part = list(texts[i:i + SQL_VARS])
        marks = ",".join("?" * len(part))
        yield from db.execute(
            f"select text, parsed from queries where parser = ? and parser_config = ? "
            f"and text in ({marks})",
            [parser, key, *part],
        ).fetchall()


def insert_parses(db: Any, rows: Sequence[dict[str, Any]], *, replace: bool = False) -> int:
    """Insert `queries` rows (text, parser, parser_config, static, dynamic, parsed; created_at
    is set here) in one transaction: a row for the same text and key is kept, or with
    `replace` overwritten. Returns the rows written."""
    stamp = now()
    rows = [{**r, "created_at": stamp} for r in rows]
    before = db.execute("select count(*) from queries").fetchone()[0]
    with db.conn:
        db["queries"].insert_all(rows, ignore=not replace, replace=replace, batch_size=500)
    if replace:
        return len(rows)
    return db.execute("select count(*) from queries").fetchone()[0] - before


def update_parsed(db: Any, parser: str, key: str, parsed: Sequence[tuple[str, str]]) -> None:
    """Overwrite the parsed JSON of stored parses: `parsed` holds `(text, parsed JSON)` pairs;
    one transaction."""
    rows = [(value, text, parser, key) for text, value in parsed]
    with db.conn:
        db.conn.executemany("update queries set parsed = ? where text = ? and parser = ? "
                            "and parser_config = ?", rows)
