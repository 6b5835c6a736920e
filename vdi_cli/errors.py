"""Expected errors: the CLI prints them as `Error: ...` / `Hint: ...` and exits 1, no traceback.

Library code raises these for anything a user can fix (bad input, missing file, unknown id).
Anything else is a bug and is reported as an unexpected error.
"""

from __future__ import annotations


class VdiError(Exception):
    """An error the user can act on. `hint` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(VdiError):
    """Options that do not fit together (or a missing one): exit code 2, like click's."""

    exit_code = 2


class UnknownComponentError(VdiError):
    """An id that no registered plugin provides."""


class DuplicateComponentError(VdiError):
    """Two plugins registered the same id for the same kind of component."""


class ConfigError(VdiError):
    """A component configuration or override that does not validate."""


class StoreError(VdiError):
    """The run database cannot be opened or migrated."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal, `kill`, a batch system's time limit), raised like
    Ctrl-C so the run row says `interrupted`, with the signal, instead of staying `running`."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")
