"""The documentation: the README stays a short guide, the site under docs/ builds with
`mkdocs build --strict` (every page in the nav, no broken link or anchor), and the generated
reference pages (docs/reference/cli.md, hooks.md) are what `python -m vdi_cli.docs_reference`
writes from the code today."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vdi_cli.docs_reference import _escape

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "run `python -m vdi_cli.docs_reference` and commit docs/reference/"


def _python(code_or_args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


def test_readme_is_a_short_guide():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 400, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_links_into_docs_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert len(targets) >= 10  # the README points into the site for every command
    missing = [t for t in targets if not (ROOT / t).is_file()]
    assert missing == []


def test_generated_reference_is_current():
    # a narrow, colour-forcing terminal must not change a byte: the pages are terminal-free
    proc = _python(["-m", "vdi_cli.docs_reference", "--check"], COLUMNS="37",
                   FORCE_COLOR="1", TERM="xterm-256color")
    assert proc.returncode == 0, f"{proc.stderr}\nthe reference is stale: {REGENERATE}"


def test_a_changed_page_is_reported_stale(tmp_path):
    """`stale_pages` compares each file with what would be written now: a page edited by hand
    (here hooks.md) is stale, the untouched one (cli.md) is not, a missing one is."""
    (tmp_path / "docs" / "reference").mkdir(parents=True)
    for name in ("cli.md", "hooks.md"):
        text = (ROOT / "docs" / "reference" / name).read_text(encoding="utf-8")
        (tmp_path / "docs" / "reference" / name).write_text(
            text + ("edited by hand\n" if name == "hooks.md" else ""), encoding="utf-8")
    code = ("import sys; from pathlib import Path; from vdi_cli.docs_reference import stale_pages; "
            "print([str(p) for p in stale_pages(Path(sys.argv[1]))])")
    proc = _python(["-c", code, str(tmp_path)], VDI_PLUGINS="")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['docs/reference/hooks.md']"
    (tmp_path / "docs" / "reference" / "cli.md").unlink()
    proc = _python(["-c", code, str(tmp_path)], VDI_PLUGINS="")
    assert proc.stdout.strip() == "['docs/reference/cli.md', 'docs/reference/hooks.md']"


def test_generating_the_reference_imports_no_torch():
    proc = _python(["-c", "import sys; from vdi_cli.docs_reference import pages; pages(); "
                          "print(sorted(m for m in ('torch', 'open_clip', 'spacy') "
                          "if m in sys.modules))"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_reference_pages_cover_every_command_and_hook():
    cli = (ROOT / "docs/reference/cli.md").read_text(encoding="utf-8")
    for command in ["vdi parse", "vdi extract", "vdi train", "vdi eval", "vdi retrieve",
                    "vdi index build", "vdi search", "vdi serve", "vdi runs prune",
                    "vdi datasets generate", "vdi objectives show"]:
        assert f"`{command}`\n" in cli, command
    # one row read by hand from extract_cmd.py: --batch-size, an int, default 32
    assert "| `--batch-size` | int | `32` | Frames per forward pass. |" in cli
    hooks = (ROOT / "docs/reference/hooks.md").read_text(encoding="utf-8")
    for hook in ["register_commands(app)", "register_backbones(register)",
                 "register_query_parsers(register)", "register_sequence_models(register)",
                 "register_heads(register)", "register_objectives(register)",
                 "register_datasets(register)", "open_video(path, options)",
                 "track_event(event)"]:
        assert f"## `{hook}`" in hooks, hook
    assert hooks.count("*firstresult*") == 1  # open_video alone


def test_escape_keeps_code_spans_and_table_cells():
    assert _escape("a|b `x|y` <t>_u*") == "a\\|b `x\\|y` &lt;t\\>\\_u\\*"
    assert _escape("`x|y` [B, T]", table=False) == "`x|y` \\[B, T\\]"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                    or importlib.util.find_spec("material") is None,
                    reason="mkdocs-material is not installed (pip install -c constraints.txt "
                           "-e '.[docs]')")
def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    proc = _python(["-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                   NO_MKDOCS_2_WARNING="1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (site / "index.html").is_file()
    assert (site / "reference" / "cli.html").is_file()
    assert (site / "serve-search.png").is_file()  # the screenshot ships with the serve page
    # offline: no page asks a font or script server for anything
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html
