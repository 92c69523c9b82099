"""Mask encodings and mask-level array helpers: COCO RLE (pycocotools), areas, boxes.

All functions are pure: they take numpy arrays / RLE dicts and return new ones.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

#: Meta clamps low-resolution mask logits to this range where they are reused as mask prompts.
LOGIT_CLAMP = 32.0


def encode_rle(mask: np.ndarray) -> dict:
    """Encode one ``(H, W)`` binary mask as a COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_rle expects one (H, W) mask, got an array of shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: dict) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes counts, or uncompressed list counts) to a bool ``(H, W)`` mask."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("an RLE must be a dict with 'size' [H, W] and 'counts'")
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def area_rle(rle: dict) -> int:
    """Number of foreground pixels of a COCO RLE."""
    if isinstance(rle["counts"], list):
        return int(sum(rle["counts"][1::2]))
    counts = rle["counts"].encode("ascii") if isinstance(rle["counts"], str) else rle["counts"]
    return int(mask_utils.area({"size": rle["size"], "counts": counts}))


def encode_rle_batch(masks) -> list[dict]:
    """Encode ``(N, H, W)`` binary masks (numpy or torch) as a list of COCO compressed RLEs (string counts)."""
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_rle_batch expects (N, H, W) masks, got an array of shape {masks.shape}")
    if len(masks) == 0:
        return []
    # pycocotools wants (H, W, N) in Fortran order: the C-ordered (N, W, H) transpose has exactly that layout.
    fortran = np.ascontiguousarray(masks.transpose(0, 2, 1), dtype=np.uint8).transpose(2, 1, 0)
    rles = mask_utils.encode(fortran)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _decode_counts_string(counts: str) -> list[int]:
    """Decode pycocotools' compressed counts string (LEB128-like, delta-coded) into run lengths."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            char = ord(counts[position]) - 48
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_to_uncompressed(rle: dict) -> dict:
    """Turn a COCO RLE into the uncompressed form ``{"size": [H, W], "counts": [run lengths]}``.

    Runs alternate background/foreground in column-major order, starting with background (a leading 0
    when the first pixel is foreground) — the format of Meta's ``mask_to_rle_pytorch``.
    """
    counts = rle["counts"]
    if isinstance(counts, list):
        return {"size": list(rle["size"]), "counts": [int(c) for c in counts]}
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": list(rle["size"]), "counts": _decode_counts_string(counts)}


def rle_in_format(rle: dict, output_mode: str, mask=None):
    """A COCO RLE in a record's ``output_mode``: ``"coco_rle"`` (as is), ``"binary_mask"`` (a bool ``(H, W)``
    array: ``mask`` when the caller holds it, else the decoded RLE) or ``"uncompressed_rle"``."""
    if output_mode == "coco_rle":
        return rle
    if output_mode == "binary_mask":
        return decode_rle(rle) if mask is None else mask
    return rle_to_uncompressed(rle)


def batched_mask_to_box(masks):
    """XYXY boxes (inclusive pixel indices) around ``(..., H, W)`` boolean torch masks; ``[0, 0, 0, 0]`` for empty masks.

    Same convention as Meta's ``sam2.utils.amg.batched_mask_to_box``: the right/bottom edges are the
    last foreground column/row, not one past it.
    """
    import torch

    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device, dtype=torch.long)
    shape = masks.shape
    height, width = shape[-2:]
    masks = masks.reshape(-1, height, width)
    rows = masks.any(dim=-1)  # (N, H)
    cols = masks.any(dim=-2)  # (N, W)
    row_index = torch.arange(height, device=masks.device)
    col_index = torch.arange(width, device=masks.device)
    bottom = (rows * row_index).amax(dim=-1)
    top = torch.where(rows, row_index, height).amin(dim=-1)
    right = (cols * col_index).amax(dim=-1)
    left = torch.where(cols, col_index, width).amin(dim=-1)
    empty = (right < left) | (bottom < top)
    boxes = torch.stack([left, top, right, bottom], dim=-1) * (~empty).unsqueeze(-1)
    return boxes.reshape(*shape[:-2], 4)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Remove small holes (``mode="holes"``) or small islands (``mode="islands"``) from one ``(H, W)`` mask.

    A connected region (8-connectivity) is small when its pixel count is ``< area_thresh``. Holes are
    background regions (including background touching the border) and are filled; islands are
    foreground regions and are erased, except that the largest island is kept when all are small.
    Same rule as Meta's ``sam2.utils.amg.remove_small_regions``.

    Returns:
        ``(new_mask, changed)``.
    """
    from scipy import ndimage

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    mask = np.asarray(mask, dtype=bool)
    correct_holes = mode == "holes"
    working = correct_holes ^ mask
    regions, count = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask, False
    sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
    small = np.flatnonzero(sizes < area_thresh) + 1
    if len(small) == 0:
        return mask, False
    if correct_holes:
        return mask | np.isin(regions, small), True
    keep = np.setdiff1d(np.arange(1, count + 1), small)
    if len(keep) == 0:
        keep = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(regions, keep), True
