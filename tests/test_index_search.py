"""`vdi index` + `vdi search` on a 50-video library of real mp4 files: the exact index gives
the same moments as `vdi retrieve` over the folder, adding and removing videos needs no
rebuild, approximate indexes find most of them, and bad input is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")

from vdi_cli.testing import (  # noqa: E402
    invoke,
    make_video,
    register_tiny_open_clip,
    train_tiny_checkpoint,
)

TINY = "open_clip:vdi-tiny"
QUERIES = ["a red square moves to the right", "the blue circle appears", "a green shape jumps"]
LIBRARY = 50


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny checkpoint (2 epochs) and a library of 50 videos of 3-45 s (the longer
    ones span several windows)."""
    root = tmp_path_factory.mktemp("library")
    trained = train_tiny_checkpoint(root, videos=6, epochs=2)
    for i in range(LIBRARY):
        make_video(root / "lib" / f"clip{i:02d}.mp4", seconds=3 + (i * 7) % 43, fps=2,
                   size=(32, 32), seed=100 + i)
    return {"root": root, "checkpoint": trained["checkpoint"]}


@pytest.fixture
def store(world, monkeypatch, tmp_path):
    """A fresh database per test, sharing the world's feature cache folder."""
    monkeypatch.setenv("VDI_HOME", str(world["root"] / "home"))
    monkeypatch.setenv("VDI_DB", str(tmp_path / "vdi.db"))
    register_tiny_open_clip()
    return world


def _ok(args):
    r = invoke([str(a) for a in args])
    assert r.exit_code == 0, r.stderr
    return r


def _corpus(data):
    return [[(w[0], round(w[1], 4), round(w[2], 4), w[3]) for w in c["pred_relevant_windows"]]
            for c in data["corpus"]]


def test_exact_index_search_equals_retrieve_over_the_folder(store):
    lib, ckpt = store["root"] / "lib", store["checkpoint"]
    built = _ok(["index", "build", "lib", lib, "-c", ckpt, "--json"]).json()
    assert (built["videos"], len(built["added"]), built["failed"]) == (LIBRARY, LIBRARY, [])
    assert built["proposals"] == sum(a["proposals"] for a in built["added"])
    assert built["kind"] == "flat"
    retrieved = _ok(["retrieve", lib, *QUERIES, "-c", ckpt, "-k", "5", "--json"]).json()
    searched = _ok(["search", *QUERIES, "--index", "lib", "-k", "5", "--json"]).json()
    assert _corpus(searched) == _corpus(retrieved)
    assert all(len(c) == 5 for c in _corpus(searched))
    options = _ok(["index", "show", "lib", "--json"]).json()["options"]
    assert options["fp16"] == 1 and 0 < options["code_error"] < 1e-3  # the scan reads fp16
    _ok(["index", "build", "lib32", lib, "-c", ckpt, "-O", "fp16=0"])  # the float32 scan
    plain = _ok(["search", *QUERIES, "--index", "lib32", "-k", "5", "--json"]).json()
    assert _corpus(plain) == _corpus(retrieved)
    # the table names the videos and the run row records how the search closed
    table = _ok(["search", QUERIES[0], "-i", "lib", "-k", "3"]).stdout
    assert "clip" in table and "rank" in table
    from vdi_cli.store import list_runs, open_db

    run = list_runs(open_db(), command="search", limit=1)[0]
    assert run["status"] == "ok" and run["summary"]["proven"] == [True]
    # a second build of the same name is refused; --force replaces it
    again = invoke(["index", "build", "lib", lib, "-c", ckpt])
    assert again.exit_code == 1 and "an index named 'lib' exists" in again.stderr
    _ok(["index", "build", "lib", lib / "clip00.mp4", "-c", ckpt, "--force"])
    assert _ok(["index", "show", "lib", "--json"]).json()["videos"] == 1


def test_rows_files_and_an_older_index_s_per_space_files_search_alike(store):
    """An index writes one rows file a video (every space in one record) and its frame times
    apart, read only for a timeline; a folder of an older index (one .npy file a space) is
    still searched, with the same answer, and removing its videos removes those files."""
    import numpy as np

    from vdi_cli.pipeline.search import LibrarySearcher
    from vdi_cli.store import open_db
    from vdi_cli.store.indexes import index_dir

    _ok(["index", "build", "lib", store["root"] / "lib", "-c", store["checkpoint"]])
    folder = index_dir(open_db(), "lib") / "videos"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{s}-{k}.npy" for s in range(LIBRARY) for k in ("rows", "times"))
    first = _ok(["search", *QUERIES, "-k", "5", "--json"]).json()
    searcher = LibrarySearcher(open_db(), "lib")
    answer = searcher.search(QUERIES[:1], top_k=3)
    touched = sorted(searcher._cache)
    assert touched and all(len(searcher._cache[s][0].times) == 0 for s in touched)  # not read
    timed = searcher.search(QUERIES[:1], top_k=3, keep_maps=True)
    assert _corpus(timed.to_json()) == _corpus(answer.to_json())
    for v in timed.videos:
        slot = next(s for s, r in searcher.videos.items() if r["vid"] == v.vid)
        want = np.load(folder / f"{slot}-times.npy")
        np.testing.assert_array_equal(v.ranking.times, want)
        assert len(v.ranking.timeline[0]) == len(want) > 0
    for slot in range(0, LIBRARY, 2):  # half the videos as an older vdi wrote them
        records = np.load(folder / f"{slot}-rows.npy")
        for space in records.dtype.names:
            np.save(folder / f"{slot}-{space}.npy", records[space])
        (folder / f"{slot}-rows.npy").unlink()
    assert _corpus(_ok(["search", *QUERIES, "-k", "5", "--json"]).json()) == _corpus(first)
    _ok(["index", "remove", "lib", "clip00", "clip01"])
    left = {p.name for p in folder.iterdir()}
    assert not {n for n in left if n.split("-")[0] in ("0", "1")}
    assert {"2-iou.npy", "2-con.npy", "3-rows.npy"} <= left


def test_the_rounds_and_the_whole_scan_give_the_same_exact_answer(store, monkeypatch):
    """A small flat index is scored whole in one round (WHOLE_SCAN); above that size the
    search grows its candidates in rounds until the bound proves the top K. Both are exact:
    here the same library searched both ways (the threshold lowered to force the rounds)."""
    from vdi_cli.pipeline import search as search_module
    from vdi_cli.store import open_db

    _ok(["index", "build", "lib", store["root"] / "lib", "-c", store["checkpoint"]])
    whole = search_module.LibrarySearcher(open_db(), "lib")
    total = whole.vectors.size
    assert total <= search_module.WHOLE_SCAN
    answer = whole.search(QUERIES, top_k=5)
    assert whole.stats.rounds == [total] * len(QUERIES) and all(whole.stats.proven)
    monkeypatch.setattr(search_module, "WHOLE_SCAN", 0)
    rounds = search_module.LibrarySearcher(open_db(), "lib")
    asked = []  # the M of every FAISS round
    scan = rounds.vectors.search
    monkeypatch.setattr(rounds.vectors, "search", lambda q, m: asked.append(m) or scan(q, m))
    again = rounds.search(QUERIES, top_k=5)
    assert asked[0] < total and len(asked) > len(QUERIES) and all(rounds.stats.proven)
    assert _corpus(again.to_json()) == _corpus(answer.to_json())


def test_stage_two_pruning_keeps_the_exact_answer(store):
    """Ranking only the best PRUNE_KEEP (16) x K candidates (`_rank`) gives what ranking every
    candidate gives (`_decode` with no floor), here with every proposal of the library a
    candidate."""
    import numpy as np

    from vdi_cli.pipeline.search import PRUNE_KEEP, LibrarySearcher, _rank_at
    from vdi_cli.store import open_db

    _ok(["index", "build", "lib", store["root"] / "lib", "-c", store["checkpoint"]])
    searcher = LibrarySearcher(open_db(), "lib")
    sent = searcher.head.encode_queries(searcher.retriever.encode(QUERIES))
    search_q = searcher.head.search_query(sent)
    total = searcher.vectors.size
    pruned = 0
    for qi in range(len(QUERIES)):
        one = {k: v[qi : qi + 1] for k, v in sent.items()}
        ips, ids = searcher.vectors.search(search_q[qi : qi + 1], total)
        for top_k in (1, 3, 10):
            got = searcher._rank(ips[0], ids[0], one, top_k)
            from vdi_cli.vector_index import split_ids

            slots, positions = split_ids(ids[0])
            order = np.lexsort((positions, slots))
            slots, positions = slots[order], positions[order]
            parts = np.split(np.arange(len(slots)), np.flatnonzero(np.diff(slots)) + 1)
            # every window's scores read whole (`exact_scores`), picked at the candidates
            def exact_at(slot: int, pos: np.ndarray, one: dict = one) -> np.ndarray:
                return searcher.exact_scores(slot, one)[0].reshape(-1)[pos]

            exact = np.concatenate([exact_at(int(slots[p[0]]), positions[p]) for p in parts])
            items = []  # (slot, proposals, [1, W, C] exact scores), as `_rank` builds them
            for p in parts:
                slot = int(slots[p[0]])
                vp, _ = searcher._video(slot)
                full_map = np.full(len(vp.windows) * len(vp.cells), -np.inf, np.float32)
                full_map[positions[p]] = exact_at(slot, positions[p])
                items.append((slot, vp, full_map.reshape(1, len(vp.windows), len(vp.cells))))
            full = _rank_at(items, -np.inf, top_k)
            assert got == full and len(got) == top_k
            pruned += int((exact >= np.sort(exact)[-PRUNE_KEEP * top_k]).sum() < len(exact))
            # the rule `_rank` relies on: any floor whose ranking still holds K moments gives
            # the full answer; a higher floor can hold fewer (then `_rank` ranks them all)
            short = 0
            for j in range(1, 40):
                floor = float(np.sort(exact)[-j])
                pool = _rank_at(items, floor, top_k)
                if len(pool) >= top_k:
                    assert pool == full, (qi, top_k, j)
                else:
                    short += 1
            assert short >= top_k - 1
    assert pruned == 9  # every case ranked a pruned set


def test_add_and_remove_update_the_index_without_a_rebuild(store, tmp_path):
    lib, ckpt = store["root"] / "lib", store["checkpoint"]
    half = tmp_path / "half"
    half.mkdir()
    for f in sorted(lib.glob("*.mp4"))[:30]:
        shutil.copy(f, half / f.name)
    _ok(["index", "build", "lib", half, "-c", ckpt])
    added = _ok(["index", "add", "lib", lib, "--json"]).json()
    assert (len(added["added"]), len(added["skipped"]), added["videos"]) == (20, 30, LIBRARY)
    full = _ok(["retrieve", lib, *QUERIES, "-c", ckpt, "-k", "5", "--json"]).json()
    assert _corpus(_ok(["search", *QUERIES, "-k", "5", "--json"]).json()) == _corpus(full)
    best = {w[0] for c in full["corpus"] for w in c["pred_relevant_windows"]}
    removed = _ok(["index", "remove", "lib", *sorted(best), "--json"]).json()
    assert removed["videos"] == LIBRARY - len(best)
    rest = tmp_path / "rest"
    rest.mkdir()
    for f in lib.glob("*.mp4"):
        if f.stem not in best:
            shutil.copy(f, rest / f.name)
    expected = _ok(["retrieve", rest, *QUERIES, "-c", ckpt, "-k", "5", "--json"]).json()
    assert _corpus(_ok(["search", *QUERIES, "-k", "5", "--json"]).json()) == _corpus(expected)
    from vdi_cli.store import open_db
    from vdi_cli.store.indexes import get_index, index_dir

    db = open_db()
    files = sorted(p.name for p in index_dir(db, "lib").glob("*.faiss"))
    assert files == [Path(get_index(db, "lib")["path"]).name]  # the old generations are gone
    unknown = invoke(["index", "remove", "lib", "nothing-like-it"])
    assert unknown.exit_code == 1 and "not in index 'lib': nothing-like-it" in unknown.stderr


@pytest.mark.parametrize("kind,options", [("hnsw", []), ("ivfpq", ["-O", "nlist=16", "-O", "m=8"]),
                                          ("winpq", ["-O", "m=8"])])
def test_approximate_indexes_find_most_of_the_exact_moments(store, kind, options):
    lib, ckpt = store["root"] / "lib", store["checkpoint"]
    _ok(["index", "build", "exact", lib, "-c", ckpt])
    _ok(["index", "build", kind, lib, "-c", ckpt, "--kind", kind, *options])
    exact = _corpus(_ok(["search", *QUERIES, "-i", "exact", "-k", "10", "--json"]).json())
    approx = _corpus(_ok(["search", *QUERIES, "-i", kind, "-k", "10", "--json",
                          "--candidates", "1500"]).json())
    # recall by score (the library has many near-equal moments): how many of the approximate
    # top 10 score at least the exact 10th, and none can score above the exact best
    for a, e in zip(approx, exact, strict=True):
        assert max(m[3] for m in a) <= e[0][3] + 1e-6
    hits = sum(sum(m[3] >= e[-1][3] - 1e-6 for m in a) for a, e in zip(approx, exact,
                                                                        strict=True))
    assert hits / sum(map(len, exact)) >= 0.8
    shown = _ok(["index", "show", kind, "--json"]).json()
    assert shown["kind"] == kind and shown["videos"] == LIBRARY and shown["faiss_bytes"] > 0


def test_training_free_index_equals_training_free_retrieve(store):
    lib = store["root"] / "lib"
    free = ["--training-free", "--backbone", TINY]
    _ok(["index", "build", "free", lib, *free])
    retrieved = _ok(["retrieve", lib, *QUERIES[:2], *free, "-k", "5", "--json"]).json()
    searched = _ok(["search", *QUERIES[:2], "-k", "5", "--json"]).json()
    assert searched["head"] == "clip-similarity"
    assert _corpus(searched) == _corpus(retrieved)


def test_errors(store, tmp_path, monkeypatch):
    lib, ckpt = store["root"] / "lib", store["checkpoint"]
    none = invoke(["search", "a red square"])
    assert none.exit_code == 1 and "Error: no index in this database" in none.stderr
    assert "vdi index build" in none.stderr
    _ok(["index", "build", "lib", lib / "clip01.mp4", "-c", ckpt])
    for args, message in (
        (["search", "x", "-i", "lbi"], "no index named 'lbi' (did you mean 'lib'?)"),
        (["search", " ", "-i", "lib"], "query 1 is empty"),
        (["search", "x", "-i", "lib", "-k", "0"], "--top-k must be at least 1"),
        (["index", "build", "bad name", lib], "'bad name' is not a valid index name"),
        (["index", "build", "x", lib, "-c", ckpt, "--kind", "annoy"], "unknown index kind"),
        (["index", "build", "x", lib, "-c", ckpt, "--kind", "hnsw", "-O", "neighbours=8"],
         "unknown option 'neighbours' for a hnsw index (did you mean 'neighbors'?)"),
        (["index", "build", "x", lib / "clip01.mp4", "-c", ckpt, "--kind", "ivfpq"],
         "an ivfpq index needs at least"),
        (["index", "add", "nope", lib], "no index named 'nope'"),
    ):
        r = invoke(args)
        assert r.exit_code == 1, (args, r.stderr)
        assert f"Error: {message}" in r.stderr and "Hint: " in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert [i["name"] for i in _ok(["index", "list", "--json"]).json()] == ["lib"]
    # a build that fails part-way leaves no index and no files behind
    from vdi_cli import vector_index
    from vdi_cli.store import open_db
    from vdi_cli.store.indexes import index_dir

    def broken(self, vectors, ids, group=0):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vector_index.VectorIndex, "add", broken)
    r = invoke(["index", "build", "full", lib, "-c", ckpt])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert [i["name"] for i in _ok(["index", "list", "--json"]).json()] == ["lib"]
    assert not index_dir(open_db(), "full").exists()


def test_a_head_without_the_index_contract_is_refused():
    from vdi_cli.errors import VdiError
    from vdi_cli.pipeline.index import check_indexable

    class Plain:
        def encode_proposals(self, *a):  # only one of the calls
            return {}

    with pytest.raises(VdiError, match="the head 'plain' cannot be indexed: it has no "
                       "encode_queries, score_proposals"):
        check_indexable(Plain(), "plain")


def test_score_bound_bounds_every_score_with_that_inner_product():
    """MMN's bound is what makes the exact search exact: for random unit vectors, no proposal's
    fused score exceeds the bound of its own search inner product."""
    import numpy as np

    from vdi_plugins.heads.mmn_model import build_mmn

    head = build_mmn({"preset": "charades", "hidden_size": 8, "joint_size": 16,
                      "conv_layers": 1}, video_dim=16, text_dim=16)
    rng = np.random.default_rng(0)

    def unit(*shape):
        x = rng.normal(size=shape)
        return torch.from_numpy(x / np.linalg.norm(x, axis=-1, keepdims=True)).float()

    props = {"iou": unit(4000, 16), "con": unit(4000, 16)}
    queries = {"iou": unit(1, 16), "con": unit(1, 16)}
    scores = head.score_proposals(props, queries)[0]
    ips = head.search_vectors(props) @ head.search_query(queries)[0]
    assert np.all(scores <= head.score_bound(ips) + 1e-7)
    assert np.all(head.score_bound(np.sort(ips)) == np.maximum.accumulate(
        head.score_bound(np.sort(ips))))  # grows with the inner product
    # tight at the extremes: both cosines 1 gives the best score exactly
    assert head.score_bound(np.array([1.0]))[0] == pytest.approx(
        float(head.fuse(np.array([1.0]), np.array([1.0]))[0]), abs=1e-4)
    assert json.dumps(head.search_query(queries).tolist())  # plain floats
