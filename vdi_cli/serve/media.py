"""`GET /video?path=...`: a video file the store knows, with HTTP range requests (206 Partial
Content, through Starlette's FileResponse) so a browser can seek.

Only files recorded in the store are served: the `videos` table (every extracted video: the
ones `vdi eval` and `vdi retrieve` read) and `index_videos` (a library index). The requested
path and the known ones are all resolved (symlinks followed) and compared as resolved paths:
`..`, an absolute path elsewhere, or a symlink placed in a known folder that points out of it
resolve to a file the store does not know and get 404, without the file being opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CONTENT_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
                 ".mkv": "video/x-matroska", ".mov": "video/quicktime",
                 ".avi": "video/x-msvideo"}


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte
        return None


def known_paths(db: Any, names: tuple[str, ...] = ()) -> set[str]:
    """The stored paths of the videos the store knows (as recorded, unresolved); with `names`,
    only those whose file name is one of them (a request checks a few rows, not all)."""
    from vdi_cli.store.videos import known_video_paths

    return known_video_paths(db, names)


def known_files(db: Any, names: tuple[str, ...] = ()) -> set[Path]:
    """The resolved files behind `known_paths` that exist now."""
    out = set()
    for p in known_paths(db, names):
        r = _resolved(p)
        if r is not None and r.is_file():
            out.add(r)
    return out


def check_request(db: Any, requested: str) -> Path | None:
    """The file to serve for `requested`, or None (not a video the store knows). A known path
    that is a symlink is found by its own name or its target's."""
    if not requested or "\x00" in requested or not os.path.isabs(requested):
        return None
    target = _resolved(requested)
    if target is None or not target.is_file():
        return None
    names = tuple(dict.fromkeys((Path(requested).name, target.name)))
    return target if target in known_files(db, names) else None


def video_url(path: str) -> str:
    from urllib.parse import quote

    return "/video?path=" + quote(str(path), safe="")


def video_endpoint(request: Any) -> Any:
    from starlette.responses import FileResponse, PlainTextResponse

    store = request.app.state.store
    requested = request.query_params.get("path", "")
    with store.lock:
        target = check_request(store.db, requested) or store.served_file(requested)
    if target is None:
        return PlainTextResponse("not a video this store knows\n", status_code=404)
    kind = CONTENT_TYPES.get(target.suffix.lower(), "application/octet-stream")
    return FileResponse(target, media_type=kind)
