"""`vdi runs list|show ID|prune ID...|gc`: the run history kept in the SQLite store."""

from __future__ import annotations

import json

import typer

from vdi_cli.output import print_json, print_table
from vdi_cli.settings import open_store
from vdi_cli.store.runs import RUN_STATUSES  # what a run row's status can be (serve reads it)

runs_app = typer.Typer(help="Runs recorded in the database (every command that does work).")


@runs_app.command("list")
def list_cmd(
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    status: str = typer.Option(None, "--status", help="Only ok, error, interrupted or running."),
    command: str = typer.Option(None, "--command", help="Only runs of this command."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """List recent runs."""
    from vdi_cli.store import list_runs

    if status is not None and status not in RUN_STATUSES:
        from vdi_cli.config import did_you_mean
        from vdi_cli.errors import UsageError

        raise UsageError(f"unknown --status '{status}'{did_you_mean(status, RUN_STATUSES)}",
                         hint=f"--status is one of {', '.join(RUN_STATUSES)}")
    rows = list_runs(open_store(readonly=True), limit=limit, status=status, command=command)
    if json_out:
        print_json(rows)
        return
    print_table(
        [
            (r["id"], r["command"], r["status"] + (" (process gone)" if r["process_gone"] else ""),
             r["started_at"], (r.get("error") or "")[:60])
            for r in rows
        ],
        ["id", "command", "status", "started", "error"],
    )


@runs_app.command("show")
def show_cmd(
    run_id: int = typer.Argument(..., help="Run id (see `vdi runs list`)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Show one run: its configuration, status, error, metrics and checkpoints."""
    from vdi_cli.store import get_run

    row = get_run(open_store(readonly=True), run_id)
    if json_out:
        print_json(row)
        return
    for key in ("id", "command", "status", "started_at", "finished_at", "error", "vdi_version"):
        value = row.get(key) if row.get(key) is not None else ""
        if key == "status" and row["process_gone"]:
            value = f"{value} (process {row['pid']} is gone: killed before it could finish)"
        typer.echo(f"{key:12} {value}")
    typer.echo(f"{'config':12} {json.dumps(row.get('config') or {}, sort_keys=True)}")
    recipe = (row.get("config") or {}).get("recipe") if isinstance(row.get("config"), dict) \
        else None
    if recipe:  # `vdi train --recipe`: which file, its hash; its values are in the config
        typer.echo(f"{'recipe':12} {recipe.get('name')} ({recipe.get('path')}, sha256 "
                   f"{recipe.get('sha256')})")
    if row.get("summary"):
        typer.echo(f"{'summary':12} {json.dumps(row['summary'], sort_keys=True)}")
    if row["metrics"]:
        print_table(
            [(m["split"], m["name"], m["epoch"], _value(m)) for m in row["metrics"]],
            ["split", "metric", "epoch", "value"],
        )


def _value(metric: dict) -> str:
    """Metrics with 4 decimals; the VDI diagnostics with 3 significant digits, since theirs
    (gradient ratios, collapsed spreads) live near 1e-5."""
    if metric["split"] == "diagnostics":
        return f"{metric['value']:.3g}"
    return f"{metric['value']:.4f}"


@runs_app.command("prune")
def prune_cmd(
    run_ids: list[int] = typer.Argument(..., help="Training run ids (see `vdi runs list "
                                        "--command train`)."),
    force: bool = typer.Option(False, "--force", help="Prune a run still marked running (its "
                               "process was killed)."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Delete the checkpoints of training runs that are neither the best nor the newest epoch
    (what `-o keep_checkpoints=best-last` does during training), and the unfinished
    `epoch-NNN.tmp/` folders a killed run left."""
    from vdi_cli.pipeline.train_run import prune_runs

    results = prune_runs(open_store(), run_ids, force=force)
    if json_out:
        print_json(results)
        return
    for r in results:
        removed = ", ".join(map(str, r["removed_epochs"])) or "none"
        kept = ", ".join(map(str, r["kept_epochs"])) or "none"
        temporaries = (f" and unfinished {', '.join(r['removed_temporaries'])}"
                       if r["removed_temporaries"] else "")
        typer.echo(f"run {r['run_id']}: removed epochs {removed}{temporaries} "
                   f"({r['freed_bytes'] / 1e6:.1f} MB), kept {kept}")


@runs_app.command("gc")
def gc_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove "
                                 "nothing."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Remove what killed commands left and what points at nothing: unfinished checkpoint
    folders, checkpoint folders without a row, rows whose files are gone, feature staging files
    (only in this database's own folders and rows)."""
    from vdi_cli.store.gc import collect_garbage

    result = collect_garbage(open_store(), dry_run=dry_run)
    if json_out:
        print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    lines = [(result["temporaries"], "unfinished checkpoint folder"),
             (result["checkpoint_folders"], "checkpoint folder without a row"),
             ([r["path"] for r in result["checkpoint_rows"]],
              "checkpoint row whose files are gone"),
             ([r["path"] for r in result["feature_rows"]], "feature row whose file is gone"),
             (result["feature_staging"], "feature staging file")]
    for items, what in lines:
        for item in items:
            typer.echo(f"{verb} {what}: {item}")
    total = sum(len(items) for items, _ in lines)
    kept = result["unreferenced_features_kept"]
    typer.echo(f"{verb} {total} item{'s' if total != 1 else ''} "
               f"({result['freed_bytes'] / 1e6:.1f} MB)")
    if kept["files"]:
        typer.echo(f"kept {kept['files']} cached feature files no row of this database uses "
                   f"({kept['bytes'] / 1e6:.1f} MB): the feature cache is shared with the other "
                   "databases under this home")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
