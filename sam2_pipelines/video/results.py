"""One tracking result per frame: object ids, masks at video resolution (binary or COCO RLE), visibility scores."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sam2_pipelines.core.masks import encode_rle


def frame_result(frame: int, obj_ids: list, masks: list, scores: list, size: tuple[int, int], mask_threshold: float,
                 output: str, return_logits: bool) -> dict:
    """``{"frame_idx", "object_ids", "masks", "scores"}`` (and ``"logits"``) from per-object model outputs.

    ``masks`` are low-resolution mask logits, upsampled bilinearly to ``size`` and thresholded at
    ``mask_threshold``; ``scores`` are object-score logits, reported as probabilities. ``output="rle"`` gives
    COCO RLE dicts and plain floats (``json.dumps`` works on the result).
    """
    height, width = size
    if masks:
        logits = torch.cat([m.reshape(1, 1, *m.shape[-2:]) for m in masks], dim=0).float()
        video_res = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        binary = (video_res > mask_threshold).cpu().numpy()
        probs = torch.sigmoid(torch.cat([s.reshape(1) for s in scores]).float()).cpu().numpy()
    else:
        video_res = torch.zeros((0, 1, height, width))
        binary = np.zeros((0, 1, height, width), dtype=bool)
        probs = np.zeros((0,), dtype=np.float32)
    if output == "rle":  # plain Python values throughout: json.dumps(result) works
        masks_out, scores_out = [encode_rle(m[0]) for m in binary], [float(p) for p in probs]
    else:
        masks_out, scores_out = binary, probs.astype(np.float32)
    result = {"frame_idx": int(frame), "object_ids": [int(i) for i in obj_ids], "masks": masks_out, "scores": scores_out}
    if return_logits:
        result["logits"] = video_res.cpu().numpy()
    return result
