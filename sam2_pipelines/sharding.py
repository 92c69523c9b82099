"""The public name of :mod:`sam2_pipelines.distributed.accelerate`: sharding a dataset across processes."""

from sam2_pipelines.distributed.accelerate import (  # noqa: F401
    gather_results,
    map_sharded,
    run_pipeline_sharded,
    shard_dataset,
    shard_indices,
    write_sharded,
)
