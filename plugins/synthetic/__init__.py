"""The `synthetic-shapes` dataset: a generated world where vdi can be proven offline on a CPU.

`vdi datasets generate synthetic-shapes --out DIR --videos N --seed S [--dataset-option
version=4]` writes real mp4 files and MMN-JSON annotations (train / test-iid /
test-novel-word, and with world version 4 test-novel-verb); reading them is MMN JSON plus the
per-sentence `actions` (event class) and `news` (novel words) fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from vdi_cli.hookspecs import hookimpl


class SyntheticConfig(BaseModel):
    version: Literal[3, 4] = Field(
        3, description="World version to generate (generate only; reading ignores it): 3 the "
        "default, 4 adds verb synonyms held out of training and the test-novel-verb split.")


class SyntheticShapes:
    """Reads like mmn-json; also generates."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config

    def read(self, path: Path) -> Any:
        from vdi_plugins.datasets import MMNJson

        report = MMNJson().read(path)
        report.format = "synthetic-shapes"
        return report

    def generate(self, out: str | Path, videos: int, seed: int, **options: Any) -> dict[str, Any]:
        from vdi_plugins.synthetic.generate import generate

        if self.config is not None:
            options.setdefault("version", self.config.version)
        return generate(out, videos, seed, **options)


@hookimpl
def register_datasets(register: Any) -> None:
    register("synthetic-shapes", SyntheticShapes, config=SyntheticConfig,
             description="Generated moving-shapes videos (train / test-iid / test-novel-word; "
             "version 4 adds test-novel-verb); `vdi datasets generate synthetic-shapes`.",
             requires=("video",), generator=True)
