"""Batch runs beyond one process: results streamed to durable, resumable part files.

* :mod:`.rows` turns one input row (an image, or a video with its prompts) into one output row, an error row
  when the input is bad (shared by every engine);
* :mod:`.durable` writes those rows as part files (temporary name, then rename) and finds the ids a
  previous run already wrote;
* :mod:`.ray` runs them on Ray Data (``pip install "sam2-pipelines[ray]"``);
  ``sam2_pipelines.sharding.write_sharded`` runs them under ``accelerate``/``torchrun``.
"""
