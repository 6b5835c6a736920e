"""Helpers for testing vdi and vdi plugins (import from your plugin's tests).

- `invoke(args)`: run the CLI in-process and capture exit code, stdout and stderr.
- `run_vdi(args)`: run the CLI in a subprocess (for import-time and environment checks).
- `plugin_host(*objects)`: a fresh plugin host with in-process plugin objects registered.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run `vdi ARGS` in this process; `env` entries are set for the call only."""
    from vdi_cli.cli import run

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run([str(a) for a in args])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(code, out.getvalue(), err.getvalue())


def run_vdi(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300, **kwargs: Any
) -> subprocess.CompletedProcess:
    """Run `python -m vdi_cli ARGS` in a subprocess with `env` added to the environment."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "vdi_cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        **kwargs,
    )


@contextlib.contextmanager
def plugin_host(*objects: Any, selection: str | None = None) -> Iterator[Any]:
    """A fresh plugin host (entry points per `selection`, see VDI_PLUGINS) plus `objects`
    registered in-process; the previous host is restored afterwards."""
    from vdi_cli import plugins, registry

    previous = plugins._host
    host = plugins.reset_host(selection=selection)
    try:
        for i, obj in enumerate(objects):
            host.register_object(obj, name=getattr(obj, "__name__", f"test-plugin-{i}"))
        yield host
    finally:
        plugins._host = previous
        registry.reset_registries()
