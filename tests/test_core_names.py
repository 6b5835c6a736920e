"""The core names no built-in component: defaults and id forms come from the registered plugins
(`vdi_cli.defaults`), and a scan of vdi_cli/ fails naming file and line for any string in code
that names a built-in id, id prefix or MMN preset.

Docstrings, attribute docstrings and comments are not scanned: they explain the built-ins to a
reader as examples and decide nothing. The allowlist below holds what is left, each with why;
an entry that no longer matches anything fails too, so it is removed when its reason goes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vdi_cli import plugins
from vdi_cli.defaults import default_id, default_or_none, prefixed_component, registry_id
from vdi_cli.errors import VdiError
from vdi_cli.hookspecs import hookimpl
from vdi_cli.registry import KINDS, get_registry
from vdi_cli.testing import plugin_host

ROOT = Path(__file__).resolve().parents[1]

TEST_HELPERS = ("test helpers that train a tiny run of the built-ins on purpose (their callers "
                "test the built-ins)")
QVH_SUITE = ("the core's QVHighlights metric suite (vdi_cli/metrics_qvh.py) shares the "
             "qvhighlights dataset's name: it names a benchmark's metrics, not a component")

ALLOWED: dict[str, tuple[set[str] | None, str]] = {
    "vdi_cli/testing.py": ({"open_clip:", "mmn-json"}, TEST_HELPERS),
    "vdi_cli/testing_ddp.py": ({"open_clip:", "mmn-json", "visual-context", "spatial-dynamic"},
                               TEST_HELPERS),
    "vdi_cli/metric_sets.py": ({"qvhighlights"}, QVH_SUITE),
    "vdi_cli/pipeline/evaluate_model.py": ({"qvhighlights"}, QVH_SUITE),
    "vdi_cli/commands/eval_cmd.py": ({"qvhighlights"}, QVH_SUITE),
}


@pytest.fixture
def builtins_only(monkeypatch):
    monkeypatch.setenv("VDI_PLUGINS", "")
    plugins.reset_host()
    yield
    plugins.reset_host()


def builtin_names() -> set[str]:
    """Every built-in component id, the built-ins' id prefixes and MMN's preset names."""
    from vdi_plugins.heads.mmn_config import PRESETS

    names = set(PRESETS)
    for kind in KINDS:
        for component in get_registry(kind).all():
            if component.distribution == "vdi":
                names.add(component.id)
                if component.extra.get("id_prefix"):
                    names.add(component.extra["id_prefix"])
    return names


def _doc_strings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or bare string statements."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def scan(names: set[str]) -> list[tuple[str, int, str]]:
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(
        re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")(?![\w-])")
    hits = []
    for path in sorted((ROOT / "vdi_cli").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _doc_strings(tree)
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docs:
                hits += [(rel, node.lineno, m.group(1)) for m in pattern.finditer(node.value)]
    return sorted(set(hits))


def test_the_core_names_no_builtin_component(builtins_only):
    names = builtin_names()
    assert {"clip-vit-b32", "open-clip", "hf-clip", "tiny-shapes", "spacy", "mmn", "charades",
            "open_clip:", "hf-clip:"} <= names
    hits = scan(names)
    bad = [f"{f}:{line}: names the built-in '{name}'" for f, line, name in hits
           if not (f in ALLOWED and (ALLOWED[f][0] is None or name in ALLOWED[f][0]))]
    assert not bad, "the core must take defaults from the registered plugins (vdi_cli.defaults):" \
        "\n" + "\n".join(bad)
    used = {f for f, _, _ in hits}
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"allowlist entries that match nothing any more (remove them): {stale}"


def test_the_scan_finds_a_builtin_named_in_code(tmp_path, builtins_only):
    tree = ast.parse('"""A docstring may say mmn."""\nHEAD = "mmn"  # a comment may say spacy\n')
    docs = _doc_strings(tree)
    found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
             and isinstance(n.value, str) and id(n) not in docs]
    assert found == ["mmn"]


def test_defaults_come_from_the_builtins_registrations(builtins_only):
    assert default_id("backbone") == "clip-vit-b32"
    assert default_id("backbone", "training-free-backbone") == "clip-vit-b32"
    assert default_id("backbone", "offline-backbone") == "tiny-shapes"
    assert default_id("parser") == "spacy"
    assert default_id("head") == "mmn"
    assert default_id("head", "training-free-head") == "clip-similarity"
    from vdi_cli.defaults import default_ids

    assert default_ids("objective") == ["visual-context", "spatial-dynamic"]
    assert default_or_none("sequence-model", "no-such-role") is None
    with pytest.raises(VdiError) as exc:
        default_id("sequence-model")
    assert exc.value.message == "no installed plugin registers a default sequence-model"
    assert "`vdi sequence-models` lists them" in exc.value.hint


def test_prefixed_ids_are_the_plugins_forms(builtins_only):
    component, values = prefixed_component("backbone", "open_clip:ViT-B-32@openai")
    assert (component.id, values) == ("open-clip", {"arch": "ViT-B-32", "pretrained": "openai"})
    component, values = prefixed_component("backbone", "hf-clip:/models/tiny")
    assert (component.id, values) == ("hf-clip", {"model": "/models/tiny"})
    assert prefixed_component("backbone", "clip-vit-b32") is None
    assert registry_id("backbone", "open_clip:ViT-B-32") == "open-clip"
    with pytest.raises(VdiError, match="hf-clip needs a model folder"):
        prefixed_component("backbone", "hf-clip:")


class _OtherDefaults:
    """A third-party plugin offering its own default parser and an id form."""

    __name__ = "other-defaults"

    @hookimpl
    def register_query_parsers(self, register):
        register("other-parser", dict, default_for="parser")

    @hookimpl
    def register_sequence_models(self, register):
        register("other-sequence", dict, default_for="sequence-model")

    @hookimpl
    def register_backbones(self, register):
        register("my-clip", dict, id_prefix="my:", parse_id=lambda i: {"name": i[3:]})


def test_a_plugin_default_is_used_when_no_builtin_offers_one(monkeypatch):
    monkeypatch.setenv("VDI_PLUGINS", "")
    with plugin_host(_OtherDefaults(), selection=""):
        assert default_id("parser") == "spacy"  # the built-ins register first
        assert default_id("sequence-model") == "other-sequence"  # no built-in offers one
        assert prefixed_component("backbone", "my:big")[1] == {"name": "big"}
