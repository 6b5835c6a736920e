"""The CLI contract: help without ML imports, error boundary, exit codes, stdout vs stderr."""

from __future__ import annotations

import subprocess
import sys

import typer

from vdi_cli.errors import VdiError
from vdi_cli.hookspecs import hookimpl
from vdi_cli.testing import invoke, plugin_host, run_vdi


def test_help_lists_commands_and_imports_no_ml_library():
    code = (
        "import sys, contextlib, io\n"
        "from vdi_cli.cli import run\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = run(['--help'])\n"
        "heavy = [m for m in ('torch', 'open_clip', 'spacy', 'stanza', 'transformers', 'av')"
        " if m in sys.modules]\n"
        "print(rc, heavy)\n"
        "print(buf.getvalue())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    first, _, help_text = proc.stdout.partition("\n")
    assert first == "0 []", proc.stderr
    for command in ("plugins", "runs", "heads", "backbones", "parsers", "datasets",
                    "objectives", "sequence-models"):
        assert command in help_text
    for option in ("--db", "--device", "--quiet", "--verbose", "--version"):
        assert option in help_text


def test_version():
    from vdi_cli import __version__

    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"vdi {__version__}"


def test_usage_error_exits_2():
    result = invoke(["runs", "list", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert result.stdout == ""


def test_unknown_command_exits_2():
    assert invoke(["frobnicate"]).exit_code == 2


class _Commands:
    __name__ = "test-commands"

    @hookimpl
    def register_commands(self, app):
        @app.command("fail-expected")
        def fail_expected():
            raise VdiError("the video 'x.mp4' does not exist", hint="check the path")

        @app.command("fail-bug")
        def fail_bug():
            raise ZeroDivisionError("division by zero")

        @app.command("ctrl-c")
        def ctrl_c():
            from vdi_cli.runs import run_context
            from vdi_cli.settings import open_store

            with run_context(open_store(), "ctrl-c", {}):
                raise KeyboardInterrupt

        @app.command("hello")
        def hello(json_out: bool = typer.Option(False, "--json")):
            print("{\"hello\": 1}" if json_out else "hello")


class _BrokenCommands:
    __name__ = "broken-commands"

    @hookimpl
    def register_commands(self, app):
        raise RuntimeError("cannot add commands")


def test_expected_error_prints_error_and_hint_without_traceback():
    with plugin_host(_Commands()):
        result = invoke(["fail-expected"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: the video 'x.mp4' does not exist",
        "Hint: check the path",
    ]
    assert result.stdout == ""


def test_unexpected_error_is_reported_without_traceback_and_debug_reraises():
    with plugin_host(_Commands()):
        result = invoke(["fail-bug"])
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: unexpected ZeroDivisionError: division by zero")
        assert "VDI_DEBUG=1" in result.stderr
        assert "Traceback" not in result.stderr
        try:
            invoke(["fail-bug"], env={"VDI_DEBUG": "1"})
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("VDI_DEBUG=1 should re-raise")


def test_ctrl_c_exits_130_and_marks_the_run_interrupted():
    with plugin_host(_Commands()):
        result = invoke(["ctrl-c"])
        assert result.exit_code == 130
        assert result.stderr == "Interrupted.\n"
        runs = invoke(["runs", "list", "--json"]).json()
    assert runs[0]["command"] == "ctrl-c"
    assert runs[0]["status"] == "interrupted"


def test_plugin_commands_and_broken_command_plugin():
    with plugin_host(_BrokenCommands(), _Commands()):
        result = invoke(["hello", "--json"])
    assert result.exit_code == 0
    assert result.json() == {"hello": 1}
    assert "plugin 'broken-commands' failed to add commands" in result.stderr


def test_console_script_runs_in_a_subprocess():
    proc = run_vdi(["plugins", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert any(p["name"] == "sequence_models" for p in __import__("json").loads(proc.stdout))
