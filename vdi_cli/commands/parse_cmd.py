"""`vdi parse`: a sentence (or a file / dataset of them) -> Q, static query Qs, dynamic query Qd.

A thin adapter over `vdi_cli.pipeline.parse.parse_texts`; parses are stored in the `queries`
table (keyed by text, parser and parser config) so training reuses them.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from vdi_cli.errors import VdiError
from vdi_cli.output import info, print_json, progress, warn

MAX_WARNINGS = 10  # long-query warnings printed one by one; the rest are counted


def read_query_file(path: str | Path, numbers: list[int] | None = None
                    ) -> tuple[list[str], list[int]]:
    """Queries of a text file, one per line: (queries, line numbers of skipped blank lines);
    `numbers`, when given, receives each query's line number.

    A trailing newline, Windows line ends and a UTF-8 byte-order mark are all fine.
    """
    p = Path(path)
    if not p.exists():
        raise VdiError(f"query file '{p}' does not exist",
                       hint="give a text file with one query per line")
    if p.is_dir():
        raise VdiError(f"'{p}' is a directory, not a query file",
                       hint="give a text file with one query per line")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VdiError(f"query file '{p}' is not UTF-8 text ({exc.reason} at byte {exc.start})",
                       hint="save it as UTF-8, one query per line") from exc
    except OSError as exc:
        raise VdiError(f"cannot read query file '{p}': {exc}") from exc
    queries, blank = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            queries.append(line.strip())
            if numbers is not None:
                numbers.append(number)
        else:
            blank.append(number)
    if not queries:
        raise VdiError(f"query file '{p}' has no queries (only blank lines)",
                       hint="write one query per line")
    return queries, blank


def _lines(numbers: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _show(value: str, empty: str) -> str:
    return value if value else f"({empty})"


def _query_text(q: Any) -> str:
    return (f"Q:  {q.text}\nQs: {_show(q.static, 'empty: no noun chunk')}\n"
            f"Qd: {_show(q.dynamic, 'empty: only noun chunks')}\n"
            f"chunks: {' | '.join(q.chunk_texts()) if q.chunks else '(none)'}\n")


def _at_word(text: str, width: int = 56) -> str:
    """`text` cut at a word boundary to at most `width` characters, "..." when cut (within
    the 60 that `describe` shows, so it never cuts mid-word again)."""
    if len(text) <= width:
        return text
    head = text[:width + 1].rsplit(" ", 1)[0] if " " in text[:width + 1] else text[:width]
    return head.rstrip(" ,;:") + "..."


def _gather(text: str | None, file: str | None, dataset: str | None, annotations: str | None,
            dataset_options: dict[str, Any], names: list[str] | None = None
            ) -> tuple[list[str], dict[str, Any]]:
    """The queries to parse and a description of where they came from; `names` receives how
    a warning names each query (its line of --file, its query id in --dataset)."""
    given = [name for name, v in (("TEXT", text), ("--file", file), ("--dataset", dataset))
             if v is not None]
    if len(given) != 1:
        raise typer.BadParameter(
            "give exactly one of TEXT, --file or --dataset with --annotations"
            + (f" (got {', '.join(given)})" if given else ""))
    if (dataset is None) != (annotations is None):
        raise typer.BadParameter("--dataset FORMAT and --annotations FILE go together")
    if text is not None:
        if not text.strip():
            raise VdiError("the query is empty", hint='give a sentence, e.g. vdi parse '
                           '"person opens the door"')
        return [text], {"text": text}
    if file is not None:
        numbers: list[int] = []
        queries, blank = read_query_file(file, numbers)
        if names is not None:
            names.extend(f"line {n}" for n in numbers)
        if blank:
            info(f"skipped {len(blank)} blank line{'s' * (len(blank) > 1)} in {file}: "
                 f"line {_lines(blank)}")
        return queries, {"file": str(file), "blank_lines": len(blank)}
    from vdi_cli.datasets import load_dataset

    report = load_dataset(dataset, annotations, need_answers=False, **dataset_options)
    for message in report.messages:
        info(f"{dataset}: {message}")
    rows = [a for a in report.all_queries() if a.query and a.query.strip()]
    queries = [a.query for a in rows]
    if names is not None:
        names.extend(f"query {a.query_id}" if a.query_id else f"{a.video_id} | query"
                     for a in rows)
    empty = len(report.all_queries()) - len(queries)
    if empty:
        info(f"skipped {empty} annotations with an empty query")
    if not queries:
        raise VdiError(f"'{annotations}' has no queries to parse",
                       hint=f"check that it is a {dataset} annotation file")
    return queries, {"dataset": dataset, "annotations": str(annotations),
                     "empty_queries": empty}


def parse(
    text: str = typer.Argument(None, metavar="TEXT", help="The sentence to parse."),
    parser: str = typer.Option(None, "--parser", "-p", help="Parser id (`vdi parsers`; "
                               "default: the parser a plugin registers as the default)."),
    option: list[str] = typer.Option(
        [], "--parser-option", help="Parser option key=value, e.g. --parser-option "
        "masking=placeholder."),
    file: str = typer.Option(None, "--file", help="Text file, one query per line."),
    dataset: str = typer.Option(None, "--dataset", help="Annotation format (`vdi datasets`)."),
    annotations: str = typer.Option(None, "--annotations", help="Annotation file of --dataset."),
    dataset_option: list[str] = typer.Option(
        [], "--dataset-option", help="Dataset format option key=value, e.g. durations=FILE."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Parse again, overwrite stored."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Split sentences into the static query Qs (noun chunks) and dynamic query Qd (the rest).

    Prints Q / Qs / Qd; parses are stored in the run database and reused by training.
    """
    from vdi_cli.clip_context import describe
    from vdi_cli.config import parse_overrides
    from vdi_cli.pipeline.parse import parse_texts
    from vdi_cli.runs import run_context
    from vdi_cli.settings import open_store

    if parser is None:
        from vdi_cli.defaults import default_id

        parser = default_id("parser")
    options = parse_overrides(option)
    names: list[str] = []
    queries, source = _gather(text, file, dataset, annotations, parse_overrides(dataset_option),
                              names)
    single = text is not None
    db = open_store()
    config = {"parser": parser, "options": options, "source": source, "cache": not no_cache}
    with run_context(db, "parse", config, sys.argv[1:], parser=parser) as run:
        with progress(total=len(set(queries)), json_mode=json_out or single, desc="parse",
                      unit="query") as bar:
            report = parse_texts(queries, parser, options, db=db, use_cache=not no_cache,
                                 on_progress=bar.update)
        run.summary.update(report.summary())
    for n, long in enumerate(report.long):
        if n == MAX_WARNINGS:
            warn(f"{len(report.long) - MAX_WARNINGS} more texts are over CLIP's context")
            break
        what = "the query" if single else names[long.index]
        if long.field != "Q":
            what += f" ({long.field})"
        warn(describe(replace(long.check, cut_text=_at_word(long.check.cut_text)), what))
    if not single:
        s = report.summary()
        info(f"{s['queries']} queries ({s['distinct']} distinct: {s['parsed']} parsed, "
             f"{s['cached']} from the store) with {parser}; empty Qs: {s['empty_static']}, "
             f"empty Qd: {s['empty_dynamic']}")
    if json_out:
        if single:
            print_json(report.queries[0].to_dict())
        else:
            print_json({"summary": report.summary(),
                        "queries": [q.to_dict() for q in report.queries]})
        return
    # one write: echoing 4 lines a query was most of a cached 17k-sentence re-parse's output
    sys.stdout.write("\n".join(_query_text(q) for q in report.queries))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("parse")(parse)
