"""The Python API: each stage of vdi as one function call, without the CLI and without a run row.

    import vdi_cli as vdi
    result = vdi.retrieve("talk.mp4", ["person opens the door"], checkpoint="runs/.../epoch-006")
    result.videos[0].moments[0]             # [Moment(start, end, score), ...], best first

These are thin functions over the pipeline modules the commands call (`vdi_cli.pipeline.*`): the
same code path, the same errors (`VdiError`, with a `hint`), worded with these functions'
parameter names (`top_k`, `checkpoint`) where the CLI says its flags.

The store is optional. `db` is an opened store (`open_store(path)`), a database path, or None:
then the call gets a fresh in-memory SQLite store of its own (`vdi_cli.store.db.open_memory_db`).
In memory rather than a temporary file because it is the same SQLite and schema, so every stage
runs its one code path, and there is nothing to lock, to clean up after a crash or to leave
behind. What it holds (parse cache, file hashes, feature rows, the training run's row and
metrics) is gone when the call returns; files are still written where they always are: features
under `VDI_HOME/features` (`extract(root=)` chooses another folder), a training run's checkpoints
under `VDI_HOME/stores/<id>/runs/` (the summary's `best_checkpoint`, which `retrieve(checkpoint=)`
loads). Pass a store to keep those rows, so a repeat call reuses the cached features and parses.
An index lives in its store: `build_index` and `search` take one (`db` is required there).

Nothing here prints: no progress bar unless `show_progress=True`, training's lines only with
`quiet=False`; model notices go to `notify` when given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vdi_cli.errors import ConfigError, VdiError, param

if TYPE_CHECKING:
    from vdi_cli.pipeline.evaluate import EvalReport
    from vdi_cli.pipeline.extract import ExtractReport
    from vdi_cli.pipeline.index import IndexReport
    from vdi_cli.pipeline.parse import ParseReport
    from vdi_cli.pipeline.retrieve import RetrieveResult, VideoInput
    from vdi_cli.pipeline.train_config import TrainConfig

Store = Any  # an opened store: sqlite_utils.Database (`open_store`)
Videos = str | Path | Sequence[str | Path]


def open_store(path: str | Path | None = None, *, readonly: bool = False) -> Store:
    """Open (creating and migrating if needed) a run database; `path` None: `VDI_DB`, else the
    default one in the app folder, as the CLI's `--db`."""
    from vdi_cli.store import open_db

    return open_db(path, readonly=readonly)


def _store(db: Store | str | Path | None) -> Store:
    """The store a call uses: the one given, the database at a path, or a fresh in-memory one."""
    if db is None:
        from vdi_cli.store.db import open_memory_db

        return open_memory_db()
    if isinstance(db, str | Path):
        return open_store(db)
    return db


def video_inputs(videos: Videos) -> list[VideoInput]:
    """A file, a folder (its videos), a glob ('clips/*.mp4') or a list of files, as the named
    inputs retrieval and indexing take (names: file stems, made unique)."""
    from vdi_cli.pipeline.retrieve import VideoInput, expand_inputs

    if isinstance(videos, str | Path):
        return expand_inputs(videos)
    items = list(videos)
    if not items:
        raise VdiError(f"no video given in {param('videos')}",
                       hint="give a video file, a folder, a glob or a list of files")
    if all(isinstance(v, VideoInput) for v in items):
        return items  # type: ignore[return-value]
    return expand_inputs(items[0], items[1:])


def parse(texts: Sequence[str], *, parser: str | None = None,
          options: Mapping[str, Any] | None = None, db: Store | str | Path | None = None,
          use_cache: bool = True, check_length: bool = True) -> ParseReport:
    """Parse sentences into their structure (`report.queries`: one ParsedQuery each; duplicates
    parsed once). `parser` None: the default (spaCy)."""
    from vdi_cli.pipeline.parse import parse_texts

    if isinstance(texts, str):
        texts = [texts]
    return parse_texts(list(texts), parser, dict(options or {}),
                       db=_store(db), use_cache=use_cache, check_length=check_length)


def extract(videos: Sequence[str | Path] | str | Path, *, backbone: str | None = None,
            weights: str | None = None, fps: float | None = None, num_frames: int | None = None,
            options: Mapping[str, Any] | None = None, batch_size: int = 32,
            device: str = "cpu", precision: str = "auto", dtype: str = "float16",
            force: bool = False, workers: int = 0, root: str | Path | None = None,
            db: Store | str | Path | None = None, show_progress: bool = False) -> ExtractReport:
    """Frame features of video files with a backbone (cached by content hash in the store and
    the feature folder); a bad video is reported in `report.videos`, not raised."""
    from vdi_cli.pipeline.extract import extract_features
    from vdi_cli.video import Sampling

    files = [videos] if isinstance(videos, str | Path) else list(videos)
    return extract_features(_store(db), files, backbone=backbone,
                            weights=weights, sampling=Sampling(fps=fps, num_frames=num_frames),
                            batch_size=batch_size, device=device, precision=precision,
                            dtype=dtype, force=force, root=root,
                            options=dict(options) if options else None,
                            show_progress=show_progress, workers=workers)


def train_config(config: TrainConfig | Mapping[str, Any] | None = None, *,
                 recipe: str | None = None, **options: Any) -> TrainConfig:
    """The training options `train` uses: a recipe's values (a registered name or a .toml
    file, `vdi recipes`), then `config`, then `options`, over TrainConfig's defaults. Unknown
    or invalid options are a ConfigError (a typo is not silently dropped)."""
    from pydantic import BaseModel, ValidationError

    from vdi_cli.config import check_option_keys
    from vdi_cli.pipeline.train_config import TrainConfig
    from vdi_cli.recipes import apply_recipe, find_recipe

    given = config.model_dump(exclude_unset=True) if isinstance(config, BaseModel) else \
        dict(config or {})
    given.update(options)
    check_option_keys(TrainConfig, given, hint="the fields of vdi_cli.TrainConfig are the "
                      "training options", noun="training option")
    values = apply_recipe(find_recipe(recipe).values, given) if recipe else given
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"invalid training options: {problems}",
                          hint="the fields of vdi_cli.TrainConfig are the training options"
                          ) from exc


def train(config: TrainConfig | Mapping[str, Any] | None = None, *, recipe: str | None = None,
          db: Store | str | Path | None = None, resume: int | None = None, quiet: bool = True,
          show_progress: bool = False, **options: Any) -> dict[str, Any]:
    """Train a grounding head (and adapt the text tower with VDI's objectives); returns the
    run summary: `run_id`, `best_checkpoint` (a folder `retrieve` / `evaluate` load),
    `best_epoch`, `history` (per epoch: losses, validation metrics). The run is recorded in
    the store like `vdi train`'s (with db None, in the call's in-memory store)."""
    from vdi_cli.checks import check_train_config
    from vdi_cli.pipeline.train_run import run_training
    from vdi_cli.recipes import find_recipe
    from vdi_cli.runs import run_context

    cfg = train_config(config, recipe=recipe, **options).resolved()  # presets filled, as the CLI
    check_train_config(cfg)  # ids, component options, device: before any model loads
    store = _store(db)
    stored = {**cfg.model_dump(), **({"recipe": find_recipe(recipe).record()} if recipe else {})}
    with run_context(store, "train", stored, None, backbone=cfg.backbone, head=cfg.head,
                     parser=cfg.parser) as run:
        summary = run_training(cfg, store, run, resume=resume, quiet=quiet,
                               show_progress=show_progress)
    return {**summary, "run_id": run.id}


def evaluate(annotations: str | Path, *, dataset: str, predictions: str | Path | None = None,
             checkpoint: str | Path | None = None, video_dir: str | Path | None = None,
             split: str | None = None, dataset_options: Mapping[str, Any] | None = None,
             recalls: Sequence[int] | None = None, ious: Sequence[float] | None = None,
             suites: Sequence[str] = ("recall",), device: str = "cpu", batch_size: int = 32,
             db: Store | str | Path | None = None, show_progress: bool = False) -> EvalReport:
    """Recall@k at IoU thresholds (and mIoU) against an annotation file of format `dataset`:
    of a predictions JSONL file (`predictions`), or of a checkpoint run on the videos in
    `video_dir` (`checkpoint`). `report.metrics.percent()`: {"R@1,IoU=0.5": ..., ...}."""
    from vdi_cli.metrics import DEFAULT_IOUS, DEFAULT_RECALLS

    if (predictions is None) == (checkpoint is None):
        raise VdiError(f"give exactly one of {param('predictions')} and {param('checkpoint')}",
                       hint="a predictions JSONL file to score, or a checkpoint folder to run")
    scoring = {"recalls": tuple(recalls or DEFAULT_RECALLS), "ious": tuple(ious or DEFAULT_IOUS),
               "dataset_options": dict(dataset_options or {}), "split": split,
               "suites": tuple(suites)}
    if predictions is not None:
        from vdi_cli.pipeline.evaluate import evaluate_predictions

        return evaluate_predictions(predictions, annotations, dataset, **scoring)
    if video_dir is None:
        raise VdiError(f"{param('checkpoint')} needs {param('video_dir')}",
                       hint="the folder with the annotation file's videos (<video id>.mp4)")
    from vdi_cli.pipeline.evaluate_model import evaluate_checkpoint

    results = evaluate_checkpoint(_store(db), str(checkpoint), annotations, dataset, video_dir,
                                  device=device, batch_size=batch_size,
                                  show_progress=show_progress, **scoring)
    report = results[0].report
    if report is None:
        raise VdiError(f"no query of '{annotations}' has an answer to score against",
                       hint="evaluate a split with annotated moments")
    return report


def retrieve(videos: Videos, queries: Sequence[str] | str, *,
             checkpoint: str | Path | None = None, run: int | None = None,
             training_free: bool = False, backbone: str | None = None,
             weights: str | None = None, fps: float | None = None, window: float | None = None,
             overlap: float = 0.5, head_options: Mapping[str, Any] | None = None,
             top_k: int | None = 5, device: str = "cpu", batch_size: int = 32,
             keep_maps: bool = False, db: Store | str | Path | None = None,
             notify: Callable[[str], None] | None = None,
             show_progress: bool = False) -> RetrieveResult:
    """Find when each sentence happens in each video (any length: windowed, merged with NMS)
    and across the videos. The model: `checkpoint`, a training `run` of the store, or
    `training_free` (CLIP text-frame similarity on `backbone`); none of them: the store's
    latest training run, else training-free. `result.videos[i].moments[q]`: the q-th query's
    Moments in video i, best first; `result.corpus[q]`: (video name, Moment) across videos."""
    from vdi_cli.pipeline.retrieve import Retriever

    store = _store(db)
    inputs = video_inputs(videos)
    retriever = Retriever(store, checkpoint=None if checkpoint is None else str(checkpoint),
                          run=run, training_free=training_free, backbone=backbone,
                          weights=weights, fps=fps, window=window, overlap=overlap,
                          head_options=dict(head_options) if head_options else None,
                          device=device, notify=notify, videos=inputs)
    return retriever.search(inputs, [queries] if isinstance(queries, str) else list(queries),
                            top_k=top_k, keep_maps=keep_maps, show_progress=show_progress,
                            batch_size=batch_size)


def build_index(name: str, videos: Videos, *, db: Store | str | Path,
                kind: str = "flat", options: Mapping[str, Any] | None = None,
                force: bool = False, checkpoint: str | Path | None = None,
                run: int | None = None, training_free: bool = False,
                backbone: str | None = None, weights: str | None = None,
                fps: float | None = None, window: float | None = None, overlap: float = 0.5,
                head_options: Mapping[str, Any] | None = None, device: str = "cpu",
                batch_size: int = 32, notify: Callable[[str], None] | None = None,
                show_progress: bool = False) -> IndexReport:
    """Index a video library for `search`: every video's moment proposals encoded once, in a
    vector index of `kind` (flat, ivfpq, hnsw) stored with the store `db`; the model is chosen
    as in `retrieve`. `force` replaces an index of the same name."""
    from vdi_cli.pipeline.index import build_index as build

    return build(_store(db), name, video_inputs(videos), kind=kind,
                 options=dict(options) if options else None, force=force,
                 checkpoint=None if checkpoint is None else str(checkpoint), run=run,
                 training_free=training_free, backbone=backbone, weights=weights, fps=fps,
                 window=window, overlap=overlap,
                 head_options=dict(head_options) if head_options else None, device=device,
                 show_progress=show_progress, batch_size=batch_size, notify=notify)


def search(index: str, queries: Sequence[str] | str, *, db: Store | str | Path,
           top_k: int = 5, candidates: int | None = None, keep_maps: bool = False,
           device: str = "cpu", notify: Callable[[str], None] | None = None) -> RetrieveResult:
    """The best moments of each sentence across the index `index` of the store `db` (built
    by `build_index`), in the shape `retrieve` returns (`result.corpus[q]`: (video, Moment))."""
    from vdi_cli.pipeline.search import LibrarySearcher

    searcher = LibrarySearcher(_store(db), index, device=device, notify=notify)
    return searcher.search([queries] if isinstance(queries, str) else list(queries),
                           top_k=top_k, keep_maps=keep_maps, candidates=candidates)
