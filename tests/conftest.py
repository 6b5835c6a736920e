"""Shared fixtures: every test gets its own database and app dir, offline, no third-party plugins
unless it asks for them (VDI_PLUGINS)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "vdi-home"))
    monkeypatch.setenv("VDI_DB", str(tmp_path / "vdi.db"))
    monkeypatch.setenv("VDI_PLUGINS", "")
    monkeypatch.delenv("VDI_DEBUG", raising=False)
    from vdi_cli import plugins

    plugins.reset_host()
    yield
    plugins.reset_host()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def load_example():
    """Import examples/<name>.py as a module (the examples are scripts, not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
