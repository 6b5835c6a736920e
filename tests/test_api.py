"""The Python API (`vdi_cli.api`, exported lazily by `vdi_cli`): a cheap import, every exported
name documented with its signature in docs/api.md, the store optional (in memory, a path or an
opened store give the same moments), errors worded with the API's parameter names (the CLI's
with its flags), and the README's and docs/api.md's examples run as written, offline."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "docs" / "api.md"
README = ROOT / "README.md"


def plain_signature(fn) -> str:
    """`name(a, b, *, c=1, **options)`: the signature as docs/api.md writes it."""
    out, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            out.append(f"*{p.name}")
            star = True
            continue
        if p.kind is p.VAR_KEYWORD:
            out.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{fn.__name__}({', '.join(out)})"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_import_is_cheap_and_names_resolve_lazily():
    """`import vdi_cli` imports no stage module and no torch / numpy / pydantic; a name's module
    is imported on first use, and the stage functions' own imports stay lazy too."""
    code = ("import sys\n"
            "import vdi_cli\n"
            "heavy = ('torch', 'numpy', 'pydantic', 'open_clip', 'vdi_cli.api', "
            "'vdi_cli.pipeline')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or "
            "m.startswith(heavy)))\n"
            "f = vdi_cli.retrieve\n"
            "print(f.__module__, 'vdi_cli.api' in sys.modules, 'torch' in sys.modules)\n"
            "print(vdi_cli.Moment(1.0, 2.0, 0.5))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "vdi_cli.api True False",
                                     "Moment(start=1.0, end=2.0, score=0.5)"]


def test_every_export_resolves_and_docs_api_lists_it_with_its_signature():
    import vdi_cli

    page = API_PAGE.read_text(encoding="utf-8")
    assert vdi_cli.__all__ == sorted(vdi_cli._EXPORTS)
    for name in vdi_cli.__all__:
        value = getattr(vdi_cli, name)
        if inspect.isfunction(value):  # its signature, as a line of its own
            assert value.__module__ == "vdi_cli.api"
            assert f"\n{plain_signature(value)}\n" in page, plain_signature(value)
        else:  # a row of the classes' table
            assert f"`{name}`" in page, f"docs/api.md does not list {name}"
    assert set(vdi_cli.__all__) <= set(dir(vdi_cli))
    with pytest.raises(AttributeError, match="no attribute 'retrieval'"):
        vdi_cli.retrieval  # noqa: B018
    assert "api.md" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def test_parameter_names_in_messages_and_their_cli_wording():
    """The library names its parameters (`param`); the command layer's table words them as
    flags, a value after the flag, `True` as a bare switch; unknown names stay as they are."""
    from vdi_cli.commands._flags import cli_error, cli_words
    from vdi_cli.errors import VdiError, param

    text = (f"{param('top_k')} must be at least 1; e.g. {param('top_k', 5)}, "
            f"{param('training_free', True)}, {param('run', 'ID')}, {param('suites')}, "
            "`vdi runs list`")
    assert text == ("`top_k` must be at least 1; e.g. `top_k=5`, `training_free=True`, "
                    "`run=ID`, `suites`, `vdi runs list`")
    assert cli_words(text) == ("--top-k must be at least 1; e.g. --top-k 5, --training-free, "
                               "--run ID, `suites`, `vdi runs list`")
    exc = cli_error(VdiError(f"{param('overlap')} must be in [0, 1)",
                             hint=f"e.g. {param('overlap', 0.5)}"))
    assert (exc.message, exc.hint, str(exc)) == ("--overlap must be in [0, 1)",
                                                 "e.g. --overlap 0.5",
                                                 "--overlap must be in [0, 1)")


@pytest.fixture
def clip(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("av")
    from vdi_cli.testing import make_video

    return make_video(tmp_path / "clip.mp4", seconds=6, fps=4, size=(48, 32))


FREE = {"training_free": True, "backbone": "tiny-shapes"}
Q = "a red square moves to the right"


def test_retrieve_without_a_store_with_a_path_and_with_an_opened_store(clip, tmp_path):
    """No database: nothing is written to VDI_DB (the call's store is in memory); a path and an
    opened store keep the feature row, so the next call finds the features cached. The three
    give the same moments (the same model on the same frames)."""
    import os

    import vdi_cli as vdi

    default_db = Path(os.environ["VDI_DB"])
    free = vdi.retrieve(clip, [Q], top_k=3, **FREE)
    assert not default_db.exists()
    assert free.run_id is None and free.videos[0].status == "extracted"
    moments = free.videos[0].moments[0]
    assert len(moments) == 3
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    assert all(0 <= m.start < m.end <= free.videos[0].duration + 1e-6 for m in moments)

    path = tmp_path / "mine.db"
    first = vdi.retrieve(str(clip), Q, top_k=3, db=path, **FREE)
    store = vdi.open_store(path)
    again = vdi.retrieve([clip], [Q], top_k=3, db=store, **FREE)
    assert (first.videos[0].status, again.videos[0].status) == ("extracted", "cached")
    assert first.videos[0].moments[0] == again.videos[0].moments[0] == moments
    assert store["features"].count == 1 and not default_db.exists()


def test_library_errors_name_the_api_parameters(clip):
    import vdi_cli as vdi

    with pytest.raises(vdi.VdiError) as bad:
        vdi.retrieve(clip, [Q], top_k=0, **FREE)
    assert (bad.value.message, bad.value.hint) == ("`top_k` must be at least 1, got 0",
                                                   "e.g. `top_k=5`")
    with pytest.raises(vdi.VdiError) as both:
        vdi.retrieve(clip, [Q], checkpoint=str(clip.parent), run=1)
    assert both.value.message == "`checkpoint` and `run` contradict each other"
    assert "--" not in both.value.message + (both.value.hint or "")
    with pytest.raises(vdi.ConfigError, match=r"unknown training option 'epoch' "
                       r"\(did you mean 'epochs'\?\)"):
        vdi.train_config(dataset="mmn-json", annotations="a.json", video_dir="v", epoch=2)
    with pytest.raises(vdi.VdiError, match="give exactly one of `predictions` and "
                       "`checkpoint`"):
        vdi.evaluate("a.json", dataset="mmn-json")


def _run_blocks(blocks: list[str], capsys) -> tuple[list[str], str]:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, "<docs>", "exec"), namespace)  # noqa: S102 - the docs' own code
    out = capsys.readouterr()
    return out.out.splitlines(), out.err


def test_the_readme_example_runs(clip, tmp_path, monkeypatch, capsys):
    """The README's Python API block, on a 6 s generated clip.mp4 in the working folder:
    three lines "start-end s  score S", best first, inside the video, and nothing on stderr."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = python_blocks(section)
    assert len(blocks) == 1 and 5 <= len(section.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    lines, err = _run_blocks(blocks, capsys)
    assert err == ""
    assert len(lines) == 3, lines
    rows = [re.fullmatch(r"(\d+\.\d)-(\d+\.\d) s  score (-?\d\.\d{3})", line) for line in lines]
    assert all(rows), lines
    spans = [(float(r[1]), float(r[2]), float(r[3])) for r in rows]
    assert all(0 <= s < e <= 6.0 for s, e, _ in spans)
    assert [x[2] for x in spans] == sorted((x[2] for x in spans), reverse=True)


def test_the_api_page_examples_run(tmp_path, monkeypatch, capsys):
    """docs/api.md's blocks in order, in one namespace: generate a world, train 1 epoch, score
    the test split, retrieve across the videos, index and search. Each printed moment names a
    generated video and lies inside it; the recall is a percentage."""
    pytest.importorskip("torch")
    pytest.importorskip("av")
    blocks = python_blocks(API_PAGE.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    lines, err = _run_blocks(blocks, capsys)
    assert err == ""
    assert len(lines) == 1 + 3 + 2, lines
    recall = re.fullmatch(r"R@5,IoU=0\.5 (\d+\.\d)", lines[0])
    assert recall and 0 <= float(recall[1]) <= 100
    durations = {}
    for split in ("train", "test_iid", "test_novel_word"):
        data = json.loads((tmp_path / "world" / f"{split}.json").read_text())
        durations.update({vid: v["duration"] for vid, v in data.items()})
    assert set(durations) == {p.stem for p in (tmp_path / "world" / "videos").glob("*.mp4")}
    for line in lines[1:]:
        found = re.fullmatch(r"(\S+): (\d+\.\d)-(\d+\.\d) s", line)
        assert found and found[1] in durations, line
        assert 0 <= float(found[2]) < float(found[3]) <= durations[found[1]] + 0.05
    assert (tmp_path / "library.db").is_file()


def test_extract_and_parse_without_a_store_and_with_one(clip, tmp_path):
    """extract: 6 s at 2 fps is 12 frames of tiny-shapes' 128-d features; a missing file is
    reported, not raised; the call's in-memory store forgets (extracted again), a given store
    remembers (cached). parse: duplicates parsed once, spaCy's noun chunks are the static
    query and the rest the dynamic one; a store keeps the parse for the next call."""
    import vdi_cli as vdi

    first = vdi.extract(clip, backbone="tiny-shapes", fps=2)
    video = first.videos[0]
    assert (video.status, video.frames, video.duration, video.global_shape) == (
        "extracted", 12, 6.0, [12, 128])
    again = vdi.extract([clip, tmp_path / "none.mp4"], backbone="tiny-shapes", fps=2)
    assert [(v.status, v.reason) for v in again.videos] == [("extracted", None),
                                                            ("failed", "missing")]
    store = vdi.open_store(tmp_path / "mine.db")
    kept = [vdi.extract(clip, backbone="tiny-shapes", fps=2, db=store).videos[0].status
            for _ in range(2)]
    assert kept == ["extracted", "cached"]

    pytest.importorskip("spacy")
    sentence = "a person opens the door"
    report = vdi.parse([sentence, sentence])
    query = report.queries[0]
    assert (len(report.queries), report.parsed) == (2, 1)
    assert (query.static, query.dynamic, query.chunks) == ("a person the door", "opens",
                                                           ((0, 2), (3, 5)))
    counts = [(r.parsed, r.cached) for r in (vdi.parse(sentence, db=store),
                                              vdi.parse(sentence, db=store))]
    assert counts == [(1, 0), (0, 1)]
