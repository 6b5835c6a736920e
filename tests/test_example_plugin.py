"""The example third-party plugin under examples/: installed (editable) by the suite, listed by
`vdi plugins`, and its parser selectable by id."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from vdi_cli.registry import get_component
from vdi_cli.testing import plugin_host, run_vdi

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vdi-example-plugin"


@pytest.fixture(scope="session")
def example_installed():
    try:
        metadata.distribution("vdi-example-plugin")
    except metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "-e", str(EXAMPLE)],
            check=True,
        )
        metadata.distribution("vdi-example-plugin")  # raises if the install did not take
    import importlib
    import site
    import sysconfig

    site.addsitedir(sysconfig.get_paths()["purelib"])  # process the new editable .pth now
    importlib.invalidate_caches()
    return EXAMPLE


def test_vdi_plugins_lists_the_example(example_installed, monkeypatch):
    monkeypatch.delenv("VDI_PLUGINS")
    proc = run_vdi(["plugins", "--json"])
    assert proc.returncode == 0, proc.stderr
    info = {p["name"]: p for p in json.loads(proc.stdout)}["example_rules"]
    assert info == {**info, "distribution": "vdi-example-plugin", "version": "0.1.0",
                    "builtin": False, "status": "loaded"}
    assert "register_query_parsers" in info["hooks"]
    parsers = run_vdi(["parsers", "--json"])
    assert "keyword-chunks" in [p["id"] for p in json.loads(parsers.stdout)]


def test_example_parser_is_selectable_by_id_and_parses(example_installed):
    with plugin_host(selection="vdi-example-plugin"):
        parser = get_component("parser", "keyword-chunks").build()
        q = parser.parse("The big red square slides to the left, then a circle appears.")
    assert q.chunk_texts() == ["The big red square", "the left", "a circle"]
    assert q.static == "The big red square the left a circle"
    assert q.dynamic == "slides to, then appears."  # original spacing kept (vdi_cli.masking)
    assert q.parser == "keyword-chunks"


def test_example_is_not_loaded_when_deselected(example_installed):
    with plugin_host(selection=""):
        from vdi_cli.errors import UnknownComponentError

        with pytest.raises(UnknownComponentError):
            get_component("parser", "keyword-chunks")
