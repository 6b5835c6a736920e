"""`vdi extract --shard I/N`: a deterministic split balanced by duration, covering the list
exactly once, from I/N or from Slurm's / torchrun's environment."""

from __future__ import annotations

import random

import pytest

from vdi_cli.errors import VdiError
from vdi_cli.shards import assign, parse_shard, shard_of
from vdi_cli.testing import invoke


def test_parse_shard_from_text_and_environment():
    assert parse_shard(None) is None
    assert parse_shard("0/2", env={}) == (0, 2) and parse_shard("3/4", env={}) == (3, 4)
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1",
             "SLURM_ARRAY_TASK_COUNT": "4", "RANK": "0", "WORLD_SIZE": "2"}
    assert parse_shard("auto", env=slurm) == (2, 4)  # Slurm first, counted from TASK_MIN
    assert parse_shard("auto", env={"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    for bad, message in (("2/2", "shard 2 of 2, outside 0..1"), ("1", "I/N or auto"),
                         ("a/2", "'a' is not a whole number"), ("0/0", "shard 0 of 0")):
        with pytest.raises(VdiError, match=message):
            parse_shard(bad, env={})
    with pytest.raises(VdiError, match="found neither SLURM_ARRAY_TASK_ID"):
        parse_shard("auto", env={})


def test_longest_first_split_by_hand():
    # a(10) -> 0; b(9) -> 1; c(8) -> 1 (9 < 10); d(1), e(1), f(1) -> 0 (10, 11, 12 < 17)
    assert assign(list("abcdef"), [10, 9, 8, 1, 1, 1], 2) == [0, 1, 1, 0, 0, 0]
    # ties in duration go by name, ties in load to the lower shard, whatever the input order
    assert assign(["y", "x"], [5, 5], 2) == [1, 0]


def test_shards_cover_every_video_once_and_balance_the_duration():
    rng = random.Random(0)
    items = [(f"v{i:03d}", f"/data/v{i:03d}.mp4") for i in range(200)]
    durations = [rng.uniform(5, 200) for _ in items]
    parts = [shard_of(items, durations, i, 4) for i in range(4)]
    assert sorted(x for p in parts for x in p) == sorted(items)
    by_name = dict(zip((n for n, _ in items), durations, strict=True))
    loads = [sum(by_name[n] for n, _ in p) for p in parts]
    assert max(loads) - min(loads) <= max(durations)
    shuffled = items[:]
    rng.shuffle(shuffled)
    again = [sorted(shard_of(shuffled, [by_name[n] for n, _ in shuffled], i, 4))
             for i in range(4)]
    assert again == [sorted(p) for p in parts]  # the same split whatever the list order


def test_two_shards_of_a_dataset_extract_it_exactly_once(tmp_path):
    from vdi_cli.store import open_db
    from vdi_plugins.synthetic.generate import generate

    generate(tmp_path / "data", videos=7, seed=2, test_videos=0, fps=2, size=32)
    base = ["extract", "--dataset", "mmn-json", "--annotations", tmp_path / "data" / "train.json",
            "--video-dir", tmp_path / "data" / "videos", "-b", "tiny-shapes", "--json"]
    names = []
    for shard in ("0/2", "1/2"):
        r = invoke([*base, "--shard", shard])
        assert r.exit_code == 0, r.stderr
        assert f"shard {shard}: " in r.stderr
        names.append({v["name"] for v in r.json()["videos"]})
    assert not names[0] & names[1] and len(names[0] | names[1]) == 7
    db = open_db()
    assert db["features"].count == 7 and db["videos"].count == 7
    bad = invoke([*base, "--shard", "2/2"])
    assert bad.exit_code == 1 and "Error: --shard gives shard 2 of 2" in bad.stderr


def test_rank_device_and_the_unsharded_launch_warning(tmp_path):
    from vdi_cli.shards import rank_device, unsharded_launch

    torchrun = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}
    assert rank_device("cuda", torchrun) == "cuda:1"  # one model per GPU on this node
    assert rank_device("cuda:0", torchrun) == "cuda:0"  # an explicit index is kept
    assert rank_device("cpu", torchrun) == "cpu" and rank_device("cuda", {}) == "cuda"
    assert unsharded_launch(torchrun) == "torchrun (WORLD_SIZE=4)"
    assert unsharded_launch({"SLURM_ARRAY_TASK_COUNT": "8"}).startswith("a Slurm job array")
    assert unsharded_launch({"WORLD_SIZE": "1"}) is None and unsharded_launch({}) is None
    r = invoke(["extract", tmp_path / "nothing.mp4", "-b", "tiny-shapes"],
               env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert "Warning: running under torchrun (WORLD_SIZE=2) without --shard" in r.stderr


@pytest.mark.slow
def test_torchrun_ranks_on_cpu_extract_a_dataset_once_into_one_store(tmp_path):
    """Two torchrun ranks on the CPU, `--shard auto`: each takes its shard from RANK /
    WORLD_SIZE, both write one cache and database at the same time, every video is extracted
    exactly once; a rerun (unsharded) finds all of them cached and loads no model."""
    import json
    import os
    import shutil
    import sqlite3
    import subprocess
    import sys

    from vdi_plugins.synthetic.generate import generate

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this python")
    generate(tmp_path / "data", videos=8, seed=4, test_videos=0, fps=2, size=32)
    source = ["--dataset", "mmn-json", "--annotations", str(tmp_path / "data" / "train.json"),
              "--video-dir", str(tmp_path / "data" / "videos"), "-b", "tiny-shapes"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VDI_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "vdi_cli", "extract",
         *source, "--shard", "auto", "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "shard 0/2: " in proc.stderr and "shard 1/2: " in proc.stderr
    conn = sqlite3.connect(os.environ["VDI_DB"])
    runs = conn.execute("select status, config, summary from runs order by id").fetchall()
    features = conn.execute("select count(*), count(distinct video_id) from features"
                            ).fetchone()
    conn.close()
    assert [r[0] for r in runs] == ["ok", "ok"] and features == (8, 8)
    shards = sorted(json.loads(r[1])["shard"] for r in runs)
    assert shards == ["0/2", "1/2"]
    assert sum(json.loads(r[2])["extracted"] for r in runs) == 8
    again = invoke(["extract", *source, "--json"])
    assert again.exit_code == 0, again.stderr
    data = again.json()
    assert (data["cached"], data["extracted"], data["model_loaded"]) == (8, 0, False)
