"""Progress bars for library code: shown when the caller asks (`enabled`) and stderr is a TTY.

The library never reads the CLI's `--quiet` / `--json` settings for this (`vdi_cli.settings` is
the command layer's): each stage function takes `show_progress` (training: `quiet`) and the
commands pass their settings in. `vdi_cli.output.progress` is the commands' own wrapper.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True,
                 **kwargs: Any) -> Any:
    """A tqdm bar on stderr; disabled unless `enabled` and stderr is a TTY."""
    from tqdm import tqdm

    disable = not enabled or not sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, disable=disable, dynamic_ncols=True, **kwargs)
