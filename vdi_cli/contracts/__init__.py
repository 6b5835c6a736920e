"""The typed contract of every kind of component a plugin registers: what vdi really calls.

One module per kind. Each holds `typing.Protocol` classes (runtime-checkable, so
`isinstance(obj, Head)` checks that the members exist; it cannot check signatures or shapes:
`vdi_cli.conformance` does that with real tensors and files) whose member docstrings say why the
member exists and which stage calls it. The factory protocols say how each hook's factory is
called. Torch-free: annotations are strings, nothing heavy is imported.

`CONTRACTS` maps a kind (as in `vdi_cli.registry.KINDS`, plus "video-reader") to its protocols;
`members(protocol)` lists a protocol's members (the meta-test checks each is documented and
called by the conformance kit).
"""

from __future__ import annotations

from typing import Any

from vdi_cli.contracts.backbone import BackboneFactory, BackboneSpec, LoadedBackbone
from vdi_cli.contracts.dataset import DatasetFormat, DatasetFormatFactory
from vdi_cli.contracts.head import (
    AdaptableHead,
    Head,
    HeadFactory,
    HeadParams,
    IndexableHead,
    RankedWindows,
)
from vdi_cli.contracts.objective import (
    DiagnosedObjective,
    Objective,
    ObjectiveConfig,
    ObjectiveFactory,
    PatchObjective,
    ProbingConfig,
)
from vdi_cli.contracts.parser import CachingParser, Parser, ParserFactory
from vdi_cli.contracts.sequence_model import SequenceModel, SequenceModelFactory
from vdi_cli.contracts.video import DamageReportingReader, VideoReader

CONTRACTS: dict[str, tuple[type, ...]] = {
    "backbone": (BackboneFactory, BackboneSpec, LoadedBackbone),
    "parser": (ParserFactory, Parser, CachingParser),
    "sequence-model": (SequenceModelFactory, SequenceModel),
    "head": (HeadFactory, Head, HeadParams, RankedWindows, IndexableHead, AdaptableHead),
    "objective": (ObjectiveFactory, Objective, ObjectiveConfig, ProbingConfig, PatchObjective,
                  DiagnosedObjective),
    "dataset": (DatasetFormatFactory, DatasetFormat),
    "video-reader": (VideoReader, DamageReportingReader),
}


def members(protocol: type) -> list[str]:
    """The members a protocol declares itself (methods, properties, annotated attributes), in
    definition order; `__call__` counts, other dunders and private names do not."""
    names: list[str] = []
    for klass in reversed(protocol.__mro__):
        if klass in (object, Any) or klass.__name__ in ("Protocol", "Generic"):
            continue
        own = list(getattr(klass, "__annotations__", {})) + list(vars(klass))
        for name in own:
            if name == "__call__" or not name.startswith("_"):
                if name not in names:
                    names.append(name)
    return names


__all__ = [
    "CONTRACTS", "AdaptableHead", "BackboneFactory", "BackboneSpec", "CachingParser",
    "DamageReportingReader", "PatchObjective", "ProbingConfig",
    "DatasetFormat", "DatasetFormatFactory", "DiagnosedObjective", "Head", "HeadFactory",
    "HeadParams",
    "IndexableHead", "LoadedBackbone", "Objective", "ObjectiveConfig", "ObjectiveFactory",
    "Parser", "ParserFactory", "RankedWindows", "SequenceModel", "SequenceModelFactory",
    "VideoReader", "members",
]
