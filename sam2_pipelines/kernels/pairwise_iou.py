"""Pairwise mask IoU in bounded memory: transformers' SAM 3 ``mask_iou``, one block of pairs at a time.

transformers' ``mask_iou(pred, gt)`` (``models/sam3_video/modeling_sam3_video.py``) broadcasts ``(N, 1, HW)``
against ``(1, M, HW)``: its ``&`` and ``|`` each hold ``N * M * HW`` booleans at once, and summing them makes an
int64 copy (8 bytes each). SAM 3 text tracking calls it with every detection against every tracked instance, so
memory grows with the square of the number of instances (3.4 GB more at 80 concepts of the tiny test model, a
26.5 GB allocation at 200). :func:`blockwise_mask_iou` does the same arithmetic on blocks of at most
:data:`BLOCK_ELEMENTS` pair-pixels: every IoU is computed by the same operations on the same values, so the
results are identical, and the memory beyond the ``(N, M)`` float32 result is bounded whatever the number of
instances.
"""

from __future__ import annotations

import torch

#: Pair-pixels (``rows * cols * H * W``) one block works on: 4 Mi booleans for ``&`` / ``|`` and their 32 MiB
#: int64 copy while summed.
BLOCK_ELEMENTS = 2**22


def block_shape(n: int, m: int, pixels: int, block_elements: int) -> tuple[int, int]:
    """``(rows, cols)`` of the blocks of an ``(n, m)`` IoU matrix over masks of ``pixels`` pixels, so that
    ``rows * cols * pixels <= block_elements`` (one pair at least, even if that alone is larger)."""
    pixels = max(1, pixels)
    cols = max(1, min(m, block_elements // pixels))
    rows = max(1, min(n, block_elements // (pixels * cols)))
    return rows, cols


def blockwise_mask_iou(pred_masks: torch.Tensor, gt_masks: torch.Tensor, block_elements: int | None = None) -> torch.Tensor:
    """IoU of every pair of ``pred_masks`` ``(N, H, W)`` and ``gt_masks`` ``(M, H, W)`` (bool): ``(N, M)`` float32.

    Identical to transformers' SAM 3 ``mask_iou`` (intersection and union counted per pair, union clamped to at
    least 1), computed over blocks of at most ``block_elements`` pair-pixels (default :data:`BLOCK_ELEMENTS`).
    """
    n, height, width = pred_masks.shape
    m = gt_masks.shape[0]
    pixels = height * width
    pred = pred_masks.reshape(n, 1, pixels)
    gt = gt_masks.reshape(1, m, pixels)
    ious = torch.empty((n, m), dtype=torch.float32, device=pred_masks.device)
    rows, cols = block_shape(n, m, pixels, BLOCK_ELEMENTS if block_elements is None else block_elements)
    for i in range(0, n, rows):
        for j in range(0, m, cols):
            p, g = pred[i : i + rows], gt[:, j : j + cols]
            intersection = (p & g).sum(dim=2).float()
            union = (p | g).sum(dim=2).float()
            ious[i : i + rows, j : j + cols] = intersection / union.clamp(min=1)
    return ious
