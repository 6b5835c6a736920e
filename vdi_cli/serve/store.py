"""The server's view of the database: opened read-only (SQLite `mode=ro`), so serving can never
change what the commands recorded, plus the library searchers it keeps loaded.

Starlette runs plain endpoints in a thread pool, so every use of the one connection (and of a
searcher, whose model is not meant for concurrent calls) holds `lock`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from vdi_cli.errors import VdiError


def open_read_only(db_path: str | Path) -> Any:
    """A sqlite_utils Database on `db_path` opened with `mode=ro` (writes fail in SQLite
    itself). A missing file or one without vdi's tables is a StoreError."""
    from vdi_cli.store.db import open_serving

    return open_serving(db_path)


class ServeStore:
    """The read-only database, its lock, one loaded LibrarySearcher per index, and the served
    folders (`vdi serve --folder`: a FolderSearcher each, named `folder:NAME`), which are search
    sources beside the indexes."""

    def __init__(self, db_path: str | Path, *, device: str = "cpu") -> None:
        self.path = Path(db_path).expanduser()
        self.db = open_read_only(self.path)
        self.device = device
        self.lock = threading.RLock()
        self._searchers: dict[str, Any] = {}
        self.default_index: str | None = None  # set_default_index
        self.candidates: int | None = None  # the default of `vdi search --candidates`
        self.folders: dict[str, Any] = {}  # name -> FolderSearcher (add_folder)

    def set_default_index(self, name: str) -> None:
        """Search `name` (an index, or a served folder added before) when a request names none;
        an unknown one is a VdiError now, at start, not per query."""
        self.index_name(name)
        self.default_index = name

    def add_folder(self, searcher: Any) -> None:
        """Serve a FolderSearcher as one more search source (its `index['name']`)."""
        self.folders[searcher.index["name"]] = searcher

    def index_names(self) -> list[str]:
        """The search sources: the database's indexes, then the served folders."""
        from vdi_cli.store.db import has_table
        from vdi_cli.store.indexes import list_indexes

        with self.lock:
            if not has_table(self.db, "indexes"):
                return list(self.folders)
            return [r["name"] for r in list_indexes(self.db)] + list(self.folders)

    def served_file(self, requested: str) -> Path | None:
        """The file behind `requested` when it is a video of a served folder that the folder
        search uses (compared as resolved paths, as the store's known videos are), else None."""
        if not requested or "\x00" in requested or not Path(requested).is_absolute():
            return None
        try:
            target = Path(requested).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        if any(target in searcher.files for searcher in self.folders.values()):
            return target
        return None

    def index_name(self, name: str | None) -> str:
        """`name`, else --index, else the only index; a VdiError when that is not one."""
        from vdi_cli.store.indexes import get_index

        name = name or self.default_index
        if name in self.folders:
            return name
        if name is None:
            names = self.index_names()
            if len(names) != 1:
                raise VdiError("no index in this database" if not names else
                               f"{len(names)} indexes: {', '.join(names[:8])}",
                               hint="vdi index build NAME SOURCES... makes one" if not names
                               else "choose one (index=NAME, or vdi serve --index NAME)")
            return names[0]
        with self.lock:
            return str(get_index(self.db, name)["name"])

    def searcher(self, name: str) -> Any:
        """The index's LibrarySearcher, loaded on first use and kept (the model stays in
        memory: a warm query costs the text tower and the rescoring only). An index changed
        since (`vdi index add/remove/build --force` commit a new FAISS file) is loaded again."""
        from vdi_cli.pipeline.search import LibrarySearcher
        from vdi_cli.store.indexes import get_index

        if name in self.folders:
            return self.folders[name]
        with self.lock:
            kept = self._searchers.get(name)
            if kept is not None:
                row = get_index(self.db, name)
                if (row["id"], row["path"]) != (kept.index["id"], kept.index["path"]):
                    kept = None
            if kept is None:
                kept = self._searchers[name] = LibrarySearcher(self.db, name, device=self.device)
            return kept

    def close(self) -> None:
        from vdi_cli.store.db import close_db

        close_db(self.db)
