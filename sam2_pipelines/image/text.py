"""Text prompts: every instance of a concept ("person", "red car") in an image, with SAM 3 (``Sam3Model``).

The image is encoded once; each concept is then detected and segmented on those features, exactly as
transformers' own SAM 3 API does it (processor, ``Sam3Model`` forward, ``post_process_instance_segmentation``).
Results come as records in the automatic mode's format (``segmentation`` in the chosen ``output_mode``,
``area``, ``bbox`` XYWH) with the instance's ``score`` and its ``concept``.
"""

from __future__ import annotations

import math

import numpy as np

from sam2_pipelines.image import amg
from sam2_pipelines.models import families
from sam2_pipelines.image.automatic import result_of
from sam2_pipelines.core.masks import area_rle, batched_mask_to_box, encode_rle_batch, rle_in_format
from sam2_pipelines.core.prompts import normalize_boxes

#: Keys of exemplar boxes in a call or an input dict: boxes around examples of the concept, and 1 (an example of
#: it) or 0 (not one) per box.
EXEMPLAR_KEYS = ("exemplars", "exemplar_labels")
#: The concept SAM 3 segments from exemplar boxes alone (transformers' processor names it so).
VISUAL_CONCEPT = "visual"


def is_text_model(model) -> bool:
    """True for models that take text prompts (SAM 3's ``Sam3Model``)."""
    return families.is_class(model, "image", text=True)


def check_concepts(text) -> list[str]:
    """``text`` (a string or a list of strings) -> the list of concepts; ValueError if empty or not text."""
    concepts = [text] if isinstance(text, str) else text
    if not isinstance(concepts, (list, tuple)) or not concepts or not all(isinstance(c, str) and c.strip() for c in concepts):
        raise ValueError(f"text must be a non-empty string or a non-empty list of non-empty strings (one per concept), got {text!r}")
    return [c.strip() for c in concepts]


def _text_positions(config) -> int | None:
    """Positions of the text encoder found in a SAM 3 config (its ``text_config``, also inside sub-configs)."""
    text_config = getattr(config, "text_config", None)
    if text_config is not None and getattr(text_config, "max_position_embeddings", None):
        return int(text_config.max_position_embeddings)
    for name in ("detector_config", "vision_config"):
        sub = getattr(config, name, None)
        found = _text_positions(sub) if sub is not None and sub is not config else None
        if found:
            return found
    return None


def check_text_length(concepts: list[str], processor, model) -> None:
    """Refuse a concept longer than the text encoder reads (before any image or frame is encoded)."""
    tokenizer = getattr(processor, "tokenizer", None)
    limit = _text_positions(model.config)
    if tokenizer is None or limit is None:
        return
    for concept in concepts:
        tokens = len(tokenizer(concept)["input_ids"])
        if tokens > limit:
            raise ValueError(
                f"the concept {concept!r} is {tokens} tokens long, but SAM 3's text encoder reads at most {limit} tokens "
                "(start and end tokens included): give a shorter concept, e.g. the object's name"
            )


def text_with_exemplars(text, exemplars, labels):
    """The text an input asks for: ``text``, or :data:`VISUAL_CONCEPT` when exemplar boxes come without text (SAM 3
    then segments what the boxes show); ``None`` without either. Exemplar labels without boxes are a ValueError."""
    if text is None and exemplars is None:
        check_exemplars(None, labels, None, None)
    return VISUAL_CONCEPT if text is None and exemplars is not None else text


def check_exemplars(exemplars, labels, concepts: list[str] | None, image_size) -> dict | None:
    """Exemplar boxes of one image: ``exemplars`` ``[[x0, y0, x1, y1], ...]`` in pixels and ``labels`` (1: an example of
    the concept, 0: not one; default all 1) -> ``{"boxes": list, "labels": list}``, or ``None`` without exemplars.

    Exemplars refine one concept (or stand alone: SAM 3 then segments what the boxes show); with several concepts
    it would be unclear which one they show, so that is a ValueError.
    """
    if exemplars is None:
        if labels is not None:
            raise ValueError("exemplar_labels given without exemplars: give the exemplar boxes too (exemplars=[[x0, y0, x1, y1], ...])")
        return None
    if concepts is not None and len(concepts) > 1:
        raise ValueError(f"exemplar boxes show examples of one concept; got {len(concepts)} concepts ({', '.join(concepts)}): give one concept per call")
    boxes = normalize_boxes(exemplars, image_size)
    if labels is None:
        labels = [1] * len(boxes)
    array = np.asarray(labels)
    if array.dtype.kind == "b" or (array.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in array.flat)):
        raise ValueError(f"exemplar_labels must hold the numbers 1 (an example of the concept) or 0 (not one), not booleans; got {labels!r}")
    if array.shape != (len(boxes),) or not np.isin(array, (0, 1)).all():
        raise ValueError(f"exemplar_labels must hold one 1 (an example of the concept) or 0 (not one) per exemplar box ({len(boxes)}), got {labels!r}")
    return {"boxes": boxes.tolist(), "labels": [int(v) for v in array]}


def segment_concepts(model, processor, image: np.ndarray, concepts: list[str], score_threshold: float, mask_threshold: float, output_mode: str, exemplars: dict | None = None) -> dict:
    """Every instance of each concept in ``image`` (``(H, W, 3)`` uint8) scoring above ``score_threshold``.

    ``mask_threshold`` is on the mask logits (0.0: probability 0.5, transformers' and Meta's default).
    ``exemplars`` (:func:`check_exemplars`) adds example boxes to the one concept. Returns
    ``{"masks": [...], "scores": float32 array, "records": [...]}``, instances of the first concept first,
    each concept's instances in the model's order.
    """
    height, width = image.shape[:2]
    device = model.device
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"].to(device, model.dtype)
    vision_embeds = model.get_vision_features(pixel_values=pixel_values)
    records = []
    for concept in concepts:
        boxes = {}
        if exemplars is not None:
            boxes = dict(input_boxes=[exemplars["boxes"]], input_boxes_labels=[exemplars["labels"]], original_sizes=[[height, width]])
        text = processor(text=concept, return_tensors="pt", **boxes)
        extra = {key: text[key].to(device) for key in ("input_boxes", "input_boxes_labels") if key in text}
        outputs = model(vision_embeds=vision_embeds, input_ids=text["input_ids"].to(device), attention_mask=text["attention_mask"].to(device), **extra)
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
