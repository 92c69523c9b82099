"""Overlays of masks on images and video frames (distinct colours per object id)."""

from __future__ import annotations

import numpy as np

from .masks import decode_rle


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


def overlay_masks(image, masks, obj_ids=None, alpha: float = 0.5, outline: bool = True) -> np.ndarray:
    """Blend masks onto an RGB image.

    Args:
        image: ``(H, W, 3)`` uint8 array or PIL image.
        masks: a sequence of ``(H, W)`` boolean masks (or ``(1, H, W)``), or COCO RLE dicts.
        obj_ids: colour keys, one per mask (defaults to 1..N).
        alpha: opacity of the fill.
        outline: draw a 1-pixel border in the object's colour at full opacity.

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
    return canvas
