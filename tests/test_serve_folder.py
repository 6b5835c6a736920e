"""`vdi serve --folder`: a folder searched without an index, kept warm. Its answers equal `vdi
retrieve FOLDER`'s with the same model (34 real mp4 files, 32 with cached features), videos
without cached features are left out and said, its videos are served, and the options that
choose its model are refused without a folder."""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("starlette")

from vdi_cli.testing import (  # noqa: E402
    environment,
    invoke,
    make_video,
    register_tiny_open_clip,
    train_tiny_checkpoint,
)

QUERIES = ["a red square moves to the right", "the blue circle appears"]
EXTRACTED = 32


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny checkpoint; a folder of 32 videos of 4-35 s that `vdi retrieve` searched
    (so their features are cached), then 2 more videos nobody extracted."""
    root = tmp_path_factory.mktemp("serve-folder")
    trained = train_tiny_checkpoint(root, videos=4, epochs=1)
    lib = root / "lib"
    for i in range(EXTRACTED):
        make_video(lib / f"v{i:02d}.mp4", seconds=4 + (i * 7) % 32, fps=2, size=(32, 32),
                   seed=300 + i)
    env = {"VDI_HOME": str(root / "home"), "VDI_DB": str(root / "vdi.db"), "VDI_PLUGINS": ""}
    reference = {}
    with environment(env):
        register_tiny_open_clip()
        for k in (3, 10):
            r = invoke(["retrieve", lib, *QUERIES, "-c", trained["checkpoint"], "-k", str(k),
                        "--json"])
            assert r.exit_code == 0, r.stderr
            reference[k] = r.json()
    for i in range(2):  # in the folder, never extracted
        make_video(lib / f"new{i}.mp4", seconds=5, fps=2, size=(32, 32), seed=900 + i)
    return {**trained, "env": env, "lib": lib, "reference": reference}


def _searcher(world):
    from vdi_cli.pipeline.folder_search import FolderSearcher
    from vdi_cli.serve.store import open_read_only

    register_tiny_open_clip()
    return FolderSearcher(open_read_only(world["db"]), [world["lib"]], name="folder:lib",
                          checkpoint=world["checkpoint"])


def _same_corpus(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["query"] == w["query"]
        assert [x[0] for x in g["pred_relevant_windows"]] == \
            [x[0] for x in w["pred_relevant_windows"]]
        for a, b in zip(g["pred_relevant_windows"], w["pred_relevant_windows"], strict=True):
            assert a[1:] == pytest.approx(b[1:], abs=1e-6)


@pytest.mark.parametrize("top_k", [3, 10])
def test_folder_search_equals_vdi_retrieve_over_the_folder(world, top_k):
    with environment(world["env"]):
        searcher = _searcher(world)
        result = searcher.search(QUERIES, top_k=top_k)
        again = searcher.search(QUERIES, top_k=top_k)  # warm: proposals encoded once
    assert len(searcher.videos) == EXTRACTED and len(searcher._cache) == EXTRACTED
    want = world["reference"][top_k]["corpus"]
    _same_corpus(result.to_json()["corpus"], want)
    _same_corpus(again.to_json()["corpus"], want)
    # the answer spans several videos (a ranking across the folder, not one video's list)
    assert len({w[0] for c in want for w in c["pred_relevant_windows"]}) > 1


def test_videos_without_cached_features_are_left_out_and_named(world):
    with environment(world["env"]):
        searcher = _searcher(world)
    assert sorted(m["vid"] for m in searcher.missing) == ["new0", "new1"]
    assert all(m["reason"] == "no cached features for this model" for m in searcher.missing)


def test_a_folder_with_no_cached_features_is_an_error_with_a_hint(world, tmp_path):
    from vdi_cli.errors import VdiError

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for i in range(2):
        shutil.copy(world["lib"] / f"new{i}.mp4", fresh / f"n{i}.mp4")
    from vdi_cli.pipeline.folder_search import FolderSearcher
    from vdi_cli.serve.store import open_read_only

    with environment(world["env"]):
        register_tiny_open_clip()
        with pytest.raises(VdiError) as caught:
            FolderSearcher(open_read_only(world["db"]), [fresh], name="folder:fresh",
                           checkpoint=world["checkpoint"])
    assert "none of the 2 videos" in caught.value.message
    assert "vdi retrieve" in caught.value.hint


@pytest.fixture
def client(world, monkeypatch):
    from starlette.testclient import TestClient

    from vdi_cli.serve.app import create_app

    for k, v in world["env"].items():
        monkeypatch.setenv(k, v)
    register_tiny_open_clip()
    app = create_app(world["db"], folders=[world["lib"]], checkpoint=world["checkpoint"],
                     preload=True)
    with TestClient(app) as c:
        yield c
    app.state.store.close()


def test_served_folder_answers_the_api_pages_and_videos(world, client):
    page = client.get("/")
    assert page.status_code == 200 and "folder:lib" in page.text
    answer = client.get("/api/search", params={"q": QUERIES, "k": 3})  # the only source
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["index"] == "folder:lib" and data["run_id"] is None
    _same_corpus(data["corpus"], world["reference"][3]["corpus"])
    video = data["videos"][0]
    served = client.get(video["url"], headers={"Range": "bytes=0-99"})
    assert served.status_code == 206 and len(served.content) == 100
    line = client.get("/api/timeline", params={"q": QUERIES[0], "vid": video["vid"],
                                               "index": "folder:lib"})
    assert line.status_code == 200, line.text
    assert len(line.json()["times"]) == len(line.json()["timeline"]) > 0
    # a file of the folder that is not searched (no features) is not served
    from vdi_cli.serve.media import video_url

    assert client.get(video_url(str(world["lib"] / "new0.mp4"))).status_code == 404
    unknown = client.get("/api/search", params={"q": QUERIES[0], "index": "folder:nope"})
    assert unknown.status_code == 404 and "hint" in unknown.json()


def test_model_options_without_a_folder_are_refused(world):
    with environment(world["env"]):
        r = invoke(["serve", "--checkpoint", world["checkpoint"]])
    assert r.exit_code == 2
    assert "Error: --checkpoint chooses the model of --folder searches" in r.stderr
    assert "Hint:" in r.stderr and "Traceback" not in r.stderr


def test_folder_names_are_unique():
    from vdi_cli.serve.app import folder_names

    assert folder_names(["a/clips", "b/clips/", "c/*.mp4", "clips"]) == {
        "folder:clips": "a/clips", "folder:clips-2": "b/clips/", "folder:c": "c/*.mp4",
        "folder:clips-3": "clips"}
