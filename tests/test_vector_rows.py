"""The row gatherer that `vdi search` rescores its candidates with (advised, then gathered)."""

from __future__ import annotations

import numpy as np
import pytest

from vdi_cli.errors import VdiError
from vdi_cli.pipeline.vector_rows import (
    ROWS_ALIGN,
    NpyRows,
    RowReader,
    VideoRows,
    row_runs,
    write_rows,
)


def _spans(runs: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int]]:
    return list(zip(runs[0].tolist(), runs[1].tolist(), strict=True))


def test_row_runs_merge_neighbours_within_the_gap() -> None:
    # rows of 1 KiB, gap 16 KiB = 16 rows: 0..3 and 19 join (gap 16), 40 is alone, 100-101 join
    assert _spans(row_runs(np.array([0, 3, 19, 40, 100, 101]), 1024)) == [(0, 20), (40, 41),
                                                                           (100, 102)]
    # a gap of 17 rows splits
    assert _spans(row_runs(np.array([0, 17]), 1024)) == [(0, 1), (17, 18)]
    # rows wider than the gap: only adjacent rows merge
    assert _spans(row_runs(np.array([5, 6, 8]), 64 << 10)) == [(5, 7), (8, 9)]
    assert _spans(row_runs(np.array([], np.int64), 1024)) == []


def test_npy_rows_reads_the_header_of_both_versions(tmp_path) -> None:
    a = np.arange(60, dtype=np.float32).reshape(12, 5)
    np.save(tmp_path / "v1.npy", a)
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    for name in ("v1.npy", "v2.npy"):
        rows = NpyRows.open(tmp_path / name)
        assert rows.shape == (12, 5) and rows.dtype == np.float32 and rows.row_bytes == 20
        np.testing.assert_array_equal(rows.read_all(), a)


@pytest.mark.parametrize("open_files", [3, 256])
def test_gather_equals_fancy_indexing_across_many_files(tmp_path, open_files) -> None:
    # 3 open maps for 14 files: maps are closed and opened again within one gather
    rng = np.random.default_rng(0)
    arrays, jobs = [], []
    for i in range(14):
        a = rng.standard_normal((500, 256 if i % 2 else 3)).astype(np.float32)  # odd row sizes
        with open(tmp_path / f"{i}.npy", "wb") as f:  # header versions 1 and 2: other offsets
            np.lib.format.write_array(f, a, version=(1, 0) if i % 3 else (2, 0))
        pos = np.sort(rng.choice(500, size=int(rng.integers(0, 60)), replace=False))
        arrays.append(a)
        jobs.append((NpyRows.open(tmp_path / f"{i}.npy"), pos))
    reader = RowReader(open_files)
    got = reader.gather(jobs)
    assert len(reader._maps) == min(open_files, 14)
    assert len(got) == 14
    for a, (_, pos), rows in zip(arrays, jobs, got, strict=True):
        assert rows.shape == (len(pos), a.shape[1])
        np.testing.assert_array_equal(rows, a[pos])
    assert [g.shape[1] for g in reader.gather(jobs)] == [a.shape[1] for a in arrays]  # warm


def test_write_rows_is_a_page_aligned_npy_of_records_np_load_reads(tmp_path) -> None:
    iou = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    con = -np.arange(5 * 2, dtype=np.float64).reshape(5, 2)  # stored as float32
    write_rows(tmp_path / "0-rows.npy", {"iou": iou, "con": con})
    rows = NpyRows.open(tmp_path / "0-rows.npy")
    assert rows.offset == ROWS_ALIGN == 4096  # data on a page boundary
    assert rows.fields == ("iou", "con") and rows.map_shape == (5,)
    assert rows.row_bytes == (3 + 2) * 4  # one record: both spaces
    assert (tmp_path / "0-rows.npy").stat().st_size == 4096 + 5 * 20
    loaded = np.load(tmp_path / "0-rows.npy")  # a standard .npy
    np.testing.assert_array_equal(loaded["iou"], iou)
    np.testing.assert_array_equal(loaded["con"], con.astype(np.float32))
    assert loaded["con"].dtype == np.float32
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed
    video = VideoRows((rows,))
    assert video.widths() == {"iou": 3, "con": 2}
    np.testing.assert_array_equal(video.read_all()["con"], con.astype(np.float32))
    with pytest.raises(ValueError, match="same n"):
        write_rows(tmp_path / "1-rows.npy", {"iou": iou, "con": con[:4]})
    assert not (tmp_path / "1-rows.npy").exists()


def test_gather_spaces_reads_rows_files_and_older_per_space_files_alike(tmp_path) -> None:
    rng = np.random.default_rng(3)
    truth, videos = [], []
    for i in range(4):  # videos 0, 2: rows files; 1, 3: a file a space (an older index)
        iou = rng.standard_normal((300, 4)).astype(np.float32) / 7  # float32 -> 64 exactly
        con = rng.standard_normal((300, 6)).astype(np.float32)
        if i % 2 == 0:
            write_rows(tmp_path / f"{i}-rows.npy", {"iou": iou, "con": con})
            files = (NpyRows.open(tmp_path / f"{i}-rows.npy"),)
        else:
            np.save(tmp_path / f"{i}-iou.npy", iou)
            np.save(tmp_path / f"{i}-con.npy", con)
            files = (NpyRows.open(tmp_path / f"{i}-con.npy"),
                     NpyRows.open(tmp_path / f"{i}-iou.npy"))
        truth.append({"iou": iou, "con": con})
        videos.append(VideoRows(files))
    picks = [np.r_[np.arange(136, 272)],  # a whole window: copied as one slice
             np.array([0, 3, 5, 11, 17, 299]),  # scattered: one fancy gather
             np.array([7]), np.arange(290, 300)]
    got = RowReader().gather_spaces(list(zip(videos, picks, strict=True)))
    assert set(got) == {"iou", "con"}
    for k in got:
        assert got[k].dtype == np.float64
        want = np.concatenate([t[k][p] for t, p in zip(truth, picks, strict=True)])
        np.testing.assert_array_equal(got[k], want.astype(np.float64))
    assert RowReader().gather_spaces([]) == {}
    only_iou = VideoRows((NpyRows.open(tmp_path / "1-iou.npy"),))  # its con file lost
    with pytest.raises(VdiError, match=r"hold the spaces \['iou'\], not \['con', 'iou'\]"):
        RowReader().gather_spaces([(videos[0], picks[0]), (only_iou, picks[1])])


def test_a_truncated_or_missing_vector_file_is_a_clear_error(tmp_path) -> None:
    a = np.ones((100, 256), np.float32)
    np.save(tmp_path / "0-iou.npy", a)
    rows = NpyRows.open(tmp_path / "0-iou.npy")
    with open(tmp_path / "0-iou.npy", "r+b") as f:
        f.truncate(rows.offset + 50 * rows.row_bytes)
    with pytest.raises(VdiError, match="cannot be read whole") as err:
        RowReader().gather([(rows, np.array([10, 90]))])
    with pytest.raises(VdiError, match="shorter than its header says"):
        rows.read_all()  # what a plot or a timeline reads
    assert "vdi index build" in err.value.hint
    with pytest.raises(VdiError, match="cannot be read") as err:
        NpyRows.open(tmp_path / "1-iou.npy")
    assert "--force" in err.value.hint


def test_the_searcher_lists_an_index_folder_once_and_again_for_a_new_video(tmp_path) -> None:
    from types import SimpleNamespace

    from vdi_cli.pipeline.search import LibrarySearcher

    for name in ("3-iou.npy", "3-con.npy", "3-times.npy", "31-iou.npy", "3-notes.txt"):
        (tmp_path / name).write_bytes(b"")
    me = SimpleNamespace(_listings={})
    assert LibrarySearcher._spaces(me, f"{tmp_path}/3-") == ["con", "iou", "times"]
    assert LibrarySearcher._spaces(me, f"{tmp_path}/31-") == ["iou"]  # not 3-'s
    (tmp_path / "4-iou.npy").write_bytes(b"")
    assert LibrarySearcher._spaces(me, f"{tmp_path}/4-") == ["iou"]  # listed again
    assert LibrarySearcher._spaces(me, f"{tmp_path}/5-") == []


def test_prefetch_headers_starts_the_first_page_of_every_file_and_skips_missing_ones(
        tmp_path, monkeypatch) -> None:
    import os

    from vdi_cli.pipeline.vector_rows import prefetch_headers

    for i in range(3):
        write_rows(tmp_path / f"{i}-rows.npy", {"iou": np.ones((4, 2), np.float32)})
    calls = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: calls.append(
        (os.fstat(fd).st_ino, off, n, advice)) or real(fd, off, n, advice))
    paths = [str(tmp_path / f"{i}-rows.npy") for i in (0, 1)] + [str(tmp_path / "9-rows.npy"),
                                                                str(tmp_path / "2-rows.npy")]
    prefetch_headers(paths)  # 9-rows.npy does not exist: skipped, no error
    inodes = [os.stat(tmp_path / f"{i}-rows.npy").st_ino for i in (0, 1, 2)]
    assert calls == [(ino, 0, ROWS_ALIGN, os.POSIX_FADV_WILLNEED) for ino in inodes]
    assert all(NpyRows.open(p).fields == ("iou",) for p in paths if "9-" not in p)
