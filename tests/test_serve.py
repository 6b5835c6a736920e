"""`vdi serve`: the JSON API answers what the CLI's `--json` prints, videos are served with
range requests and only when the store knows them, the database is only read, and the pages
render; a real headless Chromium plays a found moment."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")
pytest.importorskip("starlette")

from vdi_cli.testing import (  # noqa: E402
    environment,
    invoke,
    make_video,
    register_tiny_open_clip,
    train_tiny_checkpoint,
)

QUERY = "a red square moves to the right"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny checkpoint, a library of 6 real mp4 files in an index, one model eval."""
    root = tmp_path_factory.mktemp("serve")
    trained = train_tiny_checkpoint(root, videos=4, epochs=2)
    for i in range(6):
        make_video(root / "lib" / f"clip{i:02d}.mp4", seconds=6 + 3 * i, fps=2, size=(32, 32),
                   seed=100 + i)
    env = {"VDI_HOME": str(root / "home"), "VDI_DB": str(root / "vdi.db"), "VDI_PLUGINS": ""}
    with environment(env):
        register_tiny_open_clip()
        built = invoke(["index", "build", "lib", root / "lib", "-c", trained["checkpoint"]])
        assert built.exit_code == 0, built.stderr
        evaluated = invoke(["eval", "--checkpoint", trained["checkpoint"], "--annotations",
                            root / "data" / "train.json", "--format", "mmn-json",
                            "--video-dir", root / "data" / "videos"])
        assert evaluated.exit_code == 0, evaluated.stderr
    return {**trained, "env": env, "lib": root / "lib"}


@pytest.fixture
def client(world, monkeypatch):
    from starlette.testclient import TestClient

    from vdi_cli.serve.app import create_app

    for k, v in world["env"].items():
        monkeypatch.setenv(k, v)
    register_tiny_open_clip()
    app = create_app(world["db"])
    with TestClient(app) as c:
        yield c
    app.state.store.close()


def _cli_json(world, args):
    with environment(world["env"]):
        register_tiny_open_clip()
        r = invoke(args)
    assert r.exit_code == 0, r.stderr
    return r.json()


def test_search_answers_what_vdi_search_json_prints(world, client):
    answer = client.get("/api/search", params={"q": QUERY, "k": 4, "timelines": "1"})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    cli = _cli_json(world, ["search", QUERY, "--index", "lib", "-k", "4", "--json"])
    assert data["corpus"] == cli["corpus"]
    assert data["predictions"] == cli["predictions"]
    assert {k: data[k] for k in ("backbone", "head", "checkpoint", "sampling")} == \
        {k: cli[k] for k in ("backbone", "head", "checkpoint", "sampling")}
    assert data["run_id"] is None and data["index"] == "lib"  # serving records no run
    found = {w[0] for w in data["corpus"][0]["pred_relevant_windows"]}
    assert found == {v["vid"] for v in data["videos"]}
    for v in data["videos"]:
        # the curve --plot draws: one score per sampled frame (1 fps), over the whole video
        assert len(v["times"]) == len(v["timeline"][0]) == round(v["duration"])
        best = max(w[3] for w in data["corpus"][0]["pred_relevant_windows"] if w[0] == v["vid"])
        assert max(s for s in v["timeline"][0] if s is not None) == pytest.approx(best, abs=1e-3)
        assert v["url"].startswith("/video?path=") and v["path"].endswith(f"{v['vid']}.mp4")
    assert data["timings"]["server"] > 0
    # without timelines=1 the same moments, and each video's curve from /api/timeline
    plain = client.get("/api/search", params={"q": QUERY, "k": 4}).json()
    assert plain["corpus"] == data["corpus"] and "timeline" not in plain["videos"][0]
    for v in data["videos"]:
        one = client.get("/api/timeline", params={"q": QUERY, "vid": v["vid"]}).json()
        assert (one["times"], one["timeline"], one["url"]) == (v["times"], v["timeline"][0],
                                                               v["url"])
    # --candidates: one round of that many neighbours
    few = client.get("/api/search", params={"q": QUERY, "k": 4, "candidates": 64})
    assert few.status_code == 200 and len(few.json()["corpus"][0]["pred_relevant_windows"]) == 4
    # several queries at once, as `vdi search Q1 Q2`
    two = client.get("/api/search", params=[("q", QUERY), ("q", "the blue circle appears")])
    assert [c["query"] for c in two.json()["corpus"]] == [QUERY, "the blue circle appears"]


def test_a_timeline_after_a_plain_search_reads_the_frame_times(world, client):
    # a search without timelines leaves the videos' frame times unread; /api/timeline then
    # reads them: one score per sampled frame, as with timelines=1
    plain = client.get("/api/search", params={"q": QUERY, "k": 2}).json()
    vid = plain["corpus"][0]["pred_relevant_windows"][0][0]
    one = client.get("/api/timeline", params={"q": QUERY, "vid": vid}).json()
    assert len(one["times"]) == len(one["timeline"]) == round(one["duration"]) > 0
    assert one["times"][:2] == [0.0, 1.0]


def test_video_is_served_with_range_requests(world, client):
    path = world["lib"] / "clip03.mp4"
    data = path.read_bytes()
    url = client.get("/api/search", params={"q": QUERY}).json()["videos"][0]["url"]
    assert client.get(url).status_code == 200
    part = client.get("/video", params={"path": str(path)}, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-type"] == "video/mp4"
    tail = client.get("/video", params={"path": str(path)}, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    whole = client.get("/video", params={"path": str(path)})
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    bad = client.get("/video", params={"path": str(path)},
                     headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416


def test_only_videos_the_store_knows_are_served(world, client, tmp_path):
    lib, db = world["lib"], Path(world["db"])
    good = lib / "clip00.mp4"
    assert client.get("/video", params={"path": str(good)}).status_code == 200
    # an extracted video of the evaluated split is known too (the `videos` table)
    split = sorted((Path(world["data"]) / "videos").glob("*.mp4"))[0]
    assert client.get("/video", params={"path": str(split)}).status_code == 200
    outside = lib / "outside.mp4"
    outside.symlink_to(db)  # a symlink in a known folder that points out of it
    stray = lib / "stray.mp4"  # a file in a known folder that is not in the store
    stray.write_bytes(good.read_bytes())
    try:
        for requested in [str(db), "/etc/passwd", f"{lib}/../vdi.db", "lib/clip00.mp4",
                          "clip00.mp4", str(outside), str(stray), f"{lib}/../../../etc/passwd",
                          str(lib), "", "\x00", str(lib / "missing.mp4")]:
            answer = client.get("/video", params={"path": requested})
            assert answer.status_code == 404, requested
            assert b"SQLite" not in answer.content and b"root:" not in answer.content
        # a path spelled with `..` that lands on a known video is that video
        assert client.get("/video", params={"path": f"{lib}/../lib/clip00.mp4"}
                          ).status_code == 200
        assert client.get("/video/../vdi.db").status_code == 404
    finally:
        outside.unlink()
        stray.unlink()


def test_the_database_is_opened_read_only(world, client):
    db = Path(world["db"])
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    runs = len(client.get("/api/runs").json())
    client.get("/api/search", params={"q": QUERY})
    for page in ("/", "/runs", f"/runs/{world['run']}"):
        assert client.get(page).status_code == 200
    assert len(client.get("/api/runs").json()) == runs  # a search records no run
    store = client.app.state.store
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.db.execute("delete from runs")
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_runs_api_answers_what_vdi_runs_json_prints(world, client):
    listed = client.get("/api/runs", params={"limit": 50}).json()
    assert listed == _cli_json(world, ["runs", "list", "-n", "50", "--json"])
    # (other tests here run `vdi search`, which records runs in the same database)
    assert [r["command"] for r in listed if r["command"] != "search"] == \
        ["eval", "index", "train"]
    shown = client.get(f"/api/runs/{world['run']}").json()
    assert shown == _cli_json(world, ["runs", "show", str(world["run"]), "--json"])
    assert shown["checkpoints"][-1]["epoch"] == 2
    only = client.get("/api/runs", params={"command": "train"}).json()
    assert [r["id"] for r in only] == [world["run"]]
    indexes = client.get("/api/indexes").json()
    assert [(i["name"], i["videos"]) for i in indexes] == [("lib", 6)]


@pytest.mark.parametrize("params,status,error", [
    ({}, 400, "no query given"),
    ({"q": "   "}, 400, "query 1 is empty"),
    ({"q": QUERY, "k": "0"}, 400, "k must be between 1 and 100, got 0"),
    ({"q": QUERY, "k": "five"}, 400, "k must be a whole number, got 'five'"),
    ({"q": QUERY, "index": "lbi"}, 404, "no index named 'lbi' (did you mean 'lib'?)"),
    ({"q": QUERY, "candidates": "0"}, 400, "candidates must be between 1 and 10000000, got 0"),
])
def test_search_refuses_bad_input_with_error_and_hint(client, params, status, error):
    answer = client.get("/api/search", params=params)
    assert answer.status_code == status
    assert answer.json()["error"] == error and answer.json()["hint"]


def test_a_long_running_server_does_not_keep_every_sentence(client, monkeypatch):
    from vdi_cli.serve import api

    monkeypatch.setattr(api, "TEXT_MEMORY", 2)
    texts = client.app.state.store.searcher("lib").retriever._texts
    for i in range(5):
        assert client.get("/api/search", params={"q": f"{QUERY} {i}"}).status_code == 200
        assert len(texts) <= 2


def test_timeline_refuses_a_video_not_in_the_index(client):
    answer = client.get("/api/timeline", params={"q": QUERY, "vid": "clip99"})
    assert answer.status_code == 404
    assert answer.json()["error"] == "no video 'clip99' in index 'lib'"
    assert client.get("/api/timeline", params={"vid": "clip00"}).status_code == 400


def test_bad_run_requests(client):
    assert client.get("/api/runs/999").status_code == 404
    assert client.get("/api/runs/999").json()["error"] == "no run with id 999"
    assert client.get("/runs/999").status_code == 404
    assert "no run with id 999" in client.get("/runs/999").text
    assert client.get("/api/runs", params={"status": "okay"}).status_code == 400


def test_pages_render_with_only_shipped_assets(world, client):
    search = client.get("/")
    assert search.status_code == 200 and 'id="search-form"' in search.text
    assert '<video id="player"' in search.text
    runs = client.get("/runs").text
    assert runs.count('href="/runs/') == len(client.get("/api/runs").json()) >= 3
    assert "<td>index</td>" in runs and "<td>eval</td>" in runs
    run = client.get(f"/runs/{world['run']}").text
    assert run.count("<svg") == 2 and "training loss" in run and "loss terms" in run
    assert "epoch-002" in run  # the checkpoints table
    for name in ("app.css", "search.js", "timeline.js"):
        assert client.get(f"/static/{name}").status_code == 200
    # nothing from a CDN: no page or asset names another host
    texts = [search.text, runs, run] + [client.get(f"/static/{n}").text
                                        for n in ("app.css", "search.js", "timeline.js",
                                                  "eval.js")]
    for text in texts:
        assert "https://" not in text and "//cdn" not in text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_serve_help_imports_no_web_library():
    code = ("import sys, contextlib, io\nfrom vdi_cli.cli import run\n"
            "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
            "    rc = run(['--help'])\n"
            "print(rc, [m for m in ('starlette', 'uvicorn', 'jinja2', 'torch') "
            "if m in sys.modules], 'serve' in buf.getvalue())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "0 [] True", proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_vdi_serve_runs_a_server_and_warns_on_every_interface(world):
    import httpx

    port = _free_port()
    env = {**os.environ, **world["env"], "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vdi_cli", "serve", "--host", "0.0.0.0",
                             "--port", str(port), "--lazy"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, proc.stderr.read()
        assert [r["command"] for r in answer.json()][-3:] == ["eval", "index", "train"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Warning: listening on 0.0.0.0" in err
    assert f"http://0.0.0.0:{port}/" in err


def test_the_store_is_never_created_or_migrated(tmp_path):
    """Serving a database path that does not exist is an error, and creates nothing."""
    r = invoke(["--db", str(tmp_path / "none.db"), "serve"])
    assert r.exit_code == 1 and "no run database at" in r.stderr
    assert not (tmp_path / "none.db").exists()


def test_run_plots_group_losses_and_draw_hand_computed_points():
    from vdi_cli.serve.pages import metric_plots
    from vdi_cli.serve.svg import line_plot

    # 520 x 220, margins left 56, right 130, top 24, bottom 34: x 1..2 -> 56..390, y 0..1 -> 186..24
    svg = line_plot({"a": [(1, 0.0), (2, 1.0)]}, title="t")
    assert 'points="56.0,186.0 390.0,24.0"' in svg
    metrics = [{"split": "train", "name": f"loss/{n}", "epoch": e, "value": v}
               for e in (1, 2) for n, v in (("loss", 2.0 / e), ("iou", 1.0), ("vid", 0.5),
                                            ("visual-context", 0.3), ("spatial-dynamic", 0.2))]
    metrics += [{"split": "val", "name": "mIoU", "epoch": 1, "value": 30.0},
                {"split": "val", "name": "mIoU", "epoch": None, "value": 31.0}]
    plots = metric_plots(metrics)
    titles = [p.split('aria-label="')[1].split('"')[0] for p in plots]
    assert titles == ["training loss", "loss terms", "VDI terms", "val metrics"]
    assert "visual-context" in plots[2] and "spatial-dynamic" in plots[2]
    assert "iou" not in plots[2] and "visual-context" not in plots[1]
    assert plots[3].count("<circle") == 1  # the final (epoch-less) value is not a point


def test_templates_and_static_files_are_package_data():
    """A regular install ships every page and asset: each file under vdi_cli/serve/templates
    and static matches a package-data pattern of vdi_cli.serve (and the package is listed)."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "vdi_cli.serve" in tool["packages"]
    patterns = tool["package-data"]["vdi_cli.serve"]
    folder = root / "vdi_cli" / "serve"
    files = [p.relative_to(folder).as_posix() for sub in ("templates", "static")
             for p in (folder / sub).iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), files


@pytest.mark.slow
def test_browser_plays_the_first_moment_from_its_start(world, client, tmp_path):
    """Headless Chromium: the search page, a query, a click on the first moment: the video is
    at the moment's start (within a second), and pauses at its end; a screenshot is saved."""
    from vdi_cli.testing_browser import find_chromium, search_and_play, serving

    found = find_chromium()
    if isinstance(found, str):
        pytest.skip(found)
    def windows(k):
        return client.get("/api/search", params={"q": QUERY, "k": k}).json()[
            "corpus"][0]["pred_relevant_windows"]

    top10, top30 = windows(10), windows(30)  # 10: the page's default
    later = next(i for i, w in enumerate(top30) if w[1] >= 2.0)  # a real seek, not to 0 s
    with serving(client.app) as url:
        first = search_and_play(url, QUERY, tmp_path / "first.png")
        seek = search_and_play(url, QUERY, tmp_path / "seek.png", min_start=2.0, top_k=30)
    for seen, rank, found in ((first, 0, top10), (seek, later, top30)):
        assert (seen["rank"], seen["vid"], seen["start"], seen["end"]) == \
            (rank, *found[rank][:3])
        assert seen["moments"] == len(found)
        assert seen["media_error"] is None
        timeline = client.get("/api/timeline", params={"q": QUERY, "vid": seen["vid"]}).json()
        assert seen["curve_points"] == sum(v is not None for v in timeline["timeline"]) > 0
        assert abs(seen["current_time"] - seen["start"]) < 1.0, seen
        assert seen["stopped_at"] is not None, seen  # paused at the moment's end
        assert seen["start"] < seen["stopped_at"] <= seen["end"] + 0.5, seen
    for shot in ("first.png", "seek.png"):
        png = (tmp_path / shot).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def _eval_run_id(client) -> int:
    return client.get("/api/runs", params={"command": "eval"}).json()[0]["id"]


def test_evaluation_view_agrees_with_the_runs_metrics(world, client):
    run_id = _eval_run_id(client)
    metrics = {m["name"]: m["value"] for m in client.get(f"/api/runs/{run_id}").json()["metrics"]}
    annotations = json.loads((Path(world["data"]) / "train.json").read_text())
    total = sum(len(v["sentences"]) for v in annotations.values())
    for iou in (0.3, 0.5, 0.7):
        view = client.get(f"/api/eval/{run_id}", params={"iou": iou}).json()
        assert view["queries_total"] == total
        assert view["recall_at_1"] == pytest.approx(metrics[f"R@1,IoU={iou}"], abs=0.01)
    view = client.get(f"/api/eval/{run_id}").json()
    stored = sqlite3.connect(world["db"]).execute(
        "select video, query, start_s, end_s from predictions where run_id = ? and rank = 1 "
        "order by id", [run_id]).fetchall()
    for q, (video, query, s, e) in zip(view["queries"], stored, strict=True):
        assert (q["video"], q["query"]) == (video, query)
        (ps, pe, _, iou), (gs, ge) = q["predictions"][0], q["gt"]
        assert (ps, pe) == (round(s, 3), round(e, 3))
        inter, union = max(0.0, min(pe, ge) - max(ps, gs)), max(pe, ge) - min(ps, gs)
        assert iou == pytest.approx(inter / union, abs=2e-3)  # by hand, from the rounded times
        assert q["hit"] == (iou >= 0.5) and len(q["predictions"]) <= 5
        assert q["url"] and client.get(q["url"]).status_code == 200
    misses = client.get(f"/api/eval/{run_id}", params={"misses": "1"}).json()
    assert misses["matched"] == total - view["hits"]
    assert not any(q["hit"] for q in misses["queries"])
    by = client.get(f"/api/eval/{run_id}", params={"by": "actions"}).json()
    assert by["fields"] == ["actions"] and by["by_values"]
    value = by["by_values"][0]
    only = client.get(f"/api/eval/{run_id}", params={"by": "actions", "value": value}).json()
    expected = sum(value in (a if isinstance(a, list) else [a]) for v in annotations.values()
                   for a in v.get("actions", []))
    assert only["matched"] == expected > 0
    assert all(value in str(q["extra"]["actions"]) for q in only["queries"])


def test_evaluation_page_and_its_bad_requests(world, client):
    run_id = _eval_run_id(client)
    page = client.get(f"/eval/{run_id}")
    assert page.status_code == 200
    total = client.get(f"/api/eval/{run_id}").json()["queries_total"]
    assert page.text.count("<tr class=") == total
    assert page.text.count('class="window gt"') == total and "/static/eval.js" in page.text
    assert f'href="/eval/{run_id}"' in client.get(f"/runs/{run_id}").text
    misses = client.get(f"/eval/{run_id}", params={"misses": "1"}).text
    assert misses.count('<tr class="miss">') == misses.count("<tr class=")
    for params, error in (({"by": "colour"}, "no query of this split has a 'colour' field"),
                          ({"iou": "2"}, "iou must be in (0, 1], got 2.0"),
                          ({"iou": "x"}, "iou must be a number")):
        answer = client.get(f"/api/eval/{run_id}", params=params)
        assert answer.status_code == 400 and answer.json()["error"].startswith(error)
    train = client.get(f"/api/eval/{world['run']}")
    assert train.status_code == 400 and "is not an evaluation of a model" in train.json()["error"]
    assert client.get("/api/eval/999").status_code == 404
    assert client.get("/eval/999").status_code == 404


def test_several_indexes_and_an_index_changed_while_serving(world, tmp_path):
    import shutil

    from starlette.testclient import TestClient

    from vdi_cli.serve.app import create_app

    db = tmp_path / "vdi.db"
    source, copy = sqlite3.connect(world["db"]), sqlite3.connect(db)
    source.backup(copy)  # the rows still in the WAL file too
    source.close()
    copy.close()
    shutil.copytree(Path(world["db"]).with_name("vdi.indexes"), tmp_path / "vdi.indexes")
    env = {**world["env"], "VDI_DB": str(db)}
    with environment(env):
        register_tiny_open_clip()
        r = invoke(["index", "build", "one", world["lib"] / "clip00.mp4", "-c",
                    world["checkpoint"]])
        assert r.exit_code == 0, r.stderr
        app = create_app(db, preload=True)  # two indexes, no --index: nothing to preload
        client = TestClient(app)
        assert app.state.store._searchers == {}
        vague = client.get("/api/search", params={"q": QUERY})
        assert vague.status_code == 400 and vague.json()["error"] == "2 indexes: lib, one"
        one = client.get("/api/search", params={"q": QUERY, "index": "one"}).json()
        assert {w[0] for w in one["corpus"][0]["pred_relevant_windows"]} == {"clip00"}
        assert '<select id="index"' in client.get("/").text
        # `vdi index add` while serving: the next search loads the index as it is now
        kept = app.state.store.searcher("one")
        assert sorted(r["vid"] for r in kept.videos.values()) == ["clip00"]
        r = invoke(["index", "add", "one", world["lib"] / "clip01.mp4"])
        assert r.exit_code == 0, r.stderr
        assert client.get("/api/search", params={"q": QUERY, "index": "one"}).status_code == 200
        now = app.state.store.searcher("one")
        assert now is not kept and sorted(r["vid"] for r in now.videos.values()) == \
            ["clip00", "clip01"]
        assert app.state.store.searcher("one") is now  # unchanged since: kept
        app.state.store.close()
