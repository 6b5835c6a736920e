"""Writes the generated reference pages of the documentation site, and checks they are current.

`docs/reference/cli.md` comes from the Typer app (every command and subcommand: its help, usage,
arguments and options with their types and defaults) and `docs/reference/hooks.md` from the
hook specifications' docstrings (`vdi_cli/hookspecs.py`). They are generated, not written by
hand, so they cannot drift from the code: `tests/test_docs.py` fails when either differs from
what this module writes now.

    python -m vdi_cli.docs_reference          # rewrite both pages
    python -m vdi_cli.docs_reference --check  # exit 1, naming the stale pages, if they differ

The output depends on nothing of the terminal (no width, no colour: the text is read from the
click parameters, never from a rendered `--help`) and on no third-party plugin (`VDI_PLUGINS`
is set empty before the app is built, so only vdi's own commands appear). Building the app
imports no torch: the commands import their libraries when they run.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI_PAGE = Path("docs/reference/cli.md")
HOOKS_PAGE = Path("docs/reference/hooks.md")
REGENERATE = "python -m vdi_cli.docs_reference"

_EXTRA = re.compile(r"\s*\[([^\[\]]*)\]\s*$")  # click's "[default: X; x>=1; required]"
_RANGE = re.compile(r"^[0-9.x<>=-]+$")
_CODE_SPAN = re.compile(r"(`[^`]*`)")
_MARKDOWN_SPECIALS = re.compile(r"([\\*_\[\]>|])")


def _escape(text: str, table: bool = True) -> str:
    """Markdown-safe text: specials escaped outside code spans (`<` as an entity, since
    Markdown has no escape for it); in a table cell `|` is escaped inside code spans too."""
    parts = _CODE_SPAN.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span: shown literally, only a table's pipe needs care
            out.append(part.replace("|", "\\|") if table else part)
        else:
            out.append(_MARKDOWN_SPECIALS.sub(r"\\\1", part).replace("<", "&lt;"))
    return "".join(out)


def _help_paragraphs(text: str | None) -> str:
    """A command's help as Markdown paragraphs (click's `\\b` no-rewrap markers dropped)."""
    if not text:
        return ""
    lines = [line for line in inspect.cleandoc(text).splitlines() if line.strip() != "\b"]
    return _escape("\n".join(lines), table=False).strip()


def _type_name(param: Any, ctx: Any) -> str:
    """The option's value type as Typer shows it (`<int>`), or click's name on older Typer."""
    display = getattr(param, "display_type", None)
    if callable(display):
        return str(display(ctx))
    return str(getattr(param.type, "name", "") or "")


def _param_row(param: Any, ctx: Any) -> tuple[str, str, str, str] | None:
    """(names, type, default, help) of one argument or option; None for hidden ones."""
    if getattr(param, "hidden", False):
        return None
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, help_text = record
    default, limits = "", []
    required = bool(param.required)
    match = _EXTRA.search(help_text)
    items = [item.strip() for item in match.group(1).split(";")] if match else []
    if items and all(
        i.startswith("default: ") or i == "required" or _RANGE.match(i) for i in items
    ):
        help_text = help_text[: match.start()]
        for item in items:
            if item.startswith("default: "):
                default = item[len("default: ") :]
            elif item == "required":
                required = True
            else:
                limits.append(item)
    if param.param_type_name == "argument":
        names = param.name.upper() + ("..." if param.nargs == -1 or param.multiple else "")
        kind = "argument"
    else:
        names = ", ".join(list(param.opts) + list(param.secondary_opts))
        kind = "flag" if getattr(param, "is_flag", False) else _type_name(param, ctx)
    kind = ", ".join([kind.strip("<>")] + limits) if kind else ""
    if required:
        default = "required"
    return (
        f"`{names}`",
        _escape(kind),
        f"`{default}`" if default and default != "required" else default,
        _escape(" ".join(help_text.split())),
    )


def _walk(command: Any, ctx: Any, path: str, out: list[str]) -> None:
    """Append the section of `command` and then, in order, of each of its subcommands."""
    level = "#" * min(2 + path.count(" "), 4)
    out.append(f"{level} `{path}`\n")
    help_text = _help_paragraphs(command.help)
    if help_text:
        out.append(help_text + "\n")
    pieces = " ".join(command.collect_usage_pieces(ctx))
    out.append(f"```\n{path} {pieces}\n```\n")
    rows = [row for p in command.params if (row := _param_row(p, ctx)) is not None]
    if rows:
        out.append("| argument / option | type | default | description |")
        out.append("|---|---|---|---|")
        out.extend("| " + " | ".join(row) + " |" for row in rows)
        out.append("")
    subcommands = getattr(command, "commands", None)
    if subcommands:
        visible = [n for n in command.list_commands(ctx) if not subcommands[n].hidden]
        out.append("Commands: " + ", ".join(f"`{n}`" for n in visible) + ".\n")
        for name in visible:
            sub = subcommands[name]
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
            _walk(sub, sub_ctx, f"{path} {name}", out)


def render_cli() -> str:
    """The CLI reference page, from the Typer app as this process's plugin host builds it
    (`main` sets `VDI_PLUGINS` empty first, so that only vdi's own commands appear)."""
    import typer

    from vdi_cli.cli import build_app

    command = typer.main.get_command(build_app())
    try:  # the click that Typer runs on: vendored in recent Typer, the click package before
        from typer import _click as click_api
    except ImportError:  # pragma: no cover - older Typer
        import click as click_api

    ctx = click_api.Context(command, info_name="vdi")
    out = [
        "# CLI reference",
        "",
        "<!-- Generated by `python -m vdi_cli.docs_reference` from the Typer app: do not edit "
        "by hand. tests/test_docs.py fails when it is stale. -->",
        "",
        "Every command and subcommand of `vdi`, with its help, usage, arguments and options, as",
        "`vdi COMMAND --help` prints them. Global options (`--db`, `--device`, `--quiet`, ...)",
        "go before the command: `vdi --device cuda train ...`. The guide pages explain each",
        "command with examples; this page is the complete list.",
        "",
    ]
    _walk(command, ctx, "vdi", out)
    return "\n".join(out).rstrip() + "\n"


def render_hooks() -> str:
    """The hook reference page, from the hook specifications and their docstrings."""
    from vdi_cli import hookspecs

    out = [
        "# Hook reference",
        "",
        "<!-- Generated by `python -m vdi_cli.docs_reference` from vdi_cli/hookspecs.py: do "
        "not edit by hand. tests/test_docs.py fails when it is stale. -->",
        "",
        _help_paragraphs(hookspecs.__doc__),
        "",
        "A plugin implements any of these with `@vdi_cli.hookspecs.hookimpl`; the",
        "[plugin guide](../plugins.md) shows how, and the [contracts](../contracts.md) page what",
        "vdi calls on the components a hook registers.",
        "",
    ]
    marker = "vdi_spec"  # pluggy sets "<project>_spec" on every @hookspec function
    specs = [
        (name, fn)
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, marker)
    ]
    for name, fn in specs:
        options = getattr(fn, marker) or {}
        params = ", ".join(inspect.signature(fn).parameters)
        out.append(f"## `{name}({params})`\n")
        if options.get("firstresult"):
            out.append("*firstresult*: the first implementation that returns a value wins.\n")
        else:
            out.append("Every implementation is called.\n")
        doc = inspect.getdoc(fn) or ""
        out.append(_escape_doc(doc) + "\n")
    return "\n".join(out).rstrip() + "\n"


def _escape_doc(doc: str) -> str:
    """A docstring as Markdown: its lists and code spans kept, stray specials escaped, and a
    blank line where a list starts or ends (Markdown would otherwise run them into the text)."""
    lines: list[str] = []
    in_list = False
    for line in doc.splitlines():
        body = line.lstrip()
        indent = line[: len(line) - len(body)]
        bullet = ""
        if body.startswith("- "):
            bullet, body = "- ", body[2:]
            if not in_list and lines and lines[-1].strip():
                lines.append("")
            in_list = True
        elif in_list and body and not indent:  # the text after the list
            lines.append("")
            in_list = False
        elif not body:
            in_list = False
        lines.append(indent + bullet + _escape(body, table=False))
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    """Each generated page (path relative to the repository root) and its current text."""
    return {CLI_PAGE: render_cli(), HOOKS_PAGE: render_hooks()}


def stale_pages(root: Path = ROOT) -> list[Path]:
    """The generated pages whose file under `root` differs from what would be written now."""
    stale = []
    for rel, text in pages().items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Write the reference pages, or with `--check` report (exit 1) those that are stale."""
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print("usage: python -m vdi_cli.docs_reference [--check]", file=sys.stderr)
        return 2
    if not (ROOT / "mkdocs.yml").is_file():
        print(f"Error: {ROOT} is not a vdi source checkout (no mkdocs.yml)", file=sys.stderr)
        print("Hint: run it from a clone of the repository, installed editable (pip install "
              "-c constraints.txt -e '.[dev]')", file=sys.stderr)
        return 1
    os.environ["VDI_PLUGINS"] = ""  # third-party plugins' commands are theirs to document
    if args == ["--check"]:
        stale = stale_pages()
        if stale:
            names = ", ".join(str(p) for p in stale)
            print(f"Error: the generated reference is stale: {names}", file=sys.stderr)
            print(f"Hint: run `{REGENERATE}` and commit the result", file=sys.stderr)
            return 1
        return 0
    for rel, text in pages().items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
