"""Global CLI options (`--db`, `--device`, `--quiet`, `--verbose`) as one process-wide object.

Library functions take explicit arguments; only the command adapters read these settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    db: str | None = None
    device: str = "cpu"
    quiet: bool = False
    verbose: bool = False


_settings = Settings()


def get_settings() -> Settings:
    return _settings


def set_settings(**values: object) -> Settings:
    global _settings
    _settings = Settings(**values)  # type: ignore[arg-type]
    return _settings


def open_store(readonly: bool = False):  # noqa: ANN201 - sqlite_utils.Database, lazy import
    """Open the run database chosen by `--db` / `VDI_DB` / the default (`readonly`: for
    commands that only read it, which then also work on a read-only one)."""
    from vdi_cli.store import open_db

    return open_db(_settings.db, readonly=readonly)
