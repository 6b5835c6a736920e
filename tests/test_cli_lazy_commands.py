"""A core command imports its own module only (cold start), and every other command line still
sees every command."""

from __future__ import annotations

import subprocess
import sys

import typer

from vdi_cli.cli import build_app, requested_command


def test_requested_command_skips_global_options_and_their_values():
    assert requested_command(["--db", "x.db", "-q", "search", "q"]) == "search"
    assert requested_command(["--device", "cpu", "retrieve", "v.mp4", "q"]) == "retrieve"
    assert requested_command(["--db=x.db", "index", "list"]) == "index"
    assert requested_command(["--help"]) is None
    assert requested_command([]) is None


def test_a_core_command_builds_only_its_own_module():
    names = set(typer.main.get_command(build_app(["search", "q"])).commands)
    assert "search" in names and "train" not in names and "retrieve" not in names
    everything = set(typer.main.get_command(build_app(["--help"])).commands)
    assert {"search", "train", "retrieve", "index", "runs"} <= everything
    # a word with no module of its own (a plugin's command, a typo) gets every command
    assert set(typer.main.get_command(build_app(["serach"])).commands) == everything


def test_vdi_search_never_imports_the_train_command(tmp_path):
    code = ("import sys\nfrom vdi_cli.cli import run\n"
            "rc = run(['search', 'a door opens'])\n"
            "print(rc, 'vdi_cli.commands.train_cmd' in sys.modules, "
            "'vdi_cli.pipeline.train_config' in sys.modules)")
    env = {"VDI_DB": str(tmp_path / "v.db"), "VDI_HOME": str(tmp_path / "h"),
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    # no index yet: a clear error (exit 1), reached without the train command's imports
    assert done.stdout.split() == ["1", "False", "False"], done.stderr
    assert "Error:" in done.stderr
