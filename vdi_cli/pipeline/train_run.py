"""`vdi train` as a library call: data, features, parsing, the epoch loop, checkpoints, metrics.

Every epoch writes a checkpoint folder (config + safetensors + optimiser state) under the
database's own artifact folder, VDI_HOME/stores/<store id>/runs/run-<id>/epoch-<k>
(`vdi_cli.store.artifacts`), a `checkpoints` row (the best one flagged), the mean of each
loss term (split "train") and the validation metrics (split "val") to the `metrics` table.
Only the newest epoch keeps its optimiser state (resume reads nothing else; with CLIP ViT-B/32
it is 511 MB of the newest epoch's 767 MB). With `keep_checkpoints="best-last"` (the default)
the folders and rows of the other epochs are deleted as training goes.

Under torchrun (`vdi_cli.distributed`) every rank runs this function; rank 0 alone extracts,
parses and writes (the others receive the feature hashes and parses from it and open the store
read-only), and `vdi_cli.pipeline.train_ddp` splits the steps and the validation.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vdi_cli.errors import VdiError, param
from vdi_cli.pipeline.train import Trainer, checkpoint_config, log_line, run_folder, say
from vdi_cli.pipeline.train_config import TrainConfig
from vdi_cli.pipeline.train_diagnostics import finish_epoch


def _annotations(report: Any, failed: dict[str, str]) -> list[Any]:
    return [a for a in report.annotations if a.video_id not in failed]


def _folder_bytes(path: Any) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune_checkpoints(db: Any, run_id: int, folder: Any, newest_epoch: int
                      ) -> tuple[list[int], int]:
    """Delete the run's checkpoints that are neither flagged best nor the newest epoch (rows and
    folders; only folders inside the run's own folder are touched).

    Returns the epochs removed and the bytes their folders held."""
    import shutil
    from pathlib import Path

    from vdi_cli.store.checkpoints import delete_prunable

    root = Path(folder).resolve()
    rows = delete_prunable(db, run_id, newest_epoch)
    freed = 0
    for row in rows:
        path = Path(row["path"]).resolve()
        if path.parent == root and path.is_dir():
            freed += _folder_bytes(path)
            shutil.rmtree(path, ignore_errors=True)
    return sorted(row["epoch"] for row in rows), freed


def _drop_older_train_states(db: Any, run_id: int, folder: Any, newest_epoch: int) -> None:
    """Only the newest epoch keeps its optimiser state (twice the trained tensors' size with
    AdamW): resume starts from it, evaluation never reads it. Folders outside the run's own
    (a parent's, inherited by a resume) are left alone."""
    from pathlib import Path

    from vdi_cli.checkpoints import drop_train_state
    from vdi_cli.store.checkpoints import checkpoints_before

    root = Path(folder).resolve()
    for row in checkpoints_before(db, run_id, newest_epoch):
        if Path(row["path"]).resolve().parent == root:
            drop_train_state(row["path"])


def prune_runs(db: Any, run_ids: list[int], force: bool = False) -> list[dict[str, Any]]:
    """`vdi runs prune`: keep_checkpoints=best-last applied afterwards to training runs. Every
    run is checked before any is touched, so a wrong id deletes nothing."""
    from vdi_cli.pipeline.train import run_folder
    from vdi_cli.store import get_run

    runs = [get_run(db, run_id) for run_id in run_ids]
    for run in runs:
        if run["command"] != "train":
            raise VdiError(f"run {run['id']} was made by `vdi {run['command']}`: only training "
                           "runs have checkpoints",
                           hint="`vdi runs list --command train` shows them")
        if run["status"] == "running" and not run["process_gone"] and not force:
            raise VdiError(f"run {run['id']} is still running (or was killed on another "
                           "machine, or before vdi recorded its process)",
                           hint="wait for it to finish; if its process is gone, add --force")
    from vdi_cli.checkpoints import remove_stale_temporaries

    out = []
    for run in runs:
        epochs = [c["epoch"] for c in run["checkpoints"]]
        removed, freed = (prune_checkpoints(db, run["id"], run_folder(db, run["id"]), max(epochs))
                          if epochs else ([], 0))
        temporaries, tmp_bytes = remove_stale_temporaries(run_folder(db, run["id"]))
        out.append({"run_id": run["id"], "removed_epochs": removed,
                    "kept_epochs": sorted(set(epochs) - set(removed)),
                    "removed_temporaries": temporaries, "freed_bytes": freed + tmp_bytes})
    return out


def run_training(config: TrainConfig, db: Any, run: Any, *, resume: int | None = None,
                 quiet: bool = False, show_progress: bool = True) -> dict[str, Any]:
    import torch

    from vdi_cli.backbones import load_backbone
    from vdi_cli.checkpoints import (
        load_tensors,
        load_train_state,
        remove_stale_temporaries,
        save_checkpoint,
    )
    from vdi_cli.datasets import load_dataset
    from vdi_cli.distributed import current
    from vdi_cli.pipeline.evaluate import record_metrics
    from vdi_cli.pipeline.feature_source import FeatureSource
    from vdi_cli.pipeline.parse import parse_texts
    from vdi_cli.pipeline.train_data import collate, epoch_batches, group_by_video
    from vdi_cli.pipeline.train_ddp import attach, evaluate_sharded
    from vdi_cli.pipeline.train_resume import check_resume, inherit_checkpoints
    from vdi_cli.plugins import emit
    from vdi_cli.progress import progress_bar
    from vdi_cli.store import get_run
    from vdi_cli.store.checkpoints import find_best_checkpoint, record_checkpoint
    from vdi_cli.store.predictions import insert_metrics
    from vdi_cli.types import RunEvent

    config = config.resolved()
    session = current()  # under torchrun: rank 0 alone writes the store, logs and bars
    main = session.is_main
    quiet = quiet or not main
    show_progress = show_progress and main
    # a resume is checked against the stored options before any data or model is loaded
    resume_row = check_resume(db, resume, config) if resume is not None else None
    train_report = load_dataset(config.dataset, config.annotations)
    val_report = load_dataset(config.dataset, config.val) if config.val else None
    from vdi_cli.environment import ensure_writable_dir

    if main:
        # before the model loads
        ensure_writable_dir(run_folder(db, run.id).parent, "runs folder")
    backbone = load_backbone(config.backbone, config.weights,
                             device=session.device if session.active else config.device,
                             options=config.backbone_options)
    sampling = config.sampling()
    grid = backbone.patch_grid
    trainer = Trainer(config, backbone, patch_count=int(grid[0] * grid[1]))
    if session.active:
        attach(trainer, session)
    source = FeatureSource(db, backbone, sampling, patches=trainer.needs_patches)
    video_ids = [a.video_id for a in train_report.annotations]
    if val_report is not None:
        video_ids += [a.video_id for a in val_report.annotations]
    say(f"features: {len(set(video_ids))} videos, {backbone.id}, sampling {sampling}", quiet)
    if main:
        source.ensure(video_ids, config.video_dir, config.feature_batch_size, show_progress)
    source.sha, source.failed = session.broadcast((source.sha, source.failed))
    if source.failed:
        say(f"Warning: {len(source.failed)} videos could not be read; their queries are left "
            "out (see the run summary)", quiet)
    train_anns = _annotations(train_report, source.failed)
    if not train_anns:
        raise VdiError("no training query has a readable video", hint=f"check {param('video_dir')}")
    parsed = None
    if trainer.needs_parsed:
        texts = sorted({a.query for a in train_anns})
        if main:
            parse_report = parse_texts(texts, config.parser, config.parser_options, db=db,
                                       context_length=text_context(trainer, backbone))
            parsed = {q.text: q for q in parse_report.queries}
            _warn_long(parse_report.long, text_context(trainer, backbone), quiet)
        parsed = session.broadcast(parsed)
    samples = group_by_video(train_anns, parsed)
    val_samples = group_by_video(_annotations(val_report, source.failed)) if val_report else []
    if resume_row is not None:
        trainer.load_tensors(load_tensors(resume_row["path"], sha256=resume_row["sha256"]))
        trainer.load_train_state(load_train_state(resume_row["path"]))
        if main:
            inherit_checkpoints(db, int(resume), run.id)  # type: ignore[arg-type]
        parent = get_run(db, int(resume))  # type: ignore[arg-type]
        if main and (parent["status"] != "running" or parent["process_gone"]):  # not writing
            names, _ = remove_stale_temporaries(run_folder(db, int(resume)))  # type: ignore[arg-type]
            if names:
                say(f"removed {len(names)} unfinished checkpoint folder(s) of run {resume} "
                    f"(its process was killed while writing): {', '.join(names)}", quiet)
        say(f"resuming run {resume} after epoch {trainer.epoch}", quiet)
    folder = run_folder(db, run.id)
    epochs = int(config.epochs or 1)
    if trainer.objectives and not any(trainer.objectives_active(e) for e in range(1, epochs + 1)):
        say(f"Warning: the VDI terms ({', '.join(trainer.objectives)}) start once the text "
            f"tower trains, after epoch {config.freeze_text_epochs} (objectives_frozen=skip), "
            f"and this run ends at epoch {epochs}: it trains none of them (-o "
            "freeze_text_epochs=0 starts them at once)", quiet)
    history = []
    for epoch in range(trainer.epoch + 1, epochs + 1):
        batches = epoch_batches(len(samples), config.batch_size, config.seed, epoch)
        sums: dict[str, float] = defaultdict(float)
        bar = progress_bar(total=len(batches), desc=f"epoch {epoch}/{epochs}", unit="batch",
                           enabled=not quiet)  # quiet: the caller's, or not rank 0
        for indices in batches:
            batch = collate([samples[i] for i in indices], source, trainer.needs_patches)
            terms = trainer.step(batch, epoch)
            for k, v in terms.items():
                sums[k] += v
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.3f}")
        bar.close()
        trainer.scheduler.step()
        trainer.epoch = epoch
        losses = {k: v / len(batches) for k, v in sums.items()}
        val: dict[str, float] = {}
        if val_samples:
            metrics, _ = evaluate_sharded(trainer.model, val_samples, source, session,
                                          batch_size=config.eval_batch_size)
            val = metrics.percent()
        if val and config.select_metric not in val:
            raise VdiError(f"unknown validation metric '{config.select_metric}'",
                           hint=f"one of: {', '.join(val)}")
        is_best = trainer.observe(val.get(config.select_metric) if val else None)
        if not main:  # the same losses, metrics and decisions as rank 0, which records them
            if trainer.diagnostics is not None:  # figured on every rank alike (their gathers
                trainer.diagnostics.finish(epoch)  # are collectives); rank 0 records them
            history.append({"epoch": epoch, "losses": losses, "val": val})
            if trainer.should_stop():
                break
            continue
        insert_metrics(db, run.id, "train", {f"loss/{k}": v for k, v in losses.items()}, epoch)
        diagnostics = finish_epoch(trainer, db, run, epoch, quiet)
        if val_samples:
            record_metrics(db, run.id, metrics, "val", epoch)
        path, sha = save_checkpoint(folder / f"epoch-{epoch:03d}",
                                    checkpoint_config(trainer, sampling, epoch, val,
                                                      [s.duration for s in samples]),
                                    trainer.tensors(), trainer.train_state())
        record_checkpoint(db, run.id, epoch, str(path), sha,
                          config.select_metric if val else None, val.get(config.select_metric),
                          bool(is_best))
        _drop_older_train_states(db, run.id, folder, epoch)
        if config.keep_checkpoints == "best-last":
            prune_checkpoints(db, run.id, folder, epoch)
        emit(RunEvent("epoch_finished", run.id, "train",
                      {"epoch": epoch, "losses": losses, "val": val,
                       "diagnostics": diagnostics}))
        emit(RunEvent("checkpoint_saved", run.id, "train",
                      {"epoch": epoch, "path": str(path), "best": is_best}))
        say(log_line(epoch, epochs, losses, val), quiet)
        history.append({"epoch": epoch, "losses": losses, "val": val,
                        "diagnostics": diagnostics})
        if trainer.should_stop():
            say(f"early stop: no {config.select_metric} gain for {trainer.stale} epochs", quiet)
            break
    best = find_best_checkpoint(db, run.id)
    summary = {
        "epochs": [h["epoch"] for h in history],
        "best_epoch": best["epoch"] if best else trainer.best_epoch,
        "best_value": trainer.best, "best_checkpoint": best["path"] if best else None,
        "train_queries": len(train_anns), "train_videos": len(samples),
        "val_queries": sum(len(s.queries) for s in val_samples),
        "failed_videos": source.failed, "resumed_from": resume,
        "diagnostic_warnings": run.summary.get("diagnostic_warnings", []),
        "torch_threads": torch.get_num_threads(), "ranks": session.world,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "dataset": train_report.summary(),
    }
    run.summary.update(summary)
    return {**summary, "history": history}


def text_context(trainer: Any, backbone: Any) -> int | None:
    """The text context training tokenizes to: `--context-length` if given, else the
    backbone's own (`LoadedBackbone.context_length`; None when it states none: CLIP's 77)."""
    return trainer.config.context_length or getattr(backbone, "context_length", 0) or None


def _warn_long(long: list[Any], context: int | None, quiet: bool) -> None:
    """One warning line when training queries (Q, Qs or Qd) are over the text context."""
    if long:
        from vdi_cli.clip_context import CONTEXT_LENGTH, content_tokens

        say(f"Warning: {len(long)} training query texts (Q / Qs / Qd) are longer than the "
            f"text context ({content_tokens(context)} tokens of {context or CONTEXT_LENGTH}); "
            "the text "
            "encoder reads only their first tokens", quiet)

