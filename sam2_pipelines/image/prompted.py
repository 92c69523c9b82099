"""Prompted mode of the ``mask-generation`` pipeline: masks for given points, boxes and mask logits.

:func:`prepare_prompts` checks and normalises one image's prompts (before any model work);
:func:`predict` decodes them on the image's embedding and returns masks at the image's resolution,
as Meta's ``SAM2ImagePredictor.predict`` does for each object.
"""

from __future__ import annotations

import numpy as np
import torch

from sam2_pipelines.image.model import ImageModel
from sam2_pipelines.image.options import PromptedOptions
from sam2_pipelines.core.masks import LOGIT_CLAMP
from sam2_pipelines.core.prompts import normalize_image_prompts, normalize_mask_logits


def prepare_prompts(prompts: dict, image_hw: tuple[int, int], mask_size: int) -> dict:
    """``{"points", "labels", "boxes", "masks"}`` of one image (any may be None) -> normalised prompts with
    ``num_objects``; ValueError on prompts that do not fit together or do not fit the image."""
    if prompts["points"] is None and prompts["boxes"] is None and prompts["labels"] is None:
        normalized = {"points": None, "labels": None, "boxes": None, "num_objects": None}
    else:
        normalized = normalize_image_prompts(prompts["points"], prompts["labels"], prompts["boxes"], image_hw)
    if prompts["masks"] is not None:
        normalized["masks"] = normalize_mask_logits(prompts["masks"], normalized["num_objects"], (mask_size,) * 2)
        normalized["num_objects"] = len(normalized["masks"])
    else:
        normalized["masks"] = None
    return normalized


def predict(model: ImageModel, embedding: dict, image_hw, resized_hw, prompts: dict, options: PromptedOptions) -> dict:
    """Masks of one image's prompted objects (prompts from :func:`prepare_prompts`).

    Objects with the same number of points are decoded together. Returns ``{"masks": bool (objects, k, H, W),
    "scores": (objects, k), "logits": (objects, k, h, w)}`` (logits clamped as Meta returns them).
    """
    height, width = image_hw
    n = prompts["num_objects"]
    groups: dict[int, list[int]] = {}
    for obj in range(n):
        num_points = 0 if prompts["points"] is None else len(prompts["points"][obj])
        groups.setdefault(num_points, []).append(obj)
    logits = [None] * n
    scores = [None] * n
    for num_points, members in groups.items():
        points = labels = boxes = masks = None
        if num_points:
            xy = torch.as_tensor(np.stack([prompts["points"][o] for o in members]), dtype=torch.float32)
            points = model.to_model_coords(xy, (height, width), resized_hw)
            labels = torch.as_tensor(np.stack([prompts["labels"][o] for o in members]), dtype=torch.long)
        if prompts["boxes"] is not None:
            corners = torch.as_tensor(prompts["boxes"][members], dtype=torch.float32).reshape(-1, 2, 2)
            boxes = model.to_model_coords(corners, (height, width), resized_hw).reshape(-1, 4)
        if prompts["masks"] is not None:
            masks = torch.as_tensor(prompts["masks"][members])
        group_logits, group_scores = model.decode(embedding, points, labels, boxes, masks, options.multimask_output)
        for row, obj in enumerate(members):
            logits[obj], scores[obj] = group_logits[row], group_scores[row]
    logits = torch.stack(logits).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
    scores = torch.stack(scores)
    binary = torch.stack([model.upsample(obj_logits, (height, width), resized_hw) > options.mask_threshold for obj_logits in logits])
    return {"masks": binary.cpu().numpy(), "scores": scores.cpu().numpy(), "logits": logits.cpu().numpy()}
