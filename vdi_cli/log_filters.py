"""Silencing a library's expected log lines without touching the caller's logging.

open_clip announces "No pretrained weights loaded ... Model initialized randomly." through the
root logger (`logging.warning`) when vdi builds an architecture it fills itself (random weights
asked for, or a text-only load onto the meta device). vdi used to wrap those calls in
`logging.disable(logging.WARNING)` ... `logging.disable(logging.NOTSET)`, which also silenced every
other logger meanwhile and, afterwards, reset a `logging.disable(...)` the caller had set. A
filter added for the block and removed after it drops only the records that package logs, at or
below the level asked for; the caller's levels, handlers and `logging.disable` stay as they were.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


class _FromPackage(logging.Filter):
    """Drops records at or below `level` that code under `folder` emitted."""

    def __init__(self, folder: str, level: int) -> None:
        super().__init__()
        self.folder = folder
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        inside = os.path.abspath(record.pathname).startswith(self.folder)
        return not (inside and record.levelno <= self.level)


def _package_folder(package: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.abspath(next(iter(spec.submodule_search_locations))) + os.sep


@contextmanager
def muted(package: str, level: int = logging.WARNING) -> Iterator[None]:
    """Within the block, drop `package`'s log records at or below `level`: those it logs through
    the root logger (as open_clip does) and through its own loggers (`package`, `package.*`).
    Nothing else is changed, and the filters are removed on the way out, error or not."""
    folder = _package_folder(package)
    if folder is None:  # not installed: nothing of it can log
        yield
        return
    quiet = _FromPackage(folder, level)
    loggers = [logging.getLogger(), logging.getLogger(package)]
    loggers += [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
                if name.startswith(package + ".")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
