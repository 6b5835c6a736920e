"""The set-up (`make setup`, which the README's two commands and CI run): it checks the disk
before pip starts, so a full disk is an Error/Hint, not pip's OSError half-way."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_setup_stops_before_pip_when_the_disk_is_too_full(tmp_path):
    venv = tmp_path / "new" / "venv"  # does not exist yet: the check walks up to tmp_path
    proc = subprocess.run(["make", "-s", "setup", f"VENV={venv}", "DISK_NEED_GB=1000000000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Error: ") and f"GB free on {tmp_path};" in lines[0]
    assert "installing vdi needs about 1e+09 GB" in lines[0]
    assert lines[1].startswith("Hint: free some space there")
    assert "Traceback" not in proc.stderr
    assert not venv.exists() and not (tmp_path / "new").exists()  # nothing was installed


def test_setup_disk_check_passes_with_room(tmp_path):
    """The same check (the Makefile's CHECK_DISK) lets the install go on when there is room."""
    import sys

    makefile = (ROOT / "Makefile").read_text()
    body = makefile.split("define CHECK_DISK\n", 1)[1].split("\nendef", 1)[0]
    ok = subprocess.run([sys.executable, "-c", body, str(tmp_path / "venv"), "0.001"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr == ""
    full = subprocess.run([sys.executable, "-c", body, str(tmp_path / "venv"), "1e12"],
                          capture_output=True, text=True)
    assert full.returncode == 1 and full.stderr.startswith("Error: ")
