"""Built-in plugins of vdi, installed as the import package `vdi_plugins`.

Every top-level module or package here is an entry point of the `vdi` distribution
(`[project.entry-points.vdi]` in pyproject.toml) and is loaded exactly like a third-party plugin.
Modules import torch & co. only inside the functions that need them.
"""

# open_clip and transformers import torchvision, which needs vdi's shim beside the CPU build of
# torch: installed here (a finder that imports nothing until torchvision is imported), so a
# caller's own `import open_clip` after loading a vdi plugin works too.
from vdi_cli.compat.torchvision_shim import install_import_hook as _install_import_hook

_install_import_hook()
