"""Validation and normalisation of user prompts (points, labels, boxes, mask logits).

Every function here is pure: it takes what a user passed (nested lists, numpy arrays or torch tensors)
and returns numpy arrays of a fixed layout, or raises a ``ValueError`` that says what was wrong and what
is accepted. Coordinates are always in pixels of the original image, ``(x, y)`` order; sizes are always
``(height, width)``.

Layouts used throughout:

* one object's points: ``(P, 2)`` float32 ``(x, y)``; its labels: ``(P,)`` int64;
* one object's box: ``(4,)`` float32 ``[x0, y0, x1, y1]``;
* one image's prompts: a list with one entry per object (see :func:`normalize_image_prompts`);
* mask prompts: low-resolution logits ``(objects, h, w)`` float32, as returned under ``"logits"`` by
  the prompted ``mask-generation`` pipeline.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sam2_pipelines.core.validation import check_int

#: Positive click.
POSITIVE = 1
#: Negative click.
NEGATIVE = 0
#: Label of a padding point (ignored by the model).
PADDING = -1
#: Labels of a box's top-left and bottom-right corners when a box is written as two points.
BOX_TOP_LEFT = 2
BOX_BOTTOM_RIGHT = 3

#: Labels a user may give to clicks.
CLICK_LABELS = (NEGATIVE, POSITIVE)
#: Largest mask-logit magnitude accepted as a mask prompt (larger ones overflow float32 inside the model).
MAX_MASK_LOGIT = 1e4


def _to_numpy(value, name: str, allow_bool: bool = False) -> np.ndarray:
    """Turn nested lists / numpy arrays / torch tensors of numbers into a float64 numpy array, or raise ValueError.

    Text (``"1"``) is never read as a number, and booleans only where ``allow_bool`` (binary masks).
    """
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError):
        raw = None
    if raw is not None:
        kinds = {raw.dtype.kind} if raw.dtype != object else {np.asarray(v).dtype.kind for v in raw.flat}
        if kinds & {"U", "S", "O"}:
            raise ValueError(f"{name} must hold numbers, not text or other objects; got {value!r}")
        if "b" in kinds and not allow_bool:
            raise ValueError(
                f"{name} must hold numbers, got booleans"
                + (" (mask prompts are low-resolution logits: the 'logits' output of a previous call)" if name == "masks" else "")
            )
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} must be a rectangular array of numbers (nested lists, numpy array or torch tensor); "
            f"could not read {value!r}: {error}"
        ) from None
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values: {value!r}")
    return array


def check_image_size(image_size) -> tuple[int, int]:
    """Return ``image_size`` as ``(height, width)`` ints, or raise ValueError if it is not two positive ints."""
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (height, width), got {image_size!r}")
    return height, width


def _check_in_bounds(xy: np.ndarray, image_size, name: str) -> None:
    """Raise ValueError when any ``(x, y)`` in ``xy`` (..., 2) lies outside ``[0, W] x [0, H]``."""
    height, width = image_size
    outside = (xy[..., 0] < 0) | (xy[..., 0] > width) | (xy[..., 1] < 0) | (xy[..., 1] > height)
    if np.any(outside):
        bad = xy.reshape(-1, 2)[outside.reshape(-1)][0].tolist()
        raise ValueError(
            f"{name} {bad} lies outside the image: coordinates are (x, y) pixels with 0 <= x <= {width} "
            f"and 0 <= y <= {height} for an image of height {height} and width {width}"
        )


def normalize_points(points, labels, image_size, allowed_labels: Sequence[int] = CLICK_LABELS) -> tuple[np.ndarray, np.ndarray]:
    """Validate the clicks of ONE object.

    Args:
        points: ``(P, 2)`` pixel coordinates ``[[x, y], ...]`` (a single ``[x, y]`` is accepted as one point).
        labels: ``(P,)`` labels, one per point (a bare int is accepted for a single point); each must be
            in ``allowed_labels`` (default: 1 = positive, 0 = negative).
        image_size: ``(height, width)`` of the original image; points must satisfy ``0 <= x <= width``
            and ``0 <= y <= height``.
        allowed_labels: label values accepted.

    Returns:
        ``(points (P, 2) float32, labels (P,) int64)``.
    """
    image_size = check_image_size(image_size)
    if labels is None:
        raise ValueError("labels are required with points: one label per point (1 = positive click, 0 = negative click)")
    xy = _to_numpy(points, "points")
    if xy.ndim == 1 and xy.shape == (2,):
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
        raise ValueError(
            f"the points of one object must have shape (num_points, 2) with num_points >= 1, as [[x, y], ...]; "
            f"got shape {xy.shape}"
        )
    lab = _to_numpy(labels, "labels")
    if lab.ndim == 0:
        lab = lab[None]
    if lab.ndim != 1 or lab.shape[0] != xy.shape[0]:
        raise ValueError(
            f"labels of one object must be a flat list with one label per point ({xy.shape[0]} points), got shape {lab.shape}"
        )
    if np.any(lab != np.round(lab)) or not np.all(np.isin(lab, list(allowed_labels))):
        raise ValueError(f"labels must be integers in {sorted(allowed_labels)} (1 = positive, 0 = negative), got {lab.tolist()}")
    _check_in_bounds(xy, image_size, "point")
    return xy.astype(np.float32), lab.astype(np.int64)


def normalize_box(box, image_size) -> np.ndarray:
    """Validate ONE box ``[x0, y0, x1, y1]`` in pixels (top-left, bottom-right) and return it as ``(4,)`` float32.

    The corners must satisfy ``x0 <= x1``, ``y0 <= y1`` and lie inside ``[0, width] x [0, height]``.
    """
    image_size = check_image_size(image_size)
    array = _to_numpy(box, "box")
    if array.shape != (4,):
        raise ValueError(f"a box must be [x0, y0, x1, y1] (4 numbers), got shape {array.shape}: {box!r}")
    if array[0] > array[2] or array[1] > array[3]:
        raise ValueError(f"a box must be [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {array.tolist()}")
    _check_in_bounds(array.reshape(2, 2), image_size, "box corner")
    return array.astype(np.float32)


def normalize_boxes(boxes, image_size) -> np.ndarray:
    """Validate the boxes of one image, one per object: ``(N, 4)`` ``[[x0, y0, x1, y1], ...]`` -> float32 ``(N, 4)``."""
    array = _to_numpy(boxes, "boxes")
    if array.ndim == 1 and array.shape == (4,):
        raise ValueError(
            "boxes of one image must be a list with one box per object, e.g. [[x0, y0, x1, y1]]; got a single box "
            f"{array.tolist()} (wrap it in a list)"
        )
    if array.ndim != 2 or array.shape[1] != 4 or array.shape[0] == 0:
        raise ValueError(f"boxes of one image must have shape (num_objects, 4), as [[x0, y0, x1, y1], ...]; got shape {array.shape}")
    return np.stack([normalize_box(box, image_size) for box in array])


def _object_list(value, name: str) -> list:
    """Split one image's per-object prompt container into a list (one entry per object)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return list(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"{name} must be a list with one entry per object, got {type(value).__name__}")


def normalize_image_prompts(points=None, labels=None, boxes=None, image_size=None, allowed_labels: Sequence[int] = CLICK_LABELS) -> dict:
    """Validate the prompts of ONE image, given per object.

    Args:
        points: ``(objects, points_per_object, 2)`` pixel coordinates, e.g. ``[[[500, 375]], [[650, 750], [600, 700]]]``;
            objects may have different numbers of points.
        labels: ``(objects, points_per_object)``, e.g. ``[[1], [1, 0]]``; required with ``points``.
        boxes: ``(objects, 4)`` ``[[x0, y0, x1, y1], ...]``. When both points and boxes are given, object ``i``
            uses ``points[i]`` and ``boxes[i]``, so both must have the same number of objects.
        image_size: ``(height, width)`` of the image.

    Returns:
        ``{"points": list of (P_i, 2) float32 or None, "labels": list of (P_i,) int64 or None,
        "boxes": (N, 4) float32 or None, "num_objects": N}``.
    """
    image_size = check_image_size(image_size)
    if points is None and labels is not None:
        raise ValueError("labels were given without points; pass points=[[[x, y], ...], ...] with one label per point")
    if points is None and boxes is None:
        raise ValueError("give at least one of points (with labels) or boxes")
    out = {"points": None, "labels": None, "boxes": None}
    counts = []
    if points is not None:
        if labels is None:
            raise ValueError("labels are required with points: one label per point (1 = positive click, 0 = negative click)")
        object_points = _object_list(points, "points")
        object_labels = _object_list(labels, "labels")
        if len(object_points) == 0:
            raise ValueError("points must hold at least one object, as [[[x, y], ...], ...] (objects, points, 2)")
        if len(object_points) != len(object_labels):
            raise ValueError(
                f"points and labels must have the same number of objects: got {len(object_points)} point lists "
                f"and {len(object_labels)} label lists (layout: points (objects, points, 2), labels (objects, points))"
            )
        for p in object_points:
            if np.ndim(p) != 2:
                raise ValueError(
                    "points of one image must have shape (objects, points_per_object, 2), e.g. [[[x, y]]] for one click "
                    f"on one object; got an object entry {p!r}"
                )
        pairs = [normalize_points(p, l, image_size, allowed_labels) for p, l in zip(object_points, object_labels)]
        out["points"] = [p for p, _ in pairs]
        out["labels"] = [l for _, l in pairs]
        counts.append(len(pairs))
    if boxes is not None:
        out["boxes"] = normalize_boxes(boxes, image_size)
        counts.append(len(out["boxes"]))
    if len(set(counts)) > 1:
        raise ValueError(
            f"points and boxes describe different numbers of objects ({counts[0]} and {counts[1]}); when both are "
            "given, object i uses points[i] and boxes[i]"
        )
    out["num_objects"] = counts[0]
    return out


def normalize_mask_logits(masks, num_objects: int | None, mask_size) -> np.ndarray:
    """Validate mask prompts: low-resolution logits, one mask per object.

    Args:
        masks: ``(objects, h, w)`` or ``(objects, 1, h, w)`` logits (e.g. ``out["logits"][:, best]`` of a previous
            prompted call); ``h, w`` must equal ``mask_size``.
        num_objects: number of objects described by the other prompts of the image, or ``None`` when masks
            are the only prompt.
        mask_size: ``(h, w)`` low-resolution mask size of the model (256x256 for the released SAM 2 checkpoints).

    Returns:
        ``(objects, h, w)`` float32 logits.
    """
    raw = masks.detach().cpu().numpy() if hasattr(masks, "detach") else np.asarray(masks) if not isinstance(masks, (list, tuple)) else None
    if raw is not None and raw.dtype.kind in "iu":
        raise ValueError(
            f"masks must be float mask logits (the 'logits' output of a previous call); got an array of {raw.dtype} "
            "values. A binary mask is not logits: give it to a video session's add_mask, or turn it into logits first "
            "(e.g. np.where(mask, 10.0, -10.0) at the low resolution)"
        )
    array = _to_numpy(masks, "masks")
    if array.size and np.abs(array).max() > MAX_MASK_LOGIT:
        raise ValueError(
            f"masks holds logits up to {np.abs(array).max():g} in size; mask logits beyond +-{MAX_MASK_LOGIT:g} overflow "
            "the model's float32 arithmetic (a previous call's 'logits' stay well inside)"
        )
    h, w = (int(v) for v in mask_size)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        raise ValueError(
            f"masks must hold one low-resolution logit mask per object, shape (objects, {h}, {w}); got a single "
            f"{array.shape} mask (wrap it in a list)"
        )
    if array.ndim == 4:
        raise ValueError(
            f"masks must hold ONE low-resolution logit mask per object, shape (objects, {h}, {w}); got {array.shape}. "
            "Select one mask per object first, e.g. logits[np.arange(len(logits)), scores.argmax(1)]"
        )
    if array.ndim != 3 or array.shape[1:] != (h, w):
        raise ValueError(
            f"masks must be low-resolution logits of shape (objects, {h}, {w}) (the 'logits' output of a previous "
            f"prompted call); got shape {array.shape}"
        )
    if num_objects is not None and array.shape[0] != num_objects:
        raise ValueError(f"masks has {array.shape[0]} objects but the other prompts of the image describe {num_objects}")
    return array.astype(np.float32)


def split_per_image(value, num_images: int, name: str) -> list:
    """Split a per-image prompt container (list with one entry per image) into a list of ``num_images`` entries.

    ``None`` becomes ``[None] * num_images``.
    """
    if value is None:
        return [None] * num_images
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"{name} for several images must be a list with one entry per image, got {type(value).__name__}")
    if len(value) != num_images:
        raise ValueError(f"{name} must have one entry per image: got {len(value)} entries for {num_images} images")
    return list(value)


# ------------------------------------------------------------------------------------------ video prompts

#: Keys a video prompt dict may have.
VIDEO_PROMPT_KEYS = ("frame", "obj_id", "points", "labels", "box", "mask")


def normalize_binary_mask(mask, image_size) -> np.ndarray:
    """Validate ONE binary mask prompt covering the whole frame: ``(H, W)`` (or ``(1, H, W)``) bool or 0/1 values.

    ``(H, W)`` must equal ``image_size``. Returns a bool ``(H, W)`` array.
    """
    height, width = check_image_size(image_size)
    array = _to_numpy(mask, "mask", allow_bool=True)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (height, width):
        raise ValueError(f"a mask prompt must have the frame's size (H, W) = ({height}, {width}), got shape {array.shape}")
    if not np.all((array == 0) | (array == 1)):
        raise ValueError("a mask prompt must be binary (bool, or 0/1 values); threshold logits or probabilities first")
    return array.astype(bool)


def normalize_video_prompt(prompt, image_size, num_frames: int | None = None) -> dict:
    """Validate one video prompt dict.

    A prompt is ``{"frame": int, "obj_id": int}`` plus one of: ``"points"`` with ``"labels"`` (clicks),
    ``"box"`` ``[x0, y0, x1, y1]`` (optionally with extra ``"points"``/``"labels"``), or ``"mask"`` (a binary
    ``(H, W)`` array). Coordinates are pixels of the video; ``frame`` must be in ``0..num_frames-1`` when
    ``num_frames`` is known.

    Returns:
        ``{"frame", "obj_id", "points" (P, 2) float32 or None, "labels" (P,) int64 or None,
        "box" (4,) float32 or None, "mask" (H, W) bool or None}``.
    """
    if not isinstance(prompt, dict):
        raise ValueError(
            'a prompt must be a dict such as {"frame": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]}, '
            f"got {type(prompt).__name__}"
        )
    unknown = sorted(set(prompt) - set(VIDEO_PROMPT_KEYS), key=str)
    if "text" in unknown:
        raise ValueError(
            'text prompts need a text tracker: SAM 3\'s Sam3VideoModel (e.g. pipeline("video-object-tracking", model="facebook/sam3")); '
            f"this tracker takes the prompt keys {', '.join(VIDEO_PROMPT_KEYS)}"
        )
    if unknown:
        raise ValueError(f"unknown prompt keys {unknown}; accepted keys: {', '.join(VIDEO_PROMPT_KEYS)}")
    for key in ("frame", "obj_id"):
        if key not in prompt:
            raise ValueError(f"a prompt needs {key!r}; got keys {sorted(prompt)}")
    frame = check_int(prompt["frame"], "prompt frame", minimum=0)
    if num_frames is not None and frame >= num_frames:
        raise ValueError(f"prompt on frame {frame}, but the video has {num_frames} frames (valid frames: 0..{num_frames - 1})")
    obj_id = check_int(prompt["obj_id"], "obj_id")
    has_clicks = prompt.get("points") is not None or prompt.get("labels") is not None
    has_box = prompt.get("box") is not None
    has_mask = prompt.get("mask") is not None
    if not (has_clicks or has_box or has_mask):
        raise ValueError(f"prompt for object {obj_id} on frame {frame} needs points with labels, a box or a mask")
    if has_mask and (has_clicks or has_box):
        raise ValueError("a mask prompt cannot be combined with points or a box in the same prompt")
    out = {"frame": frame, "obj_id": obj_id, "points": None, "labels": None, "box": None, "mask": None}
    if has_clicks:
        if prompt.get("points") is None:
            raise ValueError("labels were given without points; pass points=[[x, y], ...] with one label per point")
        out["points"], out["labels"] = normalize_points(prompt["points"], prompt.get("labels"), image_size)
    if has_box:
        out["box"] = normalize_box(prompt["box"], image_size)
    if has_mask:
        out["mask"] = normalize_binary_mask(prompt["mask"], image_size)
    return out
