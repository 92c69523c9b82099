"""Overlays of masks on images and video frames (distinct colours per object id)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sam2_pipelines.core.masks import decode_rle


def palette(num_colors: int = 256) -> np.ndarray:
    """The DAVIS / PASCAL VOC colour palette: ``(num_colors, 3)`` uint8, index 0 is black (background)."""
    colors = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colors[index] = (r, g, b)
    return colors


def color_for(obj_id: int) -> np.ndarray:
    """A stable, distinct RGB colour for an object id (the palette entry ``obj_id``, skipping black)."""
    return palette(256)[1 + (int(obj_id) - 1) % 255]


def _as_mask(mask) -> np.ndarray:
    mask = decode_rle(mask) if isinstance(mask, dict) else np.asarray(mask)
    while mask.ndim > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f"each mask must be (H, W) (or an RLE dict), got shape {mask.shape}")
    return mask.astype(bool)


def overlay_masks(image, masks, obj_ids=None, alpha: float = 0.5, outline: bool = True, labels: bool = False) -> np.ndarray:
    """Blend masks onto an RGB image.

    Args:
        image: ``(H, W, 3)`` uint8 array or PIL image.
        masks: a sequence of ``(H, W)`` boolean masks (or ``(1, H, W)``), or COCO RLE dicts.
        obj_ids: colour keys, one per mask (defaults to 1..N).
        alpha: opacity of the fill.
        outline: draw a 1-pixel border in the object's colour at full opacity.
        labels: write each object's id at the centre of its mask (see :func:`draw_labels`).

    Returns:
        A new ``(H, W, 3)`` uint8 array.
    """
    canvas = np.array(image, dtype=np.uint8, copy=True)
    if canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {canvas.shape}")
    masks = list(masks)
    obj_ids = list(range(1, len(masks) + 1)) if obj_ids is None else list(obj_ids)
    if len(obj_ids) != len(masks):
        raise ValueError(f"got {len(masks)} masks but {len(obj_ids)} obj_ids")
    for mask, obj_id in zip(masks, obj_ids):
        mask = _as_mask(mask)
        if mask.shape != canvas.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image size {canvas.shape[:2]}")
        color = color_for(obj_id).astype(np.float32)
        canvas[mask] = (canvas[mask] * (1 - alpha) + color * alpha).astype(np.uint8)
        if outline:
            inner = mask.copy()
            inner[1:, :] &= mask[:-1, :]
            inner[:-1, :] &= mask[1:, :]
            inner[:, 1:] &= mask[:, :-1]
            inner[:, :-1] &= mask[:, 1:]
            canvas[mask & ~inner] = color.astype(np.uint8)
    if labels:
        canvas = draw_labels(canvas, masks, obj_ids)
    return canvas


def mask_centers(masks) -> list:
    """The ``(x, y)`` pixel of each mask that lies deepest inside it (``None`` for an empty mask).

    "Deepest" is the foreground pixel farthest from the mask border (a 4-neighbour distance computed
    by repeated erosion), so the point is inside the mask even for rings and crescents.
    """
    centers = []
    for mask in masks:
        mask = _as_mask(mask)
        if not mask.any():
            centers.append(None)
            continue
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        top, left = int(rows[0]), int(cols[0])
        current = np.pad(mask[top : rows[-1] + 1, left : cols[-1] + 1], 1)
        while True:
            eroded = current.copy()
            eroded[1:, :] &= current[:-1, :]
            eroded[:-1, :] &= current[1:, :]
            eroded[:, 1:] &= current[:, :-1]
            eroded[:, :-1] &= current[:, 1:]
            eroded[0, :] = eroded[-1, :] = False
            eroded[:, 0] = eroded[:, -1] = False
            if not eroded.any():
                break
            current = eroded
        ys, xs = np.nonzero(current)
        middle = len(ys) // 2
        centers.append((int(xs[middle]) + left - 1, int(ys[middle]) + top - 1))
    return centers


def draw_labels(image, masks, obj_ids=None) -> np.ndarray:
    """Write each object's id (white text on a box of its colour) at the centre of its mask.

    Args:
        image: ``(H, W, 3)`` uint8 array or PIL image.
        masks: ``(H, W)`` masks or COCO RLE dicts.
        obj_ids: the ids to write, one per mask (defaults to 1..N). Empty masks get no label.

    Returns:
        A new ``(H, W, 3)`` uint8 array.
    """
    from PIL import Image, ImageDraw

    masks = list(masks)
    obj_ids = list(range(1, len(masks) + 1)) if obj_ids is None else list(obj_ids)
    if len(obj_ids) != len(masks):
        raise ValueError(f"got {len(masks)} masks but {len(obj_ids)} obj_ids")
    canvas = Image.fromarray(np.array(image, dtype=np.uint8, copy=True))
    draw = ImageDraw.Draw(canvas)
    for center, obj_id in zip(mask_centers(masks), obj_ids):
        if center is None:
            continue
        text = str(obj_id)
        left, top, right, bottom = draw.textbbox((0, 0), text)
        width, height = right - left, bottom - top
        x0 = min(max(center[0] - width // 2 - 1, 0), max(canvas.width - width - 2, 0))
        y0 = min(max(center[1] - height // 2 - 1, 0), max(canvas.height - height - 2, 0))
        draw.rectangle((x0, y0, x0 + width + 2, y0 + height + 2), fill=tuple(int(c) for c in color_for(obj_id)))
        draw.text((x0 + 1 - left, y0 + 1 - top), text, fill=(255, 255, 255))
    return np.asarray(canvas).copy()


def draw_prompts(image, points=(), labels=(), boxes=(), radius: int = 3) -> np.ndarray:
    """Mark prompts on an image: positive points green, negative points red, boxes as white rectangles.

    Args:
        image: ``(H, W, 3)`` uint8 array or PIL image.
        points: ``(x, y)`` pixel coordinates.
        labels: one label per point (1 positive, 0 negative); defaults to all positive.
        boxes: ``(x0, y0, x1, y1)`` boxes.
        radius: radius of the point markers in pixels.

    Returns:
        A new ``(H, W, 3)`` uint8 array.
    """
    from PIL import Image, ImageDraw

    points = [tuple(float(v) for v in point) for point in points]
    labels = [1] * len(points) if labels is None or len(labels) == 0 else [int(label) for label in labels]
    if len(labels) != len(points):
        raise ValueError(f"got {len(points)} points but {len(labels)} labels")
    canvas = Image.fromarray(np.array(image, dtype=np.uint8, copy=True))
    draw = ImageDraw.Draw(canvas)
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=(255, 255, 255), width=2)
    for (x, y), label in zip(points, labels):
        fill = (0, 220, 0) if label == 1 else (230, 0, 0)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill, outline=(255, 255, 255))
    return np.asarray(canvas).copy()


def overlay_records(image, records, alpha: float = 0.5, outline: bool = True, labels: bool = False) -> np.ndarray:
    """Overlay automatic mask-generation records (``{"segmentation": mask or RLE, ...}``) on an image.

    Masks are drawn largest first so small masks stay visible on top; each gets the colour of its
    rank in the input order (1..N), which is also the id written when ``labels`` is true.
    """
    records = list(records)
    order = sorted(range(len(records)), key=lambda i: -int(records[i].get("area", 0)))
    return overlay_masks(
        image,
        [records[i]["segmentation"] for i in order],
        obj_ids=[i + 1 for i in order],
        alpha=alpha,
        outline=outline,
        labels=labels,
    )


def overlay_frame(frame, result: dict, alpha: float = 0.5, outline: bool = True, labels: bool = True) -> np.ndarray:
    """Overlay one per-frame tracking result on its video frame.

    Args:
        frame: ``(H, W, 3)`` uint8 array or PIL image.
        result: a record of the ``video-object-tracking`` pipeline: ``{"object_ids": [...], "masks": ...}``
            where ``masks`` is ``(objects, 1, H, W)`` / ``(objects, H, W)`` booleans or a list of RLE dicts.
        alpha, outline, labels: as in :func:`overlay_masks`; each object keeps the colour of its id.

    Returns:
        A new ``(H, W, 3)`` uint8 array.
    """
    if "object_ids" not in result or "masks" not in result:
        raise ValueError("a tracking result must have 'object_ids' and 'masks'")
    return overlay_masks(frame, list(result["masks"]), obj_ids=list(result["object_ids"]), alpha=alpha, outline=outline, labels=labels)


def overlay_video(frames, results, alpha: float = 0.5, outline: bool = True, labels: bool = True):
    """Yield overlaid frames for a video: ``frames`` (iterable of RGB frames) and per-frame ``results``.

    Results are matched to frames by ``frame_idx`` (``results`` may also be a mapping ``frame index -> result``,
    read frame by frame); frames without a result are yielded unchanged.
    The frames are consumed lazily, so long videos never sit in memory.
    """
    by_frame = results if isinstance(results, Mapping) else {int(result["frame_idx"]): result for result in results}
    for index, frame in enumerate(frames):
        result = by_frame.get(index)
        yield np.array(frame, dtype=np.uint8) if result is None else overlay_frame(frame, result, alpha, outline, labels)
