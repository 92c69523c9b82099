"""Pure building blocks of automatic mask generation (AMG), following Meta's ``sam2.utils.amg``.

Point grids, crop boxes, the stability score, the crop-edge filter, uncropping, and the two kinds of
box non-maximum suppression (within a crop by predicted IoU, across crops preferring smaller crops).
Every function takes arrays / tensors and returns new ones; none touches a model.

Conventions: image sizes are ``(height, width)``; boxes are XYXY in pixels of the original image unless
a name says otherwise; crop boxes are ``[x0, y0, x1, y1]`` ints with exclusive ``x1, y1``.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Sequence

import numpy as np
import torch
from torchvision.ops.boxes import batched_nms, box_area


def build_point_grid(n_per_side: int) -> np.ndarray:
    """``(n*n, 2)`` points ``(x, y)`` evenly spaced in ``[0, 1]^2``, at the centres of an ``n x n`` grid of cells."""
    offset = 1 / (2 * n_per_side)
    points_one_side = np.linspace(offset, 1 - offset, n_per_side)
    points_x = np.tile(points_one_side[None, :], (n_per_side, 1))
    points_y = np.tile(points_one_side[:, None], (1, n_per_side))
    return np.stack([points_x, points_y], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One normalised point grid per crop layer; layer ``i`` has ``int(n_per_side / scale_per_layer**i)`` points per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(im_size: Sequence[int], n_layers: int, overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """Crop boxes of every layer: layer 0 is the whole image, layer ``i`` has ``(2**i)**2`` overlapping crops.

    Args:
        im_size: ``(height, width)`` of the image.
        n_layers: number of crop layers after the whole image.
        overlap_ratio: overlap of neighbouring crops in the first layer, as a fraction of the short side
            (later layers scale it down by ``2 / crops_per_side``).

    Returns:
        ``(crop_boxes, layer_indices)``: XYXY int boxes and the layer of each.
    """
    crop_boxes, layer_idxs = [], []
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes.append([0, 0, im_w, im_h])
    layer_idxs.append(0)

    def crop_len(orig_len, n_crops, overlap):
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_crops_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops_per_side))
        crop_w = crop_len(im_w, n_crops_per_side, overlap)
        crop_h = crop_len(im_h, n_crops_per_side, overlap)
        crop_box_x0 = [int((crop_w - overlap) * i) for i in range(n_crops_per_side)]
        crop_box_y0 = [int((crop_h - overlap) * i) for i in range(n_crops_per_side)]
        for x0, y0 in product(crop_box_x0, crop_box_y0):
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(i_layer + 1)
    return crop_boxes, layer_idxs


def batch_ranges(total: int, batch_size: int) -> list[slice]:
    """Slices cutting ``range(total)`` into consecutive batches of at most ``batch_size``."""
    return [slice(start, min(start + batch_size, total)) for start in range(0, total, batch_size)]


def calculate_stability_score(logits: torch.Tensor, mask_threshold: float, threshold_offset: float) -> torch.Tensor:
    """IoU between the masks thresholded at ``mask_threshold + offset`` and at ``mask_threshold - offset``.

    ``logits`` is ``(N, H, W)``; returns ``(N,)`` float32. The high-threshold mask is always inside the
    low-threshold one, so the IoU is a ratio of pixel counts (NaN for a mask empty at both thresholds,
    as in Meta's implementation).
    """
    intersections = (logits > (mask_threshold + threshold_offset)).sum(dim=(-1, -2), dtype=torch.int64)
    unions = (logits > (mask_threshold - threshold_offset)).sum(dim=(-1, -2), dtype=torch.int64)
    return (intersections.float() / unions.float()).to(torch.float32)


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Shift XYXY boxes from crop coordinates to image coordinates."""
    x0, y0, _, _ = crop_box
    offset = torch.tensor([[x0, y0, x0, y0]], device=boxes.device)
    if boxes.ndim == 3:
        offset = offset.unsqueeze(1)
    return boxes + offset


def uncrop_points(points: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Shift ``(..., 2)`` points from crop coordinates to image coordinates."""
    x0, y0, _, _ = crop_box
    offset = torch.tensor([[x0, y0]], device=points.device)
    if points.ndim == 3:
        offset = offset.unsqueeze(1)
    return points + offset


def uncrop_masks(masks: torch.Tensor, crop_box: Sequence[int], orig_h: int, orig_w: int) -> torch.Tensor:
    """Zero-pad ``(N, h, w)`` crop masks into ``(N, orig_h, orig_w)`` image masks."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    pad_x, pad_y = orig_w - (x1 - x0), orig_h - (y1 - y0)
    return torch.nn.functional.pad(masks, (x0, pad_x - x0, y0, pad_y - y0), value=0)


def is_box_near_crop_edge(boxes: torch.Tensor, crop_box: Sequence[int], orig_box: Sequence[int], atol: float = 20.0) -> torch.Tensor:
    """``(N,)`` bool: the (crop-frame XYXY) box lies within ``atol`` of a crop edge that is not an image edge."""
    crop_box_t = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig_box_t = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop_edge = torch.isclose(boxes, crop_box_t[None, :], atol=atol, rtol=0)
    near_image_edge = torch.isclose(boxes, orig_box_t[None, :], atol=atol, rtol=0)
    return torch.any(near_crop_edge & ~near_image_edge, dim=1)


def box_xyxy_to_xywh(box) -> list:
    """``[x0, y0, x1, y1]`` -> ``[x0, y0, x1 - x0, y1 - y0]`` (a new list)."""
    x0, y0, x1, y1 = (v.item() if hasattr(v, "item") else v for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by class-agnostic box NMS (torchvision ``batched_nms``), in decreasing score order."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long)
    return batched_nms(boxes.float(), scores.float(), torch.zeros_like(boxes[:, 0]), iou_threshold=iou_threshold)


def crop_preference_scores(crop_boxes: torch.Tensor) -> torch.Tensor:
    """Scores for cross-crop NMS: ``1 / area(crop_box)``, so masks from smaller crops win."""
    return 1 / box_area(crop_boxes)
