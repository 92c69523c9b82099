"""Results as plain JSON values: one conversion for records and one per-frame tracking record.

Used below the CLI, the demo and the batch engines (``distributed/``), so each writes the same JSON.
"""

from __future__ import annotations

import numpy as np


def json_ready(value):
    """Convert numpy scalars/arrays, tuples and bytes inside a result to plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("ascii")
    return value


def frame_record(result: dict) -> dict:
    """One tracking result (a frame of ``video-object-tracking``) as JSON: ids, COCO RLE masks, scores.

    Masks may be binary arrays ``(objects, 1, H, W)`` (encoded here) or already COCO RLE dicts (``output="rle"``).
    Returns ``{"frame_idx", "object_ids", "masks", "scores"}`` (and ``"concepts"`` for text trackers).
    """
    from sam2_pipelines.core.masks import encode_rle

    masks = [mask if isinstance(mask, dict) else encode_rle(np.asarray(mask).reshape(np.shape(mask)[-2:])) for mask in result["masks"]]
    record = {
        "frame_idx": int(result["frame_idx"]),
        "object_ids": [int(i) for i in result["object_ids"]],
        "masks": json_ready(masks),
        "scores": json_ready(result.get("scores")),
    }
    if "concepts" in result:
        record["concepts"] = json_ready(result["concepts"])
    return record
