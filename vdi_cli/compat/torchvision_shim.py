"""Make `import torchvision` work beside the CPU build of torch.

With torch 2.13.0 (CPU) and torchvision 0.28.0 from the package index, torchvision's native op
library fails to load and its import then dies with `operator torchvision::nms does not exist`
(its Python side registers fake kernels for ops whose schemas live in that library). open_clip and
transformers import torchvision, so this module must run first: it tries the native library and,
failing that, defines the `nms` / `qnms` schemas itself. vdi never calls those ops.

`install_import_hook()` makes that happen for the caller's own imports too: the modules that
need torchvision (`vdi_cli.backbones`, every `vdi_plugins` module) install it on import, and it
runs `ensure_torchvision` the first time anything imports torchvision, so a program that imports
vdi's backbone module and then `import open_clip` itself works without knowing about this shim.
The hook imports nothing until torchvision is imported (importing vdi stays torch-free) and
removes itself once it has run.
"""

from __future__ import annotations

_done = False
_library = None  # keep the torch.library.Library alive, or its definitions are dropped


def ensure_torchvision() -> None:
    """Idempotent: prepare torch so that `import torchvision` succeeds."""
    global _done, _library
    if _done:
        return
    _done = True
    import importlib.util
    import sys

    if "torchvision" in sys.modules:
        return
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    if _has_nms(torch):
        return
    import glob
    import os

    for folder in spec.submodule_search_locations:
        for lib in glob.glob(os.path.join(folder, "_C*.so")) + glob.glob(
            os.path.join(folder, "_C*.pyd")
        ):
            try:
                torch.ops.load_library(lib)
            except (OSError, RuntimeError):
                continue
    if _has_nms(torch):
        return
    _library = torch.library.Library("torchvision", "DEF")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


class _TorchvisionHook:
    """A `sys.meta_path` finder that finds nothing: it only prepares torch the first time
    `torchvision` is looked up, then steps aside."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "torchvision":
            _remove_hook()  # before ensure_torchvision: its own find_spec must not come back here
            ensure_torchvision()
        return None


_hook = _TorchvisionHook()


def install_import_hook() -> None:
    """Idempotent: run `ensure_torchvision` when torchvision is first imported, by anyone."""
    import sys

    if _done or "torchvision" in sys.modules or _hook in sys.meta_path:
        return
    sys.meta_path.insert(0, _hook)


def _remove_hook() -> None:
    import sys

    if _hook in sys.meta_path:
        sys.meta_path.remove(_hook)


def _has_nms(torch) -> bool:  # noqa: ANN001 - the torch module
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute lookup raises when missing
    except (AttributeError, RuntimeError):
        return False
    return True
