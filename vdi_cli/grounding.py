"""Deprecated: MMN's 2D-map decoding moved to the heads that use it (`vdi_plugins.heads.cells`).

Kept importable for one release: `from vdi_cli.grounding import decode_cells` still works and
warns. The core reaches a head's cells only through the head contract (`head.decode_cells`,
`head.cell_windows`), so nothing in `vdi_cli` imports this module.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED_TO = "vdi_plugins.heads.cells"


def __getattr__(name: str) -> Any:
    module = importlib.import_module(_MOVED_TO)
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module 'vdi_cli.grounding' has no attribute {name!r}")
    warnings.warn(f"vdi_cli.grounding.{name} moved to {_MOVED_TO}.{name}; vdi_cli.grounding "
                  "goes away in the next release", DeprecationWarning, stacklevel=2)
    return getattr(module, name)
