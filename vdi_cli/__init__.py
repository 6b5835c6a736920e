"""vdi: video moment retrieval with Visual-Dynamic Injection.

The core package is torch-free at import time: heavy libraries are imported inside the functions
that need them, so `vdi --help` and the listing commands stay fast.

The Python API (`vdi_cli.api`, docs/api.md) is exported here lazily (PEP 562): `import vdi_cli`
imports none of it, and `vdi_cli.retrieve` imports its module on first use.

    import vdi_cli as vdi
    result = vdi.retrieve("talk.mp4", ["person opens the door"], checkpoint="runs/.../epoch-006")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# exported name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the stage functions
    "parse": "vdi_cli.api",
    "extract": "vdi_cli.api",
    "train": "vdi_cli.api",
    "train_config": "vdi_cli.api",
    "evaluate": "vdi_cli.api",
    "retrieve": "vdi_cli.api",
    "build_index": "vdi_cli.api",
    "search": "vdi_cli.api",
    "open_store": "vdi_cli.api",
    "video_inputs": "vdi_cli.api",
    # a loaded model for many searches in one process
    "Retriever": "vdi_cli.pipeline.retrieve",
    # what they return
    "Moment": "vdi_cli.types",
    "ParsedQuery": "vdi_cli.types",
    "Annotation": "vdi_cli.types",
    "ParseReport": "vdi_cli.pipeline.parse",
    "ExtractReport": "vdi_cli.pipeline.extract",
    "VideoOutcome": "vdi_cli.pipeline.extract",
    "TrainConfig": "vdi_cli.pipeline.train_config",
    "EvalReport": "vdi_cli.pipeline.evaluate",
    "RetrieveResult": "vdi_cli.pipeline.retrieve",
    "VideoResult": "vdi_cli.pipeline.retrieve",
    "VideoInput": "vdi_cli.pipeline.retrieve",
    "IndexReport": "vdi_cli.pipeline.index",
    # the errors they raise
    "VdiError": "vdi_cli.errors",
    "ConfigError": "vdi_cli.errors",
    "UsageError": "vdi_cli.errors",
    "StoreError": "vdi_cli.errors",
    "UnknownComponentError": "vdi_cli.errors",
}

__all__ = [  # the names of _EXPORTS (tests/test_api.py checks they agree)
    "Annotation",
    "ConfigError",
    "EvalReport",
    "ExtractReport",
    "IndexReport",
    "Moment",
    "ParseReport",
    "ParsedQuery",
    "RetrieveResult",
    "Retriever",
    "StoreError",
    "TrainConfig",
    "UnknownComponentError",
    "UsageError",
    "VdiError",
    "VideoInput",
    "VideoOutcome",
    "VideoResult",
    "build_index",
    "evaluate",
    "extract",
    "open_store",
    "parse",
    "retrieve",
    "search",
    "train",
    "train_config",
    "video_inputs",
]

if TYPE_CHECKING:
    from vdi_cli.api import (
        build_index,
        evaluate,
        extract,
        open_store,
        parse,
        retrieve,
        search,
        train,
        train_config,
        video_inputs,
    )
    from vdi_cli.errors import (
        ConfigError,
        StoreError,
        UnknownComponentError,
        UsageError,
        VdiError,
    )
    from vdi_cli.pipeline.evaluate import EvalReport
    from vdi_cli.pipeline.extract import ExtractReport, VideoOutcome
    from vdi_cli.pipeline.index import IndexReport
    from vdi_cli.pipeline.parse import ParseReport
    from vdi_cli.pipeline.retrieve import Retriever, RetrieveResult, VideoInput, VideoResult
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.types import Annotation, Moment, ParsedQuery


def __getattr__(name: str) -> Any:
    """Import an exported name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vdi_cli' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
