"""No hidden global state (issue 24): loading a backbone leaves the caller's logging as it was,
`import open_clip` works after importing vdi's backbone module without the caller applying the
torchvision shim, importing vdi parses no environment, and library progress bars follow the
caller's `show_progress`, not the CLI's settings."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

import vdi_cli.backbones  # noqa: F401 - installs the torchvision hook, so open_clip imports


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_loading_a_backbone_leaves_the_callers_logging_unchanged():
    """Random weights make open_clip warn "initialized randomly": vdi mutes that one record
    for the call, and the caller's level, handlers, filters and `logging.disable` are as before
    (the old `logging.disable(NOTSET)` reset the caller's disable to nothing)."""
    pytest.importorskip("open_clip")
    from vdi_cli.testing import tiny_backbone

    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    before = (root.level, list(root.handlers), list(root.filters))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.disable(logging.DEBUG)  # the caller's own choice, which a load must keep
    try:
        state = (root.level, list(root.handlers), list(root.filters), root.manager.disable)
        backbone = tiny_backbone()
        assert backbone.id == "open_clip:vdi-tiny"
        assert (root.level, list(root.handlers), list(root.filters),
                root.manager.disable) == state
        assert state[3] == logging.DEBUG
        assert "initialized randomly" not in stream.getvalue()
        logging.warning("the caller's own warning")  # still reaches the caller's handler
        assert stream.getvalue() == "the caller's own warning\n"
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(handler)
        root.setLevel(before[0])
    assert (root.level, list(root.handlers), list(root.filters)) == before


def test_muted_drops_only_that_packages_records_and_restores():
    """`log_filters.muted("open_clip")` drops open_clip's records at or below WARNING; another
    package's warnings and open_clip's errors get through; the filter goes on the way out."""
    pytest.importorskip("open_clip")
    import open_clip.factory as factory

    from vdi_cli.log_filters import muted

    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        with muted("open_clip"):
            # a record as if logged from open_clip's factory.py: dropped; from here: kept
            record = root.makeRecord("root", logging.WARNING, factory.__file__, 1, "random", (),
                                     None)
            root.handle(record)
            loud = root.makeRecord("root", logging.ERROR, factory.__file__, 1, "broken", (),
                                   None)
            root.handle(loud)
            logging.warning("mine")
        assert root.filters == []
        assert stream.getvalue() == "broken\nmine\n"
    finally:
        root.removeHandler(handler)


@pytest.mark.parametrize("module", ["vdi_cli.backbones", "vdi_plugins.backbones_open_clip"])
def test_import_open_clip_after_vdis_backbone_module(module):
    """The caller imports vdi's backbone module, then open_clip itself, never the shim; the
    import hook imports no torch before torchvision is asked for."""
    pytest.importorskip("open_clip")
    r = _fresh(f"import sys, {module}\n"
               "assert 'torch' not in sys.modules, 'torch imported by the hook'\n"
               "import open_clip, torch\n"
               "print(open_clip.__name__, hasattr(torch.ops.torchvision, 'nms'))\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["open_clip", "True"]


def test_import_hook_is_idempotent_and_steps_aside():
    r = _fresh("import sys\n"
               "from vdi_cli.compat import torchvision_shim as s\n"
               "s.install_import_hook(); s.install_import_hook()\n"
               "print(sum(f is s._hook for f in sys.meta_path))\n"
               "import torchvision\n"
               "print(sum(f is s._hook for f in sys.meta_path), s._done)\n")
    if "No module named 'torchvision'" in r.stderr:
        pytest.skip("torchvision not installed")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "0", "True"]


def test_no_environment_variable_parsed_at_import(monkeypatch):
    """A bad VDI_DECODE_NICE used to crash every import of the extract stage (int() at module
    level); now it is read when an extraction starts, as an Error with a Hint."""
    r = _fresh("import os\n"
               "os.environ['VDI_DECODE_NICE'] = 'lots'\n"
               "import vdi_cli.pipeline.extract_sources as s\n"
               "try:\n"
               "    s.decode_nice()\n"
               "except Exception as exc:\n"
               "    print(type(exc).__name__, exc, '|', exc.hint)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("VdiError VDI_DECODE_NICE='lots' is not a whole number | "
                                "e.g. VDI_DECODE_NICE=10 (0 leaves the decoders at normal "
                                "priority)")
    from vdi_cli.pipeline.extract_sources import decode_nice

    monkeypatch.setenv("VDI_DECODE_NICE", "3")
    assert decode_nice() == 3
    monkeypatch.delenv("VDI_DECODE_NICE")
    assert decode_nice() == 10


def test_library_progress_follows_the_caller_not_the_cli_settings(monkeypatch):
    """`progress_bar` shows a bar only when asked and on a TTY; the CLI's --quiet setting is the
    commands' (`output.shows_progress`), never read by the library's bar."""
    from vdi_cli import output, progress
    from vdi_cli.settings import set_settings

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    try:
        set_settings(quiet=True)
        assert progress.progress_bar(total=1, enabled=True).disable is False
        assert progress.progress_bar(total=1, enabled=False).disable is True
        assert output.shows_progress() is False
        assert output.progress(total=1).disable is True
        set_settings(quiet=False)
        assert output.shows_progress() is True and output.shows_progress(True) is False
    finally:
        set_settings()
