"""Built-in plugins of vdi, installed as the import package `vdi_plugins`.

Every top-level module or package here is an entry point of the `vdi` distribution
(`[project.entry-points.vdi]` in pyproject.toml) and is loaded exactly like a third-party plugin.
Modules import torch & co. only inside the functions that need them.
"""
