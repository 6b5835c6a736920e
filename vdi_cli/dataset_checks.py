"""What `vdi datasets check` reports beyond the counts: the things a researcher has to know
about a split before trusting a number on it.

- duplicate (video, query) rows: Charades-STA repeats sentences of a video; a duplicate whose
  moments differ is two answers to one question (a model can get at most one of them right at
  R@1), one whose moments are equal counts the same query twice;
- non-ASCII queries: what a tokenizer or a byte-level parser may treat differently;
- videos that lose every row: present in the file, absent from everything vdi trains or
  evaluates on (e.g. all their moments start after their end).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vdi_cli.datasets import DatasetReport

MAX_EXAMPLES = 5


def _key(text: str) -> str:
    return " ".join(text.split()).lower()


def inspect_report(report: DatasetReport) -> dict[str, Any]:
    """The findings of one read file, JSON-ready."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for a in report.annotations:
        groups[(a.video_id, _key(a.query))].append(a)
    repeated = [rows for rows in groups.values() if len(rows) > 1]
    differ = [rows for rows in repeated if len({(r.start, r.end) for r in rows}) > 1]
    queries = report.all_queries()
    non_ascii = [a for a in queries if not a.query.isascii()]
    lost = sorted(report.seen - set(report.videos))
    return {
        "duplicates": {
            "pairs": len(repeated),
            "rows": sum(len(rows) for rows in repeated),
            "moments_differ": len(differ),
            "examples": [f"{rows[0].video_id} | {rows[0].query} ({len(rows)} rows)"
                         for rows in (differ or repeated)[:MAX_EXAMPLES]],
        },
        "non_ascii": {"queries": len(non_ascii),
                      "examples": [a.query for a in non_ascii[:MAX_EXAMPLES]]},
        "videos_without_rows": {"videos": len(lost), "examples": lost[:MAX_EXAMPLES]},
    }


def finding_lines(found: dict[str, Any]) -> list[str]:
    """The findings as the lines `datasets check` prints (none for a clean file)."""
    lines = []
    dup = found["duplicates"]
    if dup["pairs"]:
        lines.append(
            f"{dup['pairs']} (video, query) pairs occur more than once ({dup['rows']} rows); "
            f"{dup['moments_differ']} of them with different moments, e.g. "
            + "; ".join(dup["examples"][:3]))
    na = found["non_ascii"]
    if na["queries"]:
        lines.append(f"{na['queries']} queries have non-ASCII characters, e.g. "
                     + "; ".join(repr(q) for q in na["examples"][:3]))
    lost = found["videos_without_rows"]
    if lost["videos"]:
        lines.append(f"{lost['videos']} videos lose every row (nothing of them is kept): "
                     + ", ".join(lost["examples"]))
    return lines
