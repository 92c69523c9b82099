"""One input row in, one output row out: the work every batch engine does per image or per video.

A bad input (an unreadable image or video, a bad prompt) never raises here: it becomes a row whose
``error`` says what was wrong, with no records, so a long run records it and goes on. Output rows hold the
columns of :data:`~sam2_pipelines.distributed.durable.COLUMNS` (records and frames as JSON text).
"""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np

from sam2_pipelines.io.exports import frame_record, json_ready

#: What an image cell may hold.
IMAGE_VALUES = "a file path, encoded image bytes, a Hugging Face image dict ({'bytes', 'path'}), a PIL image or an (H, W, 3) uint8 array"


def check_mask_options(options: dict) -> dict:
    """Check mask-generation options before any work (ValueError naming the option), as the pipeline would."""
    from sam2_pipelines.image.options import resolve_options, translate_builtin_keywords, validate_options

    options = validate_options(translate_builtin_keywords(options))
    if "output_mode" in options and options["output_mode"] != "coco_rle":
        raise ValueError(f"batch runs write COCO RLE records (output_mode='coco_rle'); got output_mode={options['output_mode']!r}")
    if options.get("text") is None:
        resolve_options({k: v for k, v in options.items() if k not in ("text", "exemplars", "exemplar_labels", "score_threshold")})
    return {**options, "output_mode": "coco_rle"}


def read_image(value) -> np.ndarray:
    """An image cell as ``(H, W, 3)`` uint8 RGB (EXIF orientation applied); ValueError when it is not one."""
    from PIL import Image

    from sam2_pipelines.core.images import load_rgb, pil_to_rgb, read_image_file

    if isinstance(value, dict):  # a Hugging Face ``datasets.Image`` cell as Arrow stores it
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) == 0:
            raise ValueError("the image bytes are empty")
        try:
            with Image.open(io.BytesIO(bytes(value))) as image:
                image.load()
                return pil_to_rgb(image)
        except (OSError, SyntaxError, Image.DecompressionBombError) as error:
            raise ValueError(f"could not decode the image bytes: {error}") from None
    if isinstance(value, (str, os.PathLike)):
        return read_image_file(value)
    if isinstance(value, Image.Image):
        return pil_to_rgb(value)
    if isinstance(value, np.ndarray):
        return load_rgb(value)
    raise ValueError(f"an image cell must be {IMAGE_VALUES}; got {type(value).__name__}")


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def mask_row(generator, row_id: str, image, options: dict) -> dict:
    """Automatic masks (or text instances) of one image as an output row; an error row if it cannot be read."""
    try:
        rgb = read_image(image)
        output = generator(rgb, **options)
        records = [json_ready(record) for record in output["records"]]
    except Exception as error:  # a bad row is recorded, never raised: the run goes on
        return {"id": row_id, "height": None, "width": None, "num_masks": None, "records": None, "error": _error(error)}
    height, width = rgb.shape[:2]
    return {"id": row_id, "height": int(height), "width": int(width), "num_masks": len(records), "records": json.dumps(records), "error": None}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def video_row_options(row: dict) -> dict:
    """The per-video options a row sets (``direction``, ``start_frame``, ``max_frames``, ...), nulls left out."""
    from sam2_pipelines.video.pipeline import row_options

    options = {}
    for name in row_options():
        value = row.get(name)
        if _is_missing(value):
            continue
        options[name] = value.item() if isinstance(value, np.generic) else value
    return options


def track_row(tracker, row_id: str, video, prompts, row_options: dict, options: dict) -> dict:
    """Every frame's masks (COCO RLE per object) of one prompted video as an output row; an error row on failure."""
    from sam2_pipelines.video.pipeline import parse_prompts

    try:
        if _is_missing(prompts):
            raise ValueError('the row has no prompts: give it a "prompts" value (a JSON list of prompt dicts) or prompts= for every video')
        if isinstance(prompts, np.ndarray):
            prompts = prompts.tolist()
        if _is_missing(video) or not isinstance(video, (str, os.PathLike)):
            raise ValueError(f"a video cell must be a path to a video file or a folder of frames; got {type(video).__name__}")
        results = tracker(os.fspath(video), prompts=parse_prompts(prompts), **{**options, **row_options, "output": "rle"})
        frames = [frame_record(result) for result in results]
    except Exception as error:  # a bad row is recorded, never raised: the run goes on
        return {"id": row_id, "num_frames": None, "object_ids": None, "frames": None, "error": _error(error)}
    object_ids = sorted({i for frame in frames for i in frame["object_ids"]})
    return {"id": row_id, "num_frames": len(frames), "object_ids": object_ids, "frames": json.dumps(frames), "error": None}
