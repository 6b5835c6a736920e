"""The dataset-format contract (`register_datasets`): an annotation file -> normalised rows.

`vdi_cli.datasets.load_dataset` builds the reader with `factory(config)` and calls
`read(path)`; every stage that takes `--dataset` / `--format` goes through it. Use
`vdi_cli.datasets.add_row` and `finish_report` so that moments are kept, clipped and dropped
with MMN's rule and the report's messages read like the built-ins'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class DatasetFormatFactory(Protocol):
    """How `load_dataset` calls the registered factory: `factory(config)`."""

    def __call__(self, config: Any) -> DatasetFormat:
        """A reader configured by the format's options (`-o durations=...`)."""
        ...


@runtime_checkable
class DatasetFormat(Protocol):
    """An annotation reader."""

    def read(self, path: Path) -> Any:
        """A `vdi_cli.datasets.DatasetReport`: `annotations` (`vdi_cli.types.Annotation` with
        0 <= start < end <= duration, the duration of `videos[video_id]`), `videos` (id ->
        duration in seconds), `unannotated` (queries without a moment: a test split), the
        `dropped` / `clipped` counts and `messages`. A malformed file is a `VdiError` naming
        the file and what is wrong, not a traceback."""
        ...
