"""The layering the design promises, checked on the source: SQL and sqlite-utils table calls only
in `vdi_cli/store/`; the store imports no plugin machinery, no ML library and no CLI; the
library (vdi_cli outside the CLI's own modules) never imports the CLI.

The scans read the code (AST), so a lazy import inside a function counts as much as one at the
top of a module; the import check runs in a fresh interpreter, so what an earlier test imported
cannot hide what importing the store pulls in.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "vdi_cli" / "store"

# SQL in a string: the statement forms vdi writes (a docstring that says "select" is prose).
SQL = re.compile(
    r"\bselect\b[\s\S]+\bfrom\b|\binsert\s+(or\s+\w+\s+)?into\b|\bupdate\s+\w+\s+set\b"
    r"|\bdelete\s+from\b|\bcreate\s+(unique\s+)?(table|index|view|trigger)\b"
    r"|\breplace\s+into\b|\bpragma\s+\w+|\bbegin\s+(immediate|exclusive|deferred)\b",
    re.IGNORECASE,
)
# sqlite-utils Database / Table methods and the sqlite3 connection's.
DB_METHODS = {
    "execute", "executemany", "executescript", "query", "rows_where", "pks_and_rows_where",
    "insert", "insert_all", "upsert", "upsert_all", "update", "delete", "delete_where",
    "lookup", "get", "table", "table_names", "view_names", "create_table", "create_index",
    "add_column", "transform", "count_where", "close", "commit", "rollback", "atomic",
}
# Lines that may still do it, keyed by file and the line's text, not its number (none now).
PENDING: set[tuple[str, str]] = set()
PENDING_CLI: set[tuple[str, str]] = set()


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (a module's, a class's, a function's)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _names_db(node: ast.AST) -> bool:
    """Whether an expression is (an attribute path ending in) a database, its connection or
    one of its tables: `db`, `self.db`, `store.db`, `x_db`, `db.conn`, `db["t"]` (a `conn`
    alone may be a pipe: not counted)."""
    if isinstance(node, ast.Subscript):
        return _names_db(node.value)
    if isinstance(node, ast.Attribute) and node.attr == "conn":
        return _names_db(node.value)
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name is not None and (name == "db" or name.endswith("_db"))


def _string_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, the holes as "?"
        return "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
    return None


def store_violations(path: Path, root: Path = ROOT) -> list[str]:
    """`file:line: what` for each SQL string or database call in one file (named relative to
    `root`)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    docs = _docstrings(tree)
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []

    def add(node: ast.AST, what: str) -> None:
        text = lines[node.lineno - 1].strip()
        if (_rel(path, root), text) not in PENDING:
            found.append(f"{_rel(path, root)}:{node.lineno}: {what}: {text}")

    for node in ast.walk(tree):
        if id(node) in docs or id(node) in inner:
            continue
        text = _string_text(node)
        if text is not None and SQL.search(text):
            add(node, "SQL text")
        elif isinstance(node, ast.Subscript) and _names_db(node.value) and isinstance(
                node.slice, ast.Constant) and isinstance(node.slice.value, str):
            add(node, f"table access {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and _names_db(node.value) and (
                node.attr in DB_METHODS or node.attr == "conn"):
            add(node, f"database call .{node.attr}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [
                a.name for a in node.names]
            if any((n or "").split(".")[0] == "sqlite_utils" for n in names):
                add(node, "sqlite_utils import")
    return sorted(found, key=lambda v: int(v.split(":")[1]))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones included; `from x import
    y` counts as x and x.y."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _forbidden(module: str, banned: tuple[str, ...]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in banned)


STORE_BANNED = ("torch", "open_clip", "transformers", "numpy", "pluggy", "typer", "click",
                "vdi_cli.plugins", "vdi_cli.registry", "vdi_cli.hookspecs", "vdi_cli.cli",
                "vdi_cli.commands", "vdi_cli.runs")
CLI_MODULES = ("typer", "click", "vdi_cli.cli", "vdi_cli.commands")


def test_sql_and_table_calls_live_only_in_the_store():
    """The library, the plugins, the benchmarks and the examples (the tests read rows to check
    them, and are not scanned)."""
    files = [p for p in _python_files("vdi_cli", "plugins", "benchmarks", "examples")
             if STORE not in p.parents]
    found = [v for p in files for v in store_violations(p)]
    assert not found, ("SQL or sqlite-utils calls outside vdi_cli/store/ (give the store a "
                       "named function and call it):\n" + "\n".join(found))


def test_the_scan_finds_what_it_is_meant_to(tmp_path):
    """The scanner itself: each kind of violation in a file is reported with its line, and
    prose, list inserts and dict updates are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Select the best one from the list; delete from it (prose)."""\n'
        "def f(db, lines, d, table):\n"
        '    db.execute("select id from runs where x = ?", [1])\n'
        '    rows = db["runs"].rows_where("id = 1")\n'
        "    lines.insert(0, 'x')\n"
        "    d.update(a=1)\n"
        '    db.conn.execute(f"delete from {table} where id = 1")\n'
        "    import sqlite_utils\n"
        "    self.db.table_names()\n",
        encoding="utf-8")
    found = store_violations(sample, tmp_path)
    assert sorted({int(v.split(":")[1]) for v in found}) == [3, 4, 7, 8, 9], found
    assert all(v.startswith("sample.py:") for v in found)
    assert any("SQL text" in v and ":7:" in v for v in found)  # an f-string's SQL too


def test_the_store_imports_no_plugins_ml_library_or_cli_in_its_source():
    found = [f"{_rel(p)}:{line}: imports {m}" for p in STORE.rglob("*.py")
             for line, m in _imports(p) if _forbidden(m, STORE_BANNED)]
    assert not found, "vdi_cli/store/ must know no plugins, ML library or CLI:\n" + "\n".join(
        found)


def test_importing_every_store_module_loads_no_plugins_ml_library_or_cli():
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import vdi_cli.store as s\n"
        "for m in pkgutil.walk_packages(s.__path__, 'vdi_cli.store.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    modules = json.loads(out.stdout)
    assert "vdi_cli.store.runs" in modules and "vdi_cli.store.checkpoints" in modules
    bad = [m for m in modules if _forbidden(m, STORE_BANNED)]
    assert not bad, f"importing vdi_cli.store loads {bad}"


def test_the_library_never_imports_the_cli():
    """vdi_cli outside the CLI's own modules (vdi_cli/cli.py, vdi_cli/__main__.py,
    vdi_cli/commands/) and the plugins import neither Typer nor the commands. The testing kit
    (`vdi_cli.testing*`) drives the CLI on purpose (`invoke`, `run_vdi`), and the docs
    generator (`vdi_cli.docs_reference`) documents it: both are left out."""
    cli_own = ("vdi_cli/cli.py", "vdi_cli/__main__.py", "vdi_cli/commands/", "vdi_cli/testing",
               "vdi_cli/docs_reference.py")
    found = []
    for p in _python_files("vdi_cli", "plugins"):
        rel = _rel(p)
        if rel.startswith(cli_own):
            continue
        lines = p.read_text(encoding="utf-8").splitlines()
        for line, m in _imports(p):
            if _forbidden(m, CLI_MODULES) and (rel, lines[line - 1].strip()) not in PENDING_CLI:
                found.append(f"{rel}:{line}: imports {m}")
    assert not found, "the library imports the CLI:\n" + "\n".join(sorted(set(found)))


def test_the_stores_app_dir_is_the_one_typer_names(monkeypatch, tmp_path):
    """`app_dir` works out the platform folder itself (the store imports no CLI library); it is
    the folder `typer.get_app_dir("vdi")` named before, with and without XDG_CONFIG_HOME."""
    import typer

    from vdi_cli.store.db import app_dir

    monkeypatch.delenv("VDI_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert app_dir() == Path(typer.get_app_dir("vdi"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert app_dir() == Path(typer.get_app_dir("vdi")) == tmp_path / "config" / "vdi"
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    assert app_dir() == tmp_path / "home"
