"""Expected errors: the CLI prints them as `Error: ...` / `Hint: ...` and exits 1, no traceback.

Library code raises these for anything a user can fix (bad input, missing file, unknown id).
Anything else is a bug and is reported as an unexpected error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NO_VALUE = object()
_PARAM = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`")


def param(name: str, value: object = _NO_VALUE) -> str:
    """How library code names a parameter of its call in a message: `top_k`, or with a value
    `top_k=5`. A library caller reads its own parameter names; the CLI words the same message
    with its flags (`--top-k`, `--top-k 5`) through `reword` and its table of flags."""
    return f"`{name}`" if value is _NO_VALUE else f"`{name}={value}`"


def words(text: str, flags: Mapping[str, str]) -> str:
    """`text` with each `param(...)` whose name is in `flags` written as that flag: `name` ->
    the flag, `name=VALUE` -> "flag VALUE" (`name=True` -> the flag alone, a switch)."""

    def one(match: re.Match[str]) -> str:
        flag = flags.get(match.group(1))
        if flag is None:
            return match.group(0)
        value = match.group(2)
        return flag if value is None or value == "True" else f"{flag} {value}"

    return _PARAM.sub(one, text)


def reword(exc: VdiError, flags: Mapping[str, str]) -> VdiError:
    """Rewrite `exc`'s message and hint in place with `words` (the command layer's wording of
    a library error); returns it, for `raise`."""
    exc.message = words(exc.message, flags)
    exc.args = (exc.message, *exc.args[1:])
    if exc.hint:
        exc.hint = words(exc.hint, flags)
    return exc


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
