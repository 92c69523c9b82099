"""Run a pipeline over a ``datasets.Dataset`` split across processes, and gather the results.

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
