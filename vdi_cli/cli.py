"""The `vdi` command line: global options, command discovery and the error boundary.

Commands live one per module in `vdi_cli/commands/` (each exposes `register(app)`), plus whatever
plugins add through `register_commands`. `main()` maps errors to exit codes: expected errors
(and environment faults that escaped their writer: a full disk, a read-only folder or
database, see `vdi_cli.environment`) print `Error:` / `Hint:` and exit 1, usage errors exit 2,
Ctrl-C exits 130, SIGTERM / SIGHUP 128 + the signal. Set `VDI_DEBUG=1` to see the traceback of
any error instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from vdi_cli import __version__
from vdi_cli.errors import Stopped, VdiError
from vdi_cli.settings import set_settings

DEBUG_ENV = "VDI_DEBUG"
TYPER_INTERRUPT = 130  # typer's commands return this exit code for a KeyboardInterrupt
_stopped: Stopped | None = None  # the signal that stopped this process, if one did


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vdi {__version__}")
        raise typer.Exit()


def _global_options(
    db: str = typer.Option(
        None, "--db", help="Run database (SQLite). Default: $VDI_DB or the user's app dir."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device: cpu, cuda, cuda:1, mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only results and errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """vdi: find when a sentence happens in a video (Visual-Dynamic Injection, CVPR 2023)."""
    set_settings(db=db, device=device, quiet=quiet, verbose=verbose)


def _value_options() -> set[str]:
    """The global options that take a value (`--db`, `--device`), read from `_global_options`
    so that a new one is never mistaken for the command word."""
    import inspect

    return {decl for p in inspect.signature(_global_options).parameters.values()
            if p.annotation != "bool" for decl in (p.default.param_decls or ())}


def requested_command(argv: list[str]) -> str | None:
    """The command word of a command line (`search` in `vdi --db x.db search "q"`), or None."""
    skip = False
    takes_value = _value_options()
    for arg in argv:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The Typer app with the core commands and the plugins' commands.

    With `argv` naming a core command that has a module of its own (`vdi search` ->
    `commands/search_cmd.py`), only that module (and `components`, the shared kind groups) is
    imported: a command pays for its own imports, not for the other commands' (`vdi train`'s
    help defaults alone read the TrainConfig schema: ~70 ms of `vdi search`'s cold start,
    measured). Any other command line (`--help`, a plugin's command, a misspelling) gets them
    all."""
    app = typer.Typer(
        name="vdi",
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_global_options)
    from vdi_cli import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__)
                   if not m.name.startswith("_"))
    word = requested_command(argv) if argv is not None else None
    if word and f"{word}_cmd" in names:
        names = ["components", f"{word}_cmd"]
    for name in names:
        importlib.import_module(f"vdi_cli.commands.{name}").register(app)
    _plugin_commands(app)
    return app


def _plugin_commands(app: typer.Typer) -> None:
    from vdi_cli.plugins import get_host

    host = get_host()
    for impl in host.hook.register_commands.get_hookimpls():
        try:
            impl.function(**{k: app for k in impl.argnames if k == "app"})
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the CLI down
            print(
                f"Warning: plugin '{host.plugin_name_of(impl.plugin)}' failed to add commands: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` and return the exit code (what `main` exits with)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        from vdi_cli.cli_aliases import rewrite_deprecated

        command = typer.main.get_command(build_app(args))
        args = rewrite_deprecated(command, args)  # old flag spellings, with a warning each
        result = command.main(args=args, prog_name="vdi", standalone_mode=False)
        if result == TYPER_INTERRUPT:  # typer turned KeyboardInterrupt (or our Stopped) into it
            return _interrupted(_stopped or KeyboardInterrupt())
        return result if isinstance(result, int) else 0
    except VdiError as exc:
        from vdi_cli.commands._flags import cli_error

        cli_error(exc)  # a library error in the CLI's words (its flags)
        if debug:
            raise
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort) as exc:
        return _interrupted(exc)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if _is_usage_error(exc):  # click's (or typer's vendored click) usage errors: exit 2
            exc.show(file=sys.stderr)  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if debug:
            raise
        from vdi_cli.environment import environment_error

        fault = environment_error(exc)  # a full disk, a read-only folder: not a bug
        if fault is not None:
            print(f"Error: {fault.message}", file=sys.stderr)
            print(f"Hint: {fault.hint}", file=sys.stderr)
            return fault.exit_code
        print(f"Error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print(
            f"Hint: this is a bug in vdi or a plugin; rerun with {DEBUG_ENV}=1 for the traceback "
            "and report it",
            file=sys.stderr,
        )
        return 1


def _interrupted(exc: BaseException) -> int:
    """Ctrl-C: exit 130; SIGTERM / SIGHUP (see `_stop_on_signals`): 128 + the signal."""
    if isinstance(exc, Stopped):
        print(f"Stopped by {exc.name}.", file=sys.stderr)
        return 128 + exc.signum
    print("Interrupted.", file=sys.stderr)
    return 130


def _is_usage_error(exc: Exception) -> bool:
    """ClickException and subclasses, whether from click or from typer's vendored copy."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__) and hasattr(exc, "show")


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end a command the way Ctrl-C does (run row `interrupted`, exit 128 +
    the signal) instead of killing it mid-write with its run row left `running`. Only the
    console script installs this: a library caller keeps its own handlers."""
    import signal

    def stop(signum: int, frame: object) -> None:
        global _stopped
        _stopped = Stopped(signum)
        raise _stopped

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)


def main() -> None:
    """Console-script entry point."""
    _stop_on_signals()
    sys.exit(run())
