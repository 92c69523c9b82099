"""Mask generation and video tracking over datasets of any size, on Ray Data.

Install with ``pip install "sam2-pipelines[ray]"``. Two ways in:

* **One call** reads the inputs, runs an actor pool and writes durable, resumable part files::

      import ray
      from sam2_pipelines.distributed.ray import generate_masks, track_videos

      ray.init()                                    # or ray.init(address="auto") to join a cluster
      summary = generate_masks("photos/", "masks-out/", model="facebook/sam2.1-hiera-tiny", workers=2, points_per_side=32)
      summary = track_videos(["a.mp4", "b.mp4"], "tracks-out/", model="facebook/sam2.1-hiera-tiny",
                             prompts=[{"frame": 0, "obj_id": 1, "points": [[210, 350]], "labels": [1]}])

  Running the same call again skips every id already written and finishes the rest.

* **Callable classes** for your own Ray Data pipelines (the model is loaded once per actor)::

      ds.map_batches(MaskGenerationPredictor, fn_constructor_kwargs={"model": "...", "points_per_side": 16},
                     compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, batch_size=8).write_parquet("out/")

Output rows (one per input row; columns in :data:`~sam2_pipelines.distributed.durable.COLUMNS`): masks
``id, height, width, num_masks, records, error`` (``records``: the COCO RLE records as JSON text); tracks
``id, num_frames, object_ids, frames, error`` (``frames``: per frame ``frame_idx``, ``object_ids``, COCO RLE
``masks``, ``scores``, as JSON text). A row that could not be processed has its ``error`` and nulls elsewhere.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

from sam2_pipelines.distributed.durable import PartStore, RunSummary, rows_table
from sam2_pipelines.distributed.rows import check_mask_options, mask_row, track_row, video_row_options

#: Rows per batch (and so per part file) unless told otherwise: images, videos.
DEFAULT_BATCH_SIZE = {"masks": 8, "tracks": 1}
#: How often a dead worker is restarted, and its batch retried, before the run fails.
DEFAULT_MAX_RETRIES = 3
#: Image file suffixes read from a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Video file suffixes read from a folder (sub-folders are read as folders of frames).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError('sam2_pipelines.distributed.ray needs Ray Data: pip install "sam2-pipelines[ray]"') from None
    return ray


def _load_pipeline(task: str, model, device, dtype: str, threads):
    import torch

    from sam2_pipelines.launch import load_pipeline

    if threads is not None:
        torch.set_num_threads(int(threads))
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be float32, float16 or bfloat16; got {dtype!r}")
    return load_pipeline(task, model, device, dtype, progress=False)


def _cells(batch, name: str) -> list:
    """One column of a batch (dict of numpy arrays, pandas frame or Arrow table) as Python values."""
    if hasattr(batch, "column") and hasattr(batch, "schema"):  # pyarrow.Table
        return batch.column(name).to_pylist()
    values = batch[name]
    return values.tolist() if hasattr(values, "tolist") and not isinstance(values, np.ndarray) else list(values)


def _batch_rows(batch) -> list[dict]:
    names = list(batch.column_names) if hasattr(batch, "column_names") else list(batch.keys())
    columns = {name: _cells(batch, name) for name in names}
    length = len(next(iter(columns.values()))) if columns else 0
    return [{name: columns[name][i] for name in names} for i in range(length)]


class MaskGenerationPredictor:
    """Automatic masks (COCO RLE records) for a batch of image rows; a callable class for ``map_batches``.

    Args:
        model: Hub id, ``save_pretrained`` folder or Meta ``.pt`` checkpoint (the same on every node).
        device, dtype: where and in which dtype the model runs (default: ``cuda`` when the actor has a GPU).
        threads: torch threads of the actor (default: torch's; set it to the actor's CPUs).
        image_column, id_column: where each row keeps its image (:data:`~.rows.IMAGE_VALUES`) and its id.
        **options: mask-generation options (``points_per_side``, ``pred_iou_thresh``, ... or SAM 3's ``text``),
            checked when the actor starts.

    Returns per batch an Arrow table with one row per input row (see the module docstring).
    """

    def __init__(self, model, *, device=None, dtype: str = "float32", threads=None, image_column: str = "image", id_column: str = "id", **options):
        self.options = check_mask_options(options)
        self.image_column, self.id_column = image_column, id_column
        self.generator = _load_pipeline("mask-generation", model, device, dtype, threads)

    def __call__(self, batch):
        rows = [mask_row(self.generator, str(row[self.id_column]), row.get(self.image_column), self.options) for row in _batch_rows(batch)]
        return rows_table(rows, "masks")


class VideoTrackingPredictor:
    """Per-frame masks of the prompted objects for a batch of video rows; a callable class for ``map_batches``.

    Each row holds ``id``, ``video`` (a path to a video file or a folder of frames), ``prompts`` (a JSON string
    or list of prompt dicts; optional when ``prompts=`` is given) and optionally per-video options
    (``direction``, ``start_frame``, ``max_frames``, ``frame_resize``, ``mask_threshold``).

    Args:
        model, device, dtype, threads: as :class:`MaskGenerationPredictor`.
        prompts: prompts for the rows that have none.
        frame_batch_size: frames the image encoder encodes in one pass (results do not depend on it).
        **options: tracker call options for every video (``direction``, ``max_frames``, ...).
    """

    def __init__(self, model, *, device=None, dtype: str = "float32", threads=None, video_column: str = "video", id_column: str = "id", prompts=None, frame_batch_size: int = 1, **options):
        from sam2_pipelines.video.pipeline import check_batch_size, parse_prompts, row_options

        unknown = sorted(set(options) - set(row_options()))
        if unknown:
            raise ValueError(f"unknown tracking option(s) {', '.join(unknown)}; accepted: {', '.join(row_options())}")
        self.prompts = None if prompts is None else parse_prompts(prompts)
        self.options = {**options, "batch_size": check_batch_size(frame_batch_size)}
        self.video_column, self.id_column = video_column, id_column
        self.tracker = _load_pipeline("video-object-tracking", model, device, dtype, threads)

    def __call__(self, batch):
        rows = []
        for row in _batch_rows(batch):
            prompts = row.get("prompts")
            prompts = self.prompts if prompts is None else prompts
            rows.append(track_row(self.tracker, str(row[self.id_column]), row.get(self.video_column), prompts, video_row_options(row), self.options))
        return rows_table(rows, "tracks")


class PartWriter:
    """Wraps a predictor: writes each batch's rows as one durable part file and returns only ``id`` / ``failed``.

    So results stream from the actors to disk, never through the driver.
    """

    def __init__(self, predictor: type, predictor_kwargs: dict, output: str, kind: str, output_format: str):
        self.store = PartStore(output, kind, output_format)
        self.predictor = predictor(**predictor_kwargs)

    def __call__(self, batch):
        rows = self.predictor(batch).to_pylist()
        self.store.write(rows)
        return {"id": np.array([row["id"] for row in rows], dtype=object), "failed": np.array([row["error"] is not None for row in rows], dtype=bool)}


# ---------------------------------------------------------------------------------------------------- inputs


def _listed_files(folder: Path, suffixes) -> list[dict]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
    return [{"id": p.relative_to(folder).as_posix(), "path": str(p.resolve())} for p in files]


def _source(source, kind: str, input_column: str, id_column: str):
    """``(items, dataset)``: rows in memory (a list of dicts) or a Ray dataset, each with ``id`` and the input column."""
    ray = _ray()
    hf_datasets = sys.modules.get("datasets")
    if isinstance(source, ray.data.Dataset):
        return None, source
    if hf_datasets is not None and isinstance(source, hf_datasets.Dataset):
        if input_column not in source.column_names:
            raise ValueError(f"the dataset has no {input_column!r} column (columns: {source.column_names})")
        if id_column not in source.column_names:  # the row number is the id
            source = source.add_column(id_column, [str(i) for i in range(len(source))])
        return None, ray.data.from_huggingface(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
            return None, ray.data.read_parquet(str(path))
        if path.suffix in (".jsonl", ".json") and path.is_file():
            return None, ray.data.read_json(str(path))
        if path.suffix == ".txt" and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            return [{"id": line, input_column: line} for line in lines], None
        if path.is_dir() and kind == "masks":
            return [{"id": row["id"], input_column: row["path"]} for row in _listed_files(path, IMAGE_SUFFIXES)], None
        if path.is_dir():
            return [{"id": p.name, input_column: str(p)} for p in sorted(path.iterdir()) if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES)], None
        if not path.exists():
            raise ValueError(f"source {str(path)!r} does not exist")
        return [{"id": str(path), input_column: str(path)}], None
    if isinstance(source, (list, tuple)):
        items = []
        for i, item in enumerate(source):
            if isinstance(item, dict):
                if input_column not in item:
                    raise ValueError(f"row {i} has no {input_column!r} (keys: {sorted(item)})")
                items.append({**item, "id": str(item.get(id_column, i))} if id_column == "id" else {**item, id_column: str(item.get(id_column, i))})
            elif isinstance(item, (str, os.PathLike)):
                items.append({"id": os.fspath(item), input_column: os.fspath(item)})
            else:
                raise ValueError(f"item {i} is a {type(item).__name__}; a list source holds paths or row dicts")
        return items, None
    raise ValueError(
        "source must be a folder, a .parquet / .jsonl / .txt (one path per line) file, a list of paths or row dicts, "
        f"a datasets.Dataset or a ray.data.Dataset; got {type(source).__name__}"
    )


def _unique(ids, what: str) -> None:
    seen: set = set()
    for row_id in ids:
        if row_id in seen:
            raise ValueError(f"{what} holds the id {row_id!r} more than once; every row needs its own id (one output row each)")
        seen.add(row_id)


def _drop_done(batch, done, id_column: str):
    import pyarrow.compute as pc

    ids = batch.column(id_column).cast("string")
    return batch.filter(pc.invert(pc.is_in(ids, value_set=done)))


def _run(kind: str, source, output, predictor: type, predictor_kwargs: dict, *, input_column: str, id_column: str,
         workers: int, cpus_per_worker: float, gpus_per_worker: float, batch_size, output_format: str,
         max_retries: int, progress: bool) -> RunSummary:
    from sam2_pipelines.core.validation import check_int

    ray = _ray()
    check_int(workers, "workers", minimum=1)
    batch_size = check_int(DEFAULT_BATCH_SIZE[kind] if batch_size is None else batch_size, "batch_size", minimum=1)
    check_int(max_retries, "max_retries", minimum=0)
    for name, value in (("cpus_per_worker", cpus_per_worker), ("gpus_per_worker", gpus_per_worker)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    store = PartStore(output, kind, output_format)
    store.check_directory()
    if not ray.is_initialized():
        ray.init()
    items, dataset = _source(source, kind, input_column, id_column)
    if dataset is not None:
        names = dataset.schema().names if dataset.schema() else []
        missing = [c for c in (id_column, input_column) if c not in names]
        if missing:
            raise ValueError(f"the input has no {', '.join(repr(c) for c in missing)} column (columns: {dataset.schema().names})")
    # Check the predictor's options now (a ValueError before any cluster work), without loading the model.
    if kind == "masks":
        check_mask_options({k: v for k, v in predictor_kwargs.items() if k not in ("model", "device", "dtype", "threads", "image_column", "id_column")})
    elif predictor_kwargs.get("prompts") is None:
        names = dataset.schema().names if items is None else sorted({key for row in items for key in row})
        if "prompts" not in names:
            raise ValueError('no prompts: the rows have no "prompts" and no prompts=[...] was given for every video')
    done = store.done_ids()
    store.clean_temporary()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    if items is not None:
        _unique((row["id"] for row in items), "the input")
        todo = [row for row in items if row["id"] not in done]
        skipped = len(items) - len(todo)
        if not todo:
            return RunSummary(str(output), skipped=skipped)
        dataset = ray.data.from_items(todo)
    else:
        import pyarrow as pa

        ids = [str(i) for batch in dataset.select_columns([id_column]).iter_batches(batch_format="pyarrow") for i in batch.column(id_column).to_pylist()]
        _unique(ids, "the input")
        skipped = sum(1 for i in ids if i in done)
        if done:
            dataset = dataset.map_batches(_drop_done, batch_format="pyarrow", fn_kwargs={"done": pa.array(sorted(done), pa.string()), "id_column": id_column})
    predictor_kwargs = {**predictor_kwargs, "device": predictor_kwargs.get("device") or ("cuda" if gpus_per_worker else "cpu")}
    predictor_kwargs.setdefault("threads", max(1, int(cpus_per_worker)))
    with warnings.catch_warnings():  # Ray 2.60 takes the restart limits only through the (deprecated) remote args
        warnings.simplefilter("ignore")
        written = _write_parts(dataset, predictor, predictor_kwargs, str(output), kind, output_format, workers, cpus_per_worker, gpus_per_worker, batch_size, max_retries)
    summary = RunSummary(str(output), skipped=skipped)
    for batch in written.iter_batches(batch_size=None, batch_format="numpy"):
        summary.done += len(batch["id"])
        summary.failed += int(np.sum(batch["failed"]))
    return summary


def _write_parts(dataset, predictor, predictor_kwargs, output, kind, output_format, workers, cpus_per_worker, gpus_per_worker, batch_size, max_retries):
    ray = _ray()
    return dataset.map_batches(
        PartWriter,
        fn_constructor_kwargs={"predictor": predictor, "predictor_kwargs": predictor_kwargs, "output": output, "kind": kind, "output_format": output_format},
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        batch_size=batch_size,
        batch_format="pyarrow",
        max_restarts=max_retries,
        max_task_retries=max_retries,
    )


def generate_masks(source, output, model, *, workers: int = 1, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                   batch_size: int | None = None, output_format: str = "parquet", image_column: str = "image", id_column: str = "id",
                   device=None, dtype: str = "float32", max_retries: int = DEFAULT_MAX_RETRIES, progress: bool = True,
                   **options) -> RunSummary:
    """Automatic masks for every image of ``source``, written as part files under ``output``; resumable.

    Args:
        source: a folder of images (ids: paths relative to it), a ``.txt`` file of paths, a list of paths or of
            row dicts, a ``.parquet`` / ``.jsonl`` file of rows, a ``datasets.Dataset`` (ids: its ``id``
            column, else the row number) or a ``ray.data.Dataset``. Rows keep the image in ``image_column``
            (:data:`~.rows.IMAGE_VALUES`) and a unique id in ``id_column``.
        output: the output folder (created if missing). Rows already there are skipped.
        model: Hub id, ``save_pretrained`` folder or Meta ``.pt`` checkpoint, reachable from every node.
        workers: actors (each loads the model once); ``cpus_per_worker`` threads and ``gpus_per_worker`` GPUs each.
        batch_size: images per batch, and so per part file (default 8).
        output_format: ``"parquet"`` or ``"jsonl"``.
        max_retries: restarts of a dead worker (and retries of its batch) before the run fails.
        progress: Ray Data's progress bars.
        **options: mask-generation options (``points_per_side=32``, ``pred_iou_thresh``, ... or ``text=``).

    Returns:
        A :class:`~.durable.RunSummary` (rows written, failed, skipped). Ray is started locally when the caller
        has not called ``ray.init`` (use ``ray.init(address="auto")`` first to join a cluster).
    """
    kwargs = {"model": model, "device": device, "dtype": dtype, "image_column": image_column, "id_column": id_column, **options}
    return _run("masks", source, output, MaskGenerationPredictor, kwargs, input_column=image_column, id_column=id_column,
                workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, batch_size=batch_size,
                output_format=output_format, max_retries=max_retries, progress=progress)


def track_videos(source, output, model, *, prompts=None, workers: int = 1, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 batch_size: int | None = None, frame_batch_size: int = 1, output_format: str = "parquet", id_column: str = "id",
                 device=None, dtype: str = "float32", max_retries: int = DEFAULT_MAX_RETRIES, progress: bool = True,
                 **options) -> RunSummary:
    """Track the prompted objects of every video of ``source``; per-video rows written under ``output``; resumable.

    Args:
        source: a folder of videos (files, or folders of frames; ids: their names), a list of paths or of row
            dicts (``video``, ``prompts``, per-video options), a ``.txt`` / ``.parquet`` / ``.jsonl`` file, a
            ``datasets.Dataset`` or a ``ray.data.Dataset`` with a ``video`` column.
        prompts: prompts for rows without a ``prompts`` value (a list of prompt dicts or its JSON).
        batch_size: videos per batch and per part file (default 1); ``frame_batch_size``: frames per
            image-encoder pass inside a video.
        **options: tracker options for every video (``direction``, ``start_frame``, ``max_frames``, ...).
        Other arguments as :func:`generate_masks`.
    """
    from sam2_pipelines.video.pipeline import parse_prompts

    if prompts is not None:
        prompts = parse_prompts(prompts)
    kwargs = {"model": model, "device": device, "dtype": dtype, "id_column": id_column, "prompts": prompts, "frame_batch_size": frame_batch_size, **options}
    return _run("tracks", source, output, VideoTrackingPredictor, kwargs, input_column="video", id_column=id_column,
                workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, batch_size=batch_size,
                output_format=output_format, max_retries=max_retries, progress=progress)
