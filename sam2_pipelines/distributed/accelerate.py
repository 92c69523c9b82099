"""Run a pipeline over a ``datasets.Dataset`` split across processes: gather the results, or write them as it goes.

For datasets larger than memory use :func:`write_sharded`: each process writes its rows as durable part files
(resumable, nothing gathered). The functions below gather every result on every process instead.

Each process takes a contiguous shard of the rows with accelerate's
``PartialState().split_between_processes``, runs the pipeline over its shard (through
``transformers.pipelines.pt_utils.KeyDataset`` with ``batch_size``), and the per-row results are
gathered back in dataset order on every process. Launch the script with several processes, e.g.
``accelerate launch --num_processes 2 script.py`` or ``torchrun --nproc_per_node 2 script.py``;
with a single process everything runs locally.

Example::

    from accelerate import PartialState
    from transformers import pipeline
    from sam2_pipelines.sharding import run_pipeline_sharded

    state = PartialState()
    generator = pipeline("mask-generation", model="facebook/sam2.1-hiera-tiny", device=state.device)
    records = run_pipeline_sharded(generator, dataset, column="image", batch_size=4,
                                   points_per_side=16, output_mode="coco_rle")
    if state.is_main_process:
        ...  # len(records) == len(dataset), in dataset order
"""

from __future__ import annotations

from typing import Any, Callable


def _state(state=None):
    if state is not None:
        return state
    from accelerate import PartialState

    return PartialState()


def shard_indices(num_rows: int, state=None) -> list[int]:
    """The row indices this process handles: a contiguous slice from ``split_between_processes``."""
    if num_rows < 0:
        raise ValueError(f"num_rows must be >= 0, got {num_rows}")
    state = _state(state)
    with state.split_between_processes(list(range(num_rows))) as indices:
        return list(indices)


def shard_dataset(dataset, state=None):
    """This process's shard of a ``datasets.Dataset`` (contiguous rows, via ``split_between_processes``)."""
    return dataset.select(shard_indices(len(dataset), state))


def gather_results(local_results: list, state=None) -> list:
    """Concatenate every process's list of results, in process order, on every process.

    With shards from :func:`shard_dataset`, the concatenation is in dataset order. Results must be
    picklable (numpy arrays, dicts, RLE dicts...).
    """
    state = _state(state)
    local_results = list(local_results)
    if state.num_processes == 1:
        return local_results
    from accelerate.utils import gather_object

    return gather_object(local_results)


def map_sharded(dataset, function: Callable[[dict], Any], state=None) -> list:
    """Apply ``function`` to each row (a dict) of this process's shard and gather all results in order."""
    state = _state(state)
    shard = shard_dataset(dataset, state)
    return gather_results([function(row) for row in shard], state)


def run_pipeline_sharded(pipe, dataset, column: str, batch_size: int = 1, state=None, progress: bool = False, **call_kwargs) -> list:
    """Run ``pipe`` over ``dataset[column]`` split across processes; return every row's output, in order.

    Args:
        pipe: a ``transformers`` pipeline (e.g. ``mask-generation`` or ``video-object-tracking``).
        dataset: a ``datasets.Dataset``.
        column: the column holding the pipeline input (images, videos...).
        batch_size: passed to the pipeline, which iterates a ``KeyDataset`` of the shard.
        state: an ``accelerate.PartialState`` (created when omitted).
        progress: show a tqdm bar over this process's rows.
        **call_kwargs: the pipeline's call options (``points_per_side``, ``prompts``...).

    Returns:
        The list of outputs of all processes, ``len(dataset)`` long, in dataset order, on every process.
    """
    from tqdm.auto import tqdm
    from transformers.pipelines.pt_utils import KeyDataset

    if column not in dataset.column_names:
        raise ValueError(f"column {column!r} is not in the dataset; its columns are {dataset.column_names}")
    state = _state(state)
    shard = shard_dataset(dataset, state)
    outputs = pipe(KeyDataset(shard, column), batch_size=batch_size, **call_kwargs) if len(shard) else []
    local = list(tqdm(outputs, total=len(shard), disable=not progress, desc=f"process {state.process_index}"))
    return gather_results(local, state)


def write_sharded(pipe, dataset, output, column: str, *, id_column: str = "id", rows_per_file: int = 16, output_format: str = "parquet",
                  state=None, progress: bool = False, **call_kwargs):
    """Run ``pipe`` over ``dataset[column]`` split across processes, each writing its rows to disk as it goes.

    Nothing is gathered: every process writes part files of ``rows_per_file`` output rows under ``output`` (the
    rows and files of :mod:`sam2_pipelines.distributed.ray`: masks ``id, height, width, num_masks, records,
    error``; tracks ``id, num_frames, object_ids, frames, error``), each through a temporary name then renamed.
    Running the same script again skips every id already written. A row that cannot be processed becomes an
    error row; the run goes on.

    Args:
        pipe: a ``mask-generation`` or ``video-object-tracking`` pipeline.
        dataset: a ``datasets.Dataset``; ``column`` holds the images (or videos), ``id_column`` unique ids
            (default: the row number). Video rows may hold ``prompts`` and per-video options.
        output: the output folder, shared by every process (created if missing).
        **call_kwargs: the pipeline's options (``points_per_side``...; for videos ``prompts`` for rows without
            their own, ``direction``, ``batch_size``...).

    Returns:
        The :class:`~sam2_pipelines.distributed.durable.RunSummary` of all processes, on every process.
    """
    from tqdm.auto import tqdm

    from sam2_pipelines.distributed.durable import PartStore, RunSummary
    from sam2_pipelines.distributed.rows import check_mask_options, mask_row, track_row, video_row_options
    from sam2_pipelines.core.validation import check_int
    from sam2_pipelines.video.pipeline import VideoObjectTrackingPipeline, parse_prompts

    if column not in dataset.column_names:
        raise ValueError(f"column {column!r} is not in the dataset; its columns are {dataset.column_names}")
    check_int(rows_per_file, "rows_per_file", minimum=1)
    tracking = isinstance(pipe, VideoObjectTrackingPipeline)
    store = PartStore(output, "tracks" if tracking else "masks", output_format)
    store.check_directory()
    if tracking:
        prompts = call_kwargs.pop("prompts", None)
        prompts = None if prompts is None else parse_prompts(prompts)
        if prompts is None and "prompts" not in dataset.column_names:
            raise ValueError('no prompts: the dataset has no "prompts" column and no prompts=[...] was given for every video')
    else:
        call_kwargs = check_mask_options(call_kwargs)
    ids = [str(i) for i in (dataset[id_column] if id_column in dataset.column_names else range(len(dataset)))]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the dataset's {id_column!r} column holds an id more than once; every row needs its own id")
    state = _state(state)
    done = store.done_ids()
    state.wait_for_everyone()  # every process has read what is done before anyone cleans or writes
    if state.is_main_process:
        store.clean_temporary()
    state.wait_for_everyone()
    feature = dataset.features.get(column)
    if type(feature).__name__ == "Image":  # read the file bytes ourselves: an undecodable image becomes an error row
        import datasets

        dataset = dataset.cast_column(column, datasets.Image(decode=False))
    summary, rows = RunSummary(str(output)), []
    for index in tqdm(shard_indices(len(dataset), state), disable=not progress, desc=f"process {state.process_index}"):
        if ids[index] in done:
            summary.skipped += 1
            continue
        row = dataset[index]
        if tracking:
            row_prompts = row.get("prompts") if row.get("prompts") is not None else prompts
            rows.append(track_row(pipe, ids[index], row[column], row_prompts, video_row_options(row), call_kwargs))
        else:
            rows.append(mask_row(pipe, ids[index], row[column], call_kwargs))
        summary.done += 1
        summary.failed += rows[-1]["error"] is not None
        if len(rows) == rows_per_file:
            store.write(rows)
            rows = []
    store.write(rows)
    counts = gather_results([(summary.done, summary.failed, summary.skipped)], state)
    return RunSummary(str(output), *(sum(c[i] for c in counts) for i in range(3)))
