"""Meta-tests, as datasette has: every hook is documented and exercised, every contract member is
documented and called by the conformance kit. A new hook or contract member without docs, an
exercise or a conformance call fails here, naming it."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from vdi_cli import contracts, hookspecs
from vdi_cli.contracts import CONTRACTS, members
from vdi_cli.hookspecs import hookimpl
from vdi_cli.registry import KINDS, get_component
from vdi_cli.testing import invoke, plugin_host

ROOT = Path(__file__).resolve().parents[1]


def hook_names() -> list[str]:
    return sorted(name for name, fn in vars(hookspecs).items()
                  if callable(fn) and hasattr(fn, "vdi_spec"))


def test_the_hooks_are_the_expected_ones():
    assert hook_names() == sorted([
        "register_commands", "register_backbones", "register_query_parsers",
        "register_sequence_models", "register_heads", "register_objectives",
        "register_datasets", "register_recipes", "open_video", "track_event"]), \
        "a hook was added or removed: document it, give it a contract, exercise it here"


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented(hook):
    fn = getattr(hookspecs, hook)
    assert fn.__doc__ and len(fn.__doc__.split()) >= 8, f"hookspecs.{hook} has no docstring"
    table = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{hook}\(", table, re.M), \
        f"docs/plugins.md's hook table has no row for {hook}"
    reference = (ROOT / "docs" / "reference" / "hooks.md").read_text(encoding="utf-8")
    assert f"`{hook}(" in reference, f"docs/reference/hooks.md lacks {hook}: regenerate it"
    contracts_page = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    assert f"`{hook}" in contracts_page, f"docs/contracts.md has no section for {hook}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_component_hook_names_its_contract_and_check(kind):
    doc = getattr(hookspecs, KINDS[kind].hook).__doc__
    module = {"sequence-model": "sequence_model"}.get(kind, kind)
    assert f"vdi_cli.contracts.{module}" in doc, f"{KINDS[kind].hook}'s docstring does not name "\
        f"vdi_cli.contracts.{module}"
    check = {"dataset": "check_dataset_format"}.get(kind, f"check_{module}")
    assert f"vdi_cli.testing.{check}" in doc
    assert kind in CONTRACTS, f"no contract for the {kind} kind in vdi_cli.contracts.CONTRACTS"


class EveryHook:
    """A plugin implementing every hook, each in the smallest way that shows it is called."""

    __name__ = "every-hook"
    events: list = []
    opened: list = []
    recipe: Path | None = None  # a recipe file the test writes

    @hookimpl
    def register_commands(self, app):
        @app.command("every-hook-ping")
        def ping() -> None:
            print("pong")

    @hookimpl
    def register_backbones(self, register):
        register("meta-backbone", "vdi_plugins.tiny_shapes:build")

    @hookimpl
    def register_query_parsers(self, register):
        register("meta-parser", dict)

    @hookimpl
    def register_sequence_models(self, register):
        register("meta-sequence", dict)

    @hookimpl
    def register_heads(self, register):
        register("meta-head", dict)

    @hookimpl
    def register_objectives(self, register):
        register("meta-objective", dict)

    @hookimpl
    def register_datasets(self, register):
        register("meta-dataset", dict)

    @hookimpl
    def register_recipes(self, register):
        register(self.recipe, name="meta-recipe")

    @hookimpl(tryfirst=True)
    def open_video(self, path, options):
        self.opened.append((path, options.to_dict()))
        return None  # let the built-in reader take it

    @hookimpl
    def track_event(self, event):
        self.events.append(event.kind)


def test_every_hook_is_exercised(tmp_path, monkeypatch):
    """Each hook of the test plugin above is really called by the code that owns it."""
    from vdi_cli.plugins import emit
    from vdi_cli.types import RunEvent
    from vdi_cli.video import open_video

    implemented = sorted(n for n, f in vars(EveryHook).items() if hasattr(f, "vdi_impl"))
    assert implemented == hook_names(), "EveryHook must implement (and this test exercise) " \
        "every hook"
    monkeypatch.setenv("VDI_PLUGINS", "")
    EveryHook.events.clear()
    EveryHook.opened.clear()
    EveryHook.recipe = tmp_path / "meta.toml"
    EveryHook.recipe.write_text('description = "a recipe of the meta-test"\nepochs = 3\n')
    with plugin_host(EveryHook()):
        from vdi_cli.recipes import find_recipe

        recipe = find_recipe("meta-recipe")
        assert (recipe.plugin, recipe.values["epochs"]) == ("every-hook", 3)
        for kind in KINDS:
            component = get_component(kind, f"meta-{kind.split('-')[0]}"
                                      if kind != "sequence-model" else "meta-sequence")
            assert component.plugin == "every-hook"
        result = invoke(["every-hook-ping"])
        assert (result.exit_code, result.stdout.strip()) == (0, "pong"), result.stderr
        emit(RunEvent("started", None, "meta"))
        assert EveryHook.events == ["started"]
        av = pytest.importorskip("av")
        assert av
        from vdi_cli.testing import make_video

        video = make_video(tmp_path / "v.mp4", seconds=1.0, fps=4, size=(32, 32))
        with open_video(video, {"fps": 2}) as reader:
            assert len(list(reader.frames())) == 2
        assert EveryHook.opened == [(str(video), {"fps": 2.0})]


def _attribute_docs(protocol: type) -> dict[str, str]:
    """Docstrings of a protocol's annotated attributes (the string right after `name: type`)."""
    tree = ast.parse(inspect.getsource(protocol))
    body = tree.body[0].body
    out = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            out[node.target.id] = nxt.value.value
    return out


PROTOCOLS = [p for kind in CONTRACTS.values() for p in kind]


def _own(protocol: type) -> list[str]:
    """The members a protocol declares itself (not those of the protocols it extends)."""
    own = set(vars(protocol)) | set(vars(protocol).get("__annotations__", {}))
    return [n for n in members(protocol) if n in own]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_every_contract_member_is_documented(protocol):
    assert protocol.__doc__, f"{protocol.__name__} has no docstring"
    attributes = _attribute_docs(protocol)
    for name in _own(protocol):
        if name in vars(protocol).get("__annotations__", {}):
            doc = attributes.get(name)
        else:
            doc = getattr(vars(protocol)[name], "__doc__", None)
        assert doc and len(doc.split()) >= 3, \
            f"{protocol.__name__}.{name} ({protocol.__module__}) has no docstring"


def test_every_contract_is_exported():
    for protocol in PROTOCOLS:
        assert getattr(contracts, protocol.__name__) is protocol
        assert protocol.__name__ in contracts.__all__


def test_every_contract_member_is_called_by_the_conformance_kit(tmp_path, monkeypatch):
    """Run the kit on a built-in of every kind (and a small caching parser, so this does not
    depend on a spaCy model) and check it read or called every member of every protocol."""
    pytest.importorskip("torch")
    pytest.importorskip("av")
    import json

    from vdi_cli import plugins, testing
    from vdi_cli.testing import WordParser
    from vdi_plugins.video_pyav import open_video

    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VDI_PLUGINS", "")
    plugins.reset_host()
    arch = testing.register_tiny_open_clip()
    sample = tmp_path / "a.json"
    sample.write_text(json.dumps({"v": {"duration": 9.0, "timestamps": [[1, 4]],
                                        "sentences": ["a dog runs"]}}))
    reports = [
        testing.check_head("mmn", testing.TINY_HEAD),
        testing.check_head("clip-similarity", {}),
        testing.check_backbone("open-clip", {"arch": arch}, backbone_id=f"open_clip:{arch}"),
        testing.check_parser(WordParser),
        testing.check_sequence_model("transformer"),
        testing.check_objective("visual-context"),
        testing.check_objective("spatial-dynamic"),
        testing.check_dataset_format("mmn-json", sample),
        testing.check_video_reader(open_video),
    ]
    called: dict[str, set[str]] = {}
    for report in reports:
        for protocol, names in report.called.items():
            called.setdefault(protocol, set()).update(names)
    missing = {p.__name__: sorted(set(_own(p)) - called.get(p.__name__, set()))
               for p in PROTOCOLS}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"contract members the conformance kit never calls: {missing}"
