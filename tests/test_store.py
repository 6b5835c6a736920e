"""The SQLite run store: migrations, run rows, the runs commands."""

from __future__ import annotations

import sqlite3

import pytest

from vdi_cli.errors import StoreError, VdiError
from vdi_cli.runs import run_context
from vdi_cli.store import list_runs, open_db, resolve_db_path
from vdi_cli.store.migrations import MIGRATIONS, MIGRATIONS_TABLE
from vdi_cli.testing import dead_pid, invoke


def test_migrates_an_empty_database_to_the_full_schema(tmp_path):
    path = tmp_path / "fresh.db"
    db = open_db(path)
    tables = set(db.table_names())
    assert {
        "runs", "videos", "features", "queries", "predictions", "metrics", "checkpoints",
    } <= tables
    assert set(db["runs"].columns_dict) >= {
        "id", "command", "status", "started_at", "finished_at", "config", "error", "plugins",
    }
    assert set(db["predictions"].columns_dict) >= {
        "run_id", "video", "query", "rank", "start_s", "end_s", "score",
    }
    assert set(db["checkpoints"].columns_dict) >= {"run_id", "epoch", "path", "sha256", "best"}
    applied = [r["name"] for r in db[MIGRATIONS_TABLE].rows]
    assert applied == [m.__name__ for m in MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # reopening applies nothing twice
    db2 = open_db(path)
    assert [r["name"] for r in db2[MIGRATIONS_TABLE].rows] == applied


def test_not_a_database_is_a_clear_error_and_the_file_is_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError) as exc:
        open_db(path)
    assert "not a usable vdi database" in exc.value.message
    assert path.read_bytes() == before


def test_db_path_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("VDI_DB", str(tmp_path / "env.db"))
    assert resolve_db_path("explicit.db").name == "explicit.db"
    assert resolve_db_path(None) == tmp_path / "env.db"
    monkeypatch.delenv("VDI_DB")
    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    assert resolve_db_path(None) == tmp_path / "home" / "vdi.db"


def test_run_rows_for_ok_error_and_interrupted(tmp_path):
    db = open_db(tmp_path / "runs.db")
    with run_context(db, "extract", {"fps": 1}) as run:
        run.summary["videos"] = 2
    with pytest.raises(VdiError):
        with run_context(db, "parse", {}):
            raise VdiError("empty query", hint="pass a sentence")
    with pytest.raises(KeyboardInterrupt):
        with run_context(db, "train", {}):
            raise KeyboardInterrupt
    with pytest.raises(ZeroDivisionError):
        with run_context(db, "eval", {}):
            1 / 0  # noqa: B018
    rows = {r["command"]: r for r in list_runs(db)}
    assert rows["extract"]["status"] == "ok"
    assert rows["extract"]["summary"] == {"videos": 2}
    assert rows["extract"]["config"] == {"fps": 1}
    assert rows["extract"]["finished_at"] >= rows["extract"]["started_at"]
    assert rows["parse"]["status"] == "error"
    assert rows["parse"]["error"] == "empty query (hint: pass a sentence)"
    assert rows["train"]["status"] == "interrupted"
    assert rows["eval"]["status"] == "error"
    assert rows["eval"]["error"].startswith("ZeroDivisionError")


def test_partial_failure_finishes_the_run_as_error(tmp_path):
    db = open_db(tmp_path / "runs.db")
    with run_context(db, "extract", {}) as run:
        run.failed = "1 of 3 videos failed"
    assert list_runs(db)[0]["status"] == "error"
    assert list_runs(db)[0]["error"] == "1 of 3 videos failed"


def test_runs_list_and_show_commands(tmp_path):
    db = open_db(tmp_path / "cli.db")
    with run_context(db, "extract", {"fps": 2}):
        pass
    db["metrics"].insert({"run_id": 1, "split": "test", "name": "R1@0.5", "value": 0.5, "epoch": 3})
    result = invoke(["--db", tmp_path / "cli.db", "runs", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = result.json()
    assert [(r["id"], r["command"], r["status"]) for r in rows] == [(1, "extract", "ok")]
    shown = invoke(["--db", tmp_path / "cli.db", "runs", "show", "1", "--json"]).json()
    assert shown["config"] == {"fps": 2}
    assert shown["metrics"][0]["name"] == "R1@0.5"
    text = invoke(["--db", tmp_path / "cli.db", "runs", "show", "1"])
    assert "R1@0.5" in text.stdout and "0.5000" in text.stdout
    missing = invoke(["--db", tmp_path / "cli.db", "runs", "show", "99"])
    assert missing.exit_code == 1
    assert "Error: no run with id 99" in missing.stderr
    assert "Hint:" in missing.stderr


def test_runs_list_on_a_new_default_database_is_empty():
    result = invoke(["runs", "list", "--json"])
    assert result.exit_code == 0
    assert result.json() == []


def test_sqlite_file_is_a_real_database(tmp_path):
    db = open_db(tmp_path / "real.db")
    with run_context(db, "parse", {}):
        pass
    conn = sqlite3.connect(tmp_path / "real.db")
    assert conn.execute("select count(*) from runs").fetchone()[0] == 1


def test_a_running_row_whose_process_was_killed_is_told_apart(tmp_path):
    import os
    import socket

    from vdi_cli.runs import start_run
    from vdi_cli.store.runs import process_gone

    db = open_db(tmp_path / "vdi.db")
    alive = start_run(db, "train", {}, ["train"])
    killed = start_run(db, "train", {}, ["train"])
    elsewhere = start_run(db, "train", {}, ["train"])
    assert db["runs"].get(alive)["pid"] == os.getpid()
    assert db["runs"].get(alive)["host"] == socket.gethostname()
    db["runs"].update(killed, {"pid": dead_pid()})
    db["runs"].update(elsewhere, {"pid": dead_pid(), "host": "another-machine"})
    with run_context(db, "extract", {}):
        pass
    gone = {r["id"]: r["process_gone"] for r in list_runs(db)}
    assert gone == {alive: False, killed: True, elsewhere: False, 4: False}
    assert process_gone({"status": "ok", "pid": dead_pid(), "host": socket.gethostname()}) is False
    assert process_gone({"status": "running", "pid": None, "host": None}) is False  # before m002

    listed = invoke(["--db", tmp_path / "vdi.db", "runs", "list"]).stdout
    assert f"{killed}   train    running (process gone)" in listed
    assert f"{alive}   train    running  " in listed
    shown = invoke(["--db", tmp_path / "vdi.db", "runs", "show", str(killed)]).stdout
    assert "is gone: killed before it could finish" in shown
    # a killed training run can be pruned without --force; a live one cannot
    assert invoke(["--db", tmp_path / "vdi.db", "runs", "prune", str(killed)]).exit_code == 0
    live = invoke(["--db", tmp_path / "vdi.db", "runs", "prune", str(alive)])
    assert live.exit_code == 1 and "is still running" in live.stderr


def test_m002_adds_process_columns_to_an_existing_database(tmp_path):
    from vdi_cli.store import migrations

    path = tmp_path / "old.db"
    import sqlite_utils

    old = sqlite_utils.Database(path)
    migrations.m001_core_tables(old)
    old[MIGRATIONS_TABLE].insert({"id": 1, "name": "m001_core_tables", "applied_at": "then"},
                                 alter=True)
    old["runs"].insert({"command": "train", "status": "running", "started_at": "then"})
    old.conn.close()

    db = open_db(path)
    assert {"pid", "host"} <= set(db["runs"].columns_dict)
    names = [r["name"] for r in db[MIGRATIONS_TABLE].rows]
    assert names[:2] == ["m001_core_tables", "m002_run_process"]
    assert names == [fn.__name__ for fn in migrations.MIGRATIONS]  # the later ones too, in order
    row = list_runs(db)[0]
    assert (row["pid"], row["host"], row["process_gone"]) == (None, None, False)


def test_commands_opening_a_new_database_at_once_all_succeed(tmp_path):
    """Two `vdi` commands started together on a fresh VDI_HOME: before, the later ones failed
    with "database is locked" or "table runs already exists" (measured: 20 of 30 processes in
    5 rounds of 6); now each waits for the first one's migrations."""
    import subprocess
    import sys

    code = "import sys; from vdi_cli.store import open_db; open_db(sys.argv[1])"
    for round_ in range(3):
        path = tmp_path / f"new-{round_}.db"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        db = open_db(path)
        assert [r["name"] for r in db[MIGRATIONS_TABLE].rows] == [m.__name__ for m in MIGRATIONS]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_each_database_gets_its_own_artifact_folder(tmp_path, monkeypatch):
    """m003: a random store id per database names its folder under VDI_HOME/stores; an old
    database gets one when it is opened, and keeps it."""
    from vdi_cli.store.artifacts import artifact_dir, store_id

    monkeypatch.setenv("VDI_HOME", str(tmp_path / "home"))
    a, b = open_db(tmp_path / "a.db"), open_db(tmp_path / "b.db")
    assert store_id(a) != store_id(b) and len(store_id(a)) == 32
    assert artifact_dir(a) == tmp_path / "home" / "stores" / store_id(a)
    assert artifact_dir(a) != artifact_dir(b)
    assert store_id(open_db(tmp_path / "a.db")) == store_id(a)
    import json

    assert json.loads((artifact_dir(b) / "store.json").read_text()) == {
        "db": str((tmp_path / "b.db").resolve())}
