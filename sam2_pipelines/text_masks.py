"""Text prompts: every instance of a concept ("person", "red car") in an image, with SAM 3 (``Sam3Model``).

The image is encoded once; each concept is then detected and segmented on those features, exactly as
transformers' own SAM 3 API does it (processor, ``Sam3Model`` forward, ``post_process_instance_segmentation``).
Results come as records in the automatic mode's format (``segmentation`` in the chosen ``output_mode``,
``area``, ``bbox`` XYWH) with the instance's ``score`` and its ``concept``.
"""

from __future__ import annotations

import math

import numpy as np
from . import amg
from .automatic_masks import result_of
from .masks import area_rle, batched_mask_to_box, encode_rle_batch, rle_in_format

#: Model classes that segment by text.
TEXT_MODEL_CLASS_NAMES = ("Sam3Model",)


def is_text_model(model) -> bool:
    """True for models that take text prompts (SAM 3's ``Sam3Model``)."""
    return type(model).__name__ in TEXT_MODEL_CLASS_NAMES


def check_concepts(text) -> list[str]:
    """``text`` (a string or a list of strings) -> the list of concepts; ValueError if empty or not text."""
    concepts = [text] if isinstance(text, str) else text
    if not isinstance(concepts, (list, tuple)) or not concepts or not all(isinstance(c, str) and c.strip() for c in concepts):
        raise ValueError(f"text must be a non-empty string or a non-empty list of non-empty strings (one per concept), got {text!r}")
    return [c.strip() for c in concepts]


def segment_concepts(model, processor, image: np.ndarray, concepts: list[str], score_threshold: float, mask_threshold: float, output_mode: str) -> dict:
    """Every instance of each concept in ``image`` (``(H, W, 3)`` uint8) scoring above ``score_threshold``.

    ``mask_threshold`` is on the mask logits (0.0: probability 0.5, transformers' and Meta's default). Returns
    ``{"masks": [...], "scores": float32 array, "records": [...]}``, instances of the first concept first,
    each concept's instances in the model's order.
    """
    height, width = image.shape[:2]
    device = model.device
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"].to(device, model.dtype)
    vision_embeds = model.get_vision_features(pixel_values=pixel_values)
    records = []
    for concept in concepts:
        text = processor(text=concept, return_tensors="pt")
        outputs = model(vision_embeds=vision_embeds, input_ids=text["input_ids"].to(device), attention_mask=text["attention_mask"].to(device))
        found = processor.post_process_instance_segmentation(
            outputs, threshold=score_threshold, mask_threshold=_probability(mask_threshold), target_sizes=[(height, width)]
        )[0]
        masks = found["masks"].bool().cpu()
        for mask, rle, box, score in zip(masks, encode_rle_batch(masks), batched_mask_to_box(masks), found["scores"].tolist()):
            records.append(
                {
                    "segmentation": rle_in_format(rle, output_mode, mask.numpy()),
                    "area": area_rle(rle),
                    "bbox": amg.box_xyxy_to_xywh(box.float()),
                    "score": float(score),
                    "concept": concept,
                }
            )
    return result_of(records, "score")


def _probability(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))
