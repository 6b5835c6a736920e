"""Plugin loading: built-ins through entry points, isolation, selection, registries."""

from __future__ import annotations

import json
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from vdi_cli.errors import DuplicateComponentError, UnknownComponentError
from vdi_cli.hookspecs import hookimpl
from vdi_cli.registry import get_component, get_registry
from vdi_cli.testing import invoke, plugin_host, run_vdi
from vdi_cli.types import RunEvent

ROOT = Path(__file__).resolve().parents[1]


def _plugin_modules() -> set[str]:
    names = set()
    for path in (ROOT / "plugins").iterdir():
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py":
            names.add(f"vdi_plugins.{path.stem}")
        elif path.is_dir() and (path / "__init__.py").exists():
            names.add(f"vdi_plugins.{path.name}")
    return names


def test_every_builtin_plugin_module_is_a_registered_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["entry-points"]["vdi"]
    modules = _plugin_modules()
    assert modules, "plugins/ has no modules"
    missing = modules - set(declared.values())
    assert not missing, f"not listed under [project.entry-points.vdi]: {sorted(missing)}"
    installed = {ep.value for ep in metadata.entry_points(group="vdi") if ep.dist.name == "vdi"}
    assert modules <= installed, "reinstall the project: entry points are stale"


def test_builtins_load_through_the_entry_point_path():
    with plugin_host(selection="") as host:
        host.load()
        builtins = {i.module: i for i in host.infos if i.builtin}
    for module in _plugin_modules():
        assert builtins[module].status == "loaded", builtins[module].error
        assert builtins[module].dist == "vdi"


def test_sequence_models_are_registered_by_the_builtin_plugin():
    reg = get_registry("sequence-model")
    assert {"transformer", "lstm"} <= set(reg.ids())
    assert reg.get("lstm").plugin == "sequence_models"


class _HeadA:
    __name__ = "head-plugin-a"

    @hookimpl
    def register_heads(self, register):
        register("toy-head", lambda: "a", description="first")


class _HeadB:
    __name__ = "head-plugin-b"

    @hookimpl
    def register_heads(self, register):
        register("toy-head", lambda: "b", description="second")


def test_duplicate_id_keeps_the_first_and_warns_naming_both_plugins(capsys):
    with plugin_host(_HeadA(), _HeadB()):
        reg = get_registry("head")
        assert reg.get("toy-head").plugin == "head-plugin-a"  # the first registered keeps it
        assert "mmn" in reg  # the rest of the registry is intact
        [conflict] = reg.conflicts
        assert (conflict.used.plugin, conflict.unused.plugin) == ("head-plugin-a",
                                                                  "head-plugin-b")
        listing = invoke(["heads", "--json"])
        shown = invoke(["heads", "show", "toy-head"])
        table = invoke(["plugins"])
        infos = {i["name"]: i for i in invoke(["plugins", "--json"]).json()}
    err = capsys.readouterr().err
    assert err.count("head id 'toy-head' is registered by two plugins") == 1  # once per host
    assert "'head-plugin-a' (head-plugin-a) and 'head-plugin-b' (head-plugin-b)" in err
    assert "VDI_PREFER=head-plugin-b" in err
    assert listing.exit_code == 0, listing.stderr
    toy = {c["id"]: c for c in listing.json()}["toy-head"]
    assert toy["plugin"] == "head-plugin-a"
    assert toy["also_registered_by"] == [{"plugin": "head-plugin-b",
                                          "distribution": "head-plugin-b"}]
    assert shown.exit_code == 0 and "also registered by plugin head-plugin-b" in shown.stdout
    assert table.exit_code == 0
    assert "id conflicts" in table.stdout and "registered first" in table.stdout
    assert infos["head-plugin-b"]["conflicts"] == [{
        "kind": "head", "id": "toy-head",
        "used_by": {"plugin": "head-plugin-a", "distribution": "head-plugin-a"},
        "also_registered_by": {"plugin": "head-plugin-b", "distribution": "head-plugin-b"},
        "chosen_by": "registered first"}]


def test_vdi_prefer_makes_the_choice_explicit(monkeypatch, capsys):
    monkeypatch.setenv("VDI_PREFER", "head-plugin-b")
    with plugin_host(_HeadA(), _HeadB()):
        assert get_registry("head").get("toy-head").plugin == "head-plugin-b"
        assert get_registry("head").conflicts[0].chosen_by == "VDI_PREFER"
    monkeypatch.setenv("VDI_PREFER", "head-plugin-a")
    with plugin_host(_HeadA(), _HeadB()):
        assert get_registry("head").get("toy-head").plugin == "head-plugin-a"
    assert "registered by two plugins" not in capsys.readouterr().err  # chosen: no warning


class _BadIds:
    __name__ = "bad-ids"

    @hookimpl
    def register_heads(self, register):
        register("Toy_Head", lambda: "x")
        register("fine-head", lambda: "y")


class _VdiErrorInHook:
    __name__ = "raises-vdi-error"

    @hookimpl
    def register_heads(self, register):
        raise DuplicateComponentError("something the plugin decided", hint="its own hint")


def test_a_bad_id_or_an_error_in_a_hook_leaves_only_that_out(capsys):
    with plugin_host(_BadIds(), _VdiErrorInHook(), _HeadA()):
        ids = get_registry("head").ids()
        infos = {i["name"]: i for i in invoke(["plugins", "--json"]).json()}
    assert "fine-head" in ids and "toy-head" in ids and "mmn" in ids
    assert "Toy_Head" not in ids
    err = capsys.readouterr().err
    assert "registered head id 'Toy_Head', which is not kebab-case; it is left out" in err
    assert "plugin 'raises-vdi-error' failed in register_heads" in err
    assert infos["raises-vdi-error"]["hook_errors"] == [
        "register_heads: DuplicateComponentError: something the plugin decided"]


def test_unknown_id_suggests_the_closest_and_the_listing_command():
    with plugin_host(_HeadA()):
        with pytest.raises(UnknownComponentError) as exc:
            get_component("head", "toy-haed")
        assert exc.value.message == "unknown head 'toy-haed'; did you mean 'toy-head'?"
        assert "`vdi heads`" in exc.value.hint
        result = invoke(["heads", "show", "toy-haed"])
    assert result.exit_code == 1
    assert "Error: unknown head 'toy-haed'; did you mean 'toy-head'?" in result.stderr
    assert "Hint: `vdi heads` lists the available ones: " in result.stderr
    assert "toy-head" in result.stderr.split("Hint:")[1]
    assert "Traceback" not in result.stderr


def test_unknown_id_without_close_match_has_no_suggestion():
    with pytest.raises(UnknownComponentError) as exc:
        get_component("sequence-model", "zzzzzz")
    assert exc.value.message == "unknown sequence-model 'zzzzzz'"


class _BadRegister:
    __name__ = "bad-register"

    @hookimpl
    def register_heads(self, register):
        raise RuntimeError("boom")


def test_plugin_failing_in_a_register_hook_only_warns(capsys):
    with plugin_host(_BadRegister(), _HeadA()):
        assert "toy-head" in get_registry("head").ids()  # besides the built-in heads
    assert "plugin 'bad-register' failed in register_heads: RuntimeError: boom" in (
        capsys.readouterr().err
    )


def test_listing_and_show_commands():
    result = invoke(["sequence-models", "--json"])
    assert result.exit_code == 0
    ids = [c["id"] for c in result.json()]
    assert ids == ["lstm", "transformer"]
    shown = invoke(["sequence-models", "show", "transformer", "--json"]).json()
    assert shown["config"]["layers"]["default"] == 1
    assert shown["config"]["heads"]["type"] == "integer"
    text = invoke(["sequence-models", "show", "lstm"])
    assert "bidirectional" in text.stdout and "True" in text.stdout
    heads = invoke(["heads"])
    assert heads.exit_code == 0 and heads.stdout.startswith("id")


class _Events:
    __name__ = "event-logger"

    def __init__(self):
        self.events = []

    @hookimpl
    def track_event(self, event):
        self.events.append(event)


class _BrokenLogger:
    __name__ = "broken-logger"

    @hookimpl
    def track_event(self, event):
        raise ValueError("logger down")


def test_track_event_receives_run_events_and_a_broken_logger_only_warns(tmp_path, capsys):
    from vdi_cli.runs import run_context
    from vdi_cli.store import open_db

    logger = _Events()
    with plugin_host(logger, _BrokenLogger()):
        db = open_db(tmp_path / "e.db")
        with run_context(db, "parse", {"x": 1}):
            pass
    kinds = [(e.kind, e.command) for e in logger.events]
    assert kinds == [("started", "parse"), ("finished", "parse")]
    assert isinstance(logger.events[0], RunEvent)
    assert logger.events[1].payload["status"] == "ok"
    assert "broken-logger" in capsys.readouterr().err


def _fake_distribution(root: Path, name: str, module: str, body: str, version: str = "1.2.3"):
    """A real installed-looking distribution on a folder we put on PYTHONPATH."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vdi]\n{module} = {module}\n")


@pytest.fixture
def broken_plugin_path(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    _fake_distribution(root, "broken-vdi-plugin", "broken_vdi_plugin",
                       "raise ImportError('needs libfoo')\n")
    _fake_distribution(root, "good-vdi-plugin", "good_vdi_plugin", """
        from vdi_cli.hookspecs import hookimpl

        @hookimpl
        def register_heads(register):
            register("good-head", "good_vdi_plugin:build", description="from good-vdi-plugin")

        def build():
            return "built"
        """, version="0.4.0")
    return root


def _env(path, selection=None):
    env = {"PYTHONPATH": str(path)}
    if selection is not None:
        env["VDI_PLUGINS"] = selection
    return env


def test_broken_plugin_is_reported_and_other_commands_keep_working(broken_plugin_path, monkeypatch):
    monkeypatch.delenv("VDI_PLUGINS")
    proc = run_vdi(["plugins", "--json"], env=_env(broken_plugin_path))
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    broken = infos["broken_vdi_plugin"]
    assert broken["status"] == "failed"
    assert broken["version"] == "1.2.3"
    assert broken["distribution"] == "broken-vdi-plugin"
    assert broken["error"] == "ImportError: needs libfoo"
    assert infos["good_vdi_plugin"]["status"] == "loaded"
    assert proc.stderr.count("Warning: plugin 'broken_vdi_plugin'") == 1
    heads = run_vdi(["heads", "--json"], env=_env(broken_plugin_path))
    assert heads.returncode == 0
    assert "good-head" in [h["id"] for h in json.loads(heads.stdout)]
    table = run_vdi(["plugins"], env=_env(broken_plugin_path))
    assert "failed: ImportError: needs libfoo" in table.stdout


def test_environment_variable_selects_third_party_plugins(broken_plugin_path):
    none = run_vdi(["plugins", "--json"], env=_env(broken_plugin_path, ""))
    status = {i["name"]: i["status"] for i in json.loads(none.stdout)}
    assert status["broken_vdi_plugin"] == "disabled"
    assert status["good_vdi_plugin"] == "disabled"
    assert status["sequence_models"] == "loaded"  # built-ins always load
    assert "Warning" not in none.stderr
    only_good = run_vdi(["plugins", "--json"], env=_env(broken_plugin_path, "good-vdi-plugin"))
    status = {i["name"]: i["status"] for i in json.loads(only_good.stdout)}
    assert status == {**status, "broken_vdi_plugin": "disabled", "good_vdi_plugin": "loaded"}
    assert "Warning" not in only_good.stderr
