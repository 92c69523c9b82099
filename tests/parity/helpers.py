"""Small comparison helpers shared by the parity tests."""

from __future__ import annotations

import numpy as np


def mask_iou(a, b) -> float:
    """IoU of two boolean masks; two empty masks count as identical."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)
