"""Mask encodings and mask-level array helpers: COCO RLE (pycocotools), areas, boxes.

All functions are pure: they take numpy arrays / RLE dicts and return new ones.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


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
