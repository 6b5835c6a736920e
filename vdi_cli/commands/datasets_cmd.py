"""`vdi datasets check FORMAT FILE` (what a file keeps, drops and clips) and
`vdi datasets generate FORMAT --out DIR` (synthetic data). The listing itself, `vdi datasets`,
comes from commands/components.py."""

from __future__ import annotations

import typer

from vdi_cli.commands.components import kind_group
from vdi_cli.output import print_json, print_table


def check(
    format_id: str = typer.Argument(..., metavar="FORMAT", help="Dataset format id."),
    annotations: str = typer.Argument(..., metavar="FILE", help="Annotation file."),
    option: list[str] = typer.Option([], "--dataset-option",
                                      help="Format option key=value (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Read an annotation file; print its video/query counts, what was dropped or clipped,
    duplicate (video, query) rows, non-ASCII queries and videos that lose every row. Exits 1
    when no row is kept."""
    from vdi_cli.config import parse_overrides
    from vdi_cli.dataset_checks import finding_lines, inspect_report
    from vdi_cli.datasets import load_dataset, no_answers_error

    report = load_dataset(format_id, annotations, need_answers=False, **parse_overrides(option))
    summary = report.summary()
    found = inspect_report(report)
    if json_out:
        print_json({**summary, **found})
    else:
        print_table(
            [(summary["videos"], summary["queries"], summary["unannotated"], summary["dropped"],
              summary["clipped"])],
            ["videos", "queries", "without answers", "dropped", "clipped"],
        )
        for message in report.messages + finding_lines(found):
            typer.echo(f"- {message}")
    if not report.annotations and not report.unannotated:
        raise no_answers_error(report)


def generate(
    format_id: str = typer.Argument(..., metavar="FORMAT", help="A generator format (its "
                                    "`vdi datasets` description says so)."),
    out: str = typer.Option(..., "--out", help="Folder for videos/ and the split files."),
    videos: int = typer.Option(400, "--videos", min=1, help="Training videos."),
    test_videos: int = typer.Option(None, "--test-videos", min=1,
                                    help="Videos in each test split (default: videos / 4)."),
    seed: int = typer.Option(0, "--seed", help="Everything is deterministic from the seed."),
    fps: float = typer.Option(8.0, "--fps", min=1.0, help="Frame rate of the written mp4s."),
    size: int = typer.Option(64, "--size", min=16, help="Frame side in pixels (even)."),
    force: bool = typer.Option(False, "--force", help="Replace a set generated in --out before "
                               "(by default --out must be new or empty)."),
    option: list[str] = typer.Option([], "--dataset-option", help="Generator option key=value "
                                     "(repeatable), e.g. --dataset-option version=4 "
                                     "(`vdi datasets show FORMAT` lists them)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Generate a synthetic dataset: real mp4 files plus annotation files per split."""
    import sys

    from vdi_cli.config import parse_overrides
    from vdi_cli.errors import VdiError
    from vdi_cli.output import progress
    from vdi_cli.registry import get_component
    from vdi_cli.runs import run_context
    from vdi_cli.settings import open_store

    component = get_component("dataset", format_id)
    if not component.extra.get("generator"):
        raise VdiError(f"dataset '{format_id}' cannot generate data, it only reads files",
                       hint="`vdi datasets` lists the formats; a generator's description says "
                       "`vdi datasets generate ID`")
    if size % 2:
        raise VdiError(f"--size {size} is odd", hint="H.264 needs even frame sizes, e.g. 64")
    options = parse_overrides(option)
    generator = component.build(options or None)  # unknown or invalid options refused here
    config = {"format": format_id, "out": out, "videos": videos, "test_videos": test_videos,
              "seed": seed, "fps": fps, "size": size, "force": force, "options": options}
    with run_context(open_store(), "datasets generate", config, sys.argv[1:]) as run:
        meta = generator.generate(
            out, videos, seed, test_videos=test_videos, fps=fps, size=size, force=force,
            progress=lambda **kw: progress(json_mode=json_out, **kw))
        run.summary.update(meta["splits"])
    if json_out:
        print_json(meta)
        return
    rows = [(split, v["file"], v["videos"], v["queries"]) for split, v in meta["splits"].items()]
    print_table(rows, ["split", "file", "videos", "queries"])


def register(app: typer.Typer) -> None:
    group = kind_group(app, "dataset")
    group.command("check")(check)
    group.command("generate")(generate)
