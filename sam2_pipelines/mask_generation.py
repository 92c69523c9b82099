"""The ``mask-generation`` pipeline for SAM-family image models (automatic and prompted)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import Pipeline
from transformers.image_utils import load_image
from transformers.pipelines.mask_generation import MaskGenerationPipeline as BuiltinMaskGenerationPipeline

from .loading import is_image_model


class MaskGenerationPipeline(Pipeline):
    """Segment an image with a SAM-family model (``Sam2Model``, ``SamModel``, ``SamHQModel``, ``EdgeTamModel``).

    Models this pipeline does not handle are given to the built-in ``transformers`` mask-generation
    pipeline, so ``pipeline("mask-generation", ...)`` keeps working for them.

    Prompted use: ``generator(image, points=[[[x, y]]], labels=[[1]])`` returns
    ``{"masks": bool array (objects, masks_per_object, H, W), "scores": float array}``.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __new__(cls, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if cls is MaskGenerationPipeline and model is not None and not is_image_model(model):
            return BuiltinMaskGenerationPipeline(*args, **kwargs)
        return super().__new__(cls)

    def _sanitize_parameters(self, points=None, labels=None, multimask_output=None, **kwargs):
        preprocess = {}
        if points is not None:
            preprocess["points"] = points
        if labels is not None:
            preprocess["labels"] = labels
        forward = {}
        if multimask_output is not None:
            forward["multimask_output"] = multimask_output
        return preprocess, forward, {}

    def preprocess(self, image, points=None, labels=None):
        """Load the image and encode prompts with the model's processor."""
        image = load_image(image)
        if points is None:
            raise ValueError("points are required")
        inputs = self.processor(images=image, input_points=[points], input_labels=[labels], return_tensors="pt")
        return inputs.to(self.device)

    def _forward(self, model_inputs, multimask_output=True):
        original_sizes = model_inputs.pop("original_sizes")
        outputs = self.model(**model_inputs, multimask_output=multimask_output)
        return {"pred_masks": outputs.pred_masks, "iou_scores": outputs.iou_scores, "original_sizes": original_sizes}

    def postprocess(self, model_outputs):
        """Upsample the low-resolution logits to the image size and binarise them."""
        masks = self.processor.post_process_masks(model_outputs["pred_masks"].cpu(), model_outputs["original_sizes"].cpu())[0]
        return {"masks": masks.numpy(), "scores": model_outputs["iou_scores"][0].float().cpu().numpy()}
