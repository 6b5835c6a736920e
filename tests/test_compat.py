"""The torchvision shim lets open_clip import beside the CPU torch build."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_open_clip_imports_after_the_shim():
    pytest.importorskip("torch")
    code = (
        "from vdi_cli.compat.torchvision_shim import ensure_torchvision\n"
        "ensure_torchvision(); ensure_torchvision()\n"
        "import torchvision, open_clip, torch\n"
        "print(hasattr(torch.ops.torchvision, 'nms'), open_clip.__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True open_clip"
