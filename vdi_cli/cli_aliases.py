"""Old flag spellings keep working for one release: the command line is rewritten before it is
parsed, and each old spelling used prints one warning on stderr.

Why the argument list and not hidden options: a rewritten command line is parsed by the one
option it now names, so the old spelling gives exactly the new one's result (same type, same
checks, same "was it given" for `vdi train`'s recipe overrides), and the commands' signatures
carry no second copy of an option. The walk follows click's own reading: global and group
options (and their values) are skipped, subcommand names lead to the command, and in the
command only tokens in option position are looked at (an option's value, or anything after
`--`, is never rewritten). The table of old spellings is `vdi_cli.vocabulary.DEPRECATED`.
"""

from __future__ import annotations

import sys
from typing import Any

from vdi_cli.vocabulary import REMOVED_IN, deprecated_in


def _takes_value(command: Any, flag: str) -> bool:
    """Whether `flag` is an option of `command` that reads the next token as its value."""
    for param in getattr(command, "params", []):
        if flag in getattr(param, "opts", []) or flag in getattr(param, "secondary_opts", []):
            return getattr(param, "param_type_name", "") == "option" and not (
                getattr(param, "is_flag", False) or getattr(param, "count", False))
    return False


def command_path(root: Any, args: list[str]) -> tuple[tuple[str, ...], Any, int]:
    """(the command path, its click command, the index in `args` where its own arguments
    start) of a `vdi ARGS` command line."""
    path: list[str] = []
    command, i = root, 0
    while hasattr(command, "commands") and i < len(args):
        token = args[i]
        if token == "--":
            break
        if token.startswith("-"):
            i += 2 if "=" not in token and _takes_value(command, token) else 1
            continue
        sub = command.commands.get(token)
        if sub is None:
            break
        path.append(token)
        command, i = sub, i + 1
    return tuple(path), command, i


def rewrite_deprecated(root: Any, args: list[str], warn: Any = None) -> list[str]:
    """`args` with the deprecated flag spellings of its command replaced by the new ones;
    `warn(message)` is called once for each old spelling used."""
    path, command, start = command_path(root, args)
    aliases = deprecated_in(path)
    if not aliases:
        return args
    out, used = list(args[:start]), []
    i = start
    while i < len(args):
        token = args[i]
        if token == "--":
            out += args[i:]
            break
        name, sep, value = token.partition("=") if token.startswith("--") else (token, "", "")
        new = aliases.get(name)
        attached = None
        if new is None and not token.startswith("--") and token[:2] in aliases \
                and len(token) > 2:
            new, attached = aliases[token[:2]], token[2:]  # -oKEY=VALUE
            name = token[:2]
        if new is not None:
            if name not in used:
                used.append(name)
            out += [new + sep + value] if attached is None else [new, attached]
            i += 1
            if not sep and attached is None and _takes_value(command, new) and i < len(args):
                out.append(args[i])
                i += 1
            continue
        out.append(token)
        i += 1
        if token.startswith("-") and not sep and _takes_value(command, token) and i < len(args):
            out.append(args[i])  # an option's value is never a flag to rewrite
            i += 1
    where = " ".join(("vdi", *path))
    for name in used:
        (warn or _warn)(f"{where} {name} is deprecated; use {aliases[name]} "
                        f"({REMOVED_IN} removes it)")
    return out


def _warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr)
