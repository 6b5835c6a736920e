"""`vdi serve`: the local web app (search with a video player, runs, evaluations) over the
store, with the model kept loaded between queries. A thin adapter over `vdi_cli.serve`."""

from __future__ import annotations

import typer

from vdi_cli.commands._flags import notice
from vdi_cli.output import info

Opt = typer.Option
LOCAL = ("127.0.0.1", "localhost", "::1")


def serve_command(
    host: str = Opt("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every "
                    "network interface; anyone who reaches it sees your runs and videos)."),
    port: int = Opt(8765, "--port", help="Port to listen on."),
    index: str = Opt(None, "--index", "-i", help="Default index for searches (default: the "
                     "only index)."),
    candidates: int = Opt(None, "--candidates", help="Default nearest neighbours a search "
                          "rescores (as `vdi search --candidates`; default: exact)."),
    preload: bool = Opt(True, "--preload/--lazy", help="Load the index's model at start "
                        "(else on the first search)."),
    folder: list[str] = Opt([], "--folder", "-F", help="A folder (or quoted glob) of videos "
                            "to search without an index, as `vdi retrieve FOLDER` (its videos' "
                            "features must be cached); repeatable: a source `folder:NAME` each."),
    checkpoint: str = Opt(None, "--checkpoint", "-c", help="Model of the --folder searches: a "
                          "checkpoint folder from `vdi train` (default as `vdi retrieve`: the "
                          "latest training run). An index searches with its own model."),
    run: int = Opt(None, "--run", help="Model of the --folder searches: a training run's best "
                   "checkpoint."),
    training_free: bool = Opt(False, "--training-free", help="Model of the --folder searches: "
                              "the training-free head."),
) -> None:
    """Serve a local web app: search an index (or a folder) and watch the moments, browse runs
    and evaluations. Reads the database (opened read-only), never writes it."""
    from vdi_cli.errors import UsageError, VdiError
    from vdi_cli.settings import get_settings
    from vdi_cli.store.db import resolve_db_path

    if candidates is not None and candidates < 1:
        raise UsageError(f"--candidates must be at least 1, got {candidates}",
                         hint="e.g. --candidates 256, or leave it out for the exact search")
    model = [n for n, on in (("--checkpoint", checkpoint is not None), ("--run", run is not None),
                             ("--training-free", training_free)) if on]
    if model and not folder:
        raise UsageError(f"{model[0]} chooses the model of --folder searches, and no --folder "
                         "was given",
                         hint="add --folder DIR; an index always searches with the model it "
                         "was built with (vdi index show NAME names it)")
    if not 0 < port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {port}", hint="e.g. --port 8765")
    try:
        import uvicorn
    except ImportError as exc:
        raise VdiError("vdi serve needs starlette, uvicorn and jinja2",
                       hint="pip install -c constraints.txt 'vdi[serve]'") from exc
    from vdi_cli.serve.app import create_app

    _check_port(host, port)  # uvicorn reports a taken port by exiting, without a hint

    settings = get_settings()
    app = create_app(resolve_db_path(settings.db), index=index, device=settings.device,
                     preload=preload, candidates=candidates, folders=folder,
                     checkpoint=checkpoint, run=run, training_free=training_free,
                     notify=notice)
    for searcher in app.state.store.folders.values():
        missing = searcher.missing
        info(f"{searcher.index['name']}: {len(searcher.videos)} videos"
             + (f"; {len(missing)} left out (no cached features for this model, e.g. "
                f"{missing[0]['path']}: `vdi retrieve \"QUERY\" FOLDER` with the same model "
                "caches them)" if missing else ""))
    if host not in LOCAL:
        notice(f"Warning: listening on {host}: anyone who can reach this machine on port "
               f"{port} can search, list your runs and watch the videos the store knows "
               "(no login, no TLS)")
    info(f"vdi serve: http://{'[' + host + ']' if ':' in host else host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _check_port(host: str, port: int) -> None:
    """A VdiError now if `host:port` cannot be listened on (taken, no such address)."""
    import socket

    from vdi_cli.errors import VdiError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror: a name that resolves to no address
        raise VdiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                       hint="--host takes an address of this machine, e.g. 127.0.0.1 "
                       "(the default) or 0.0.0.0") from exc
    try:
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise VdiError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                       hint="pick another --port, or stop what is using this one") from exc


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
