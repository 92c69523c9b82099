"""Registration of this package's pipelines with ``transformers``' ``PIPELINE_REGISTRY``."""

from __future__ import annotations

from transformers import AutoModelForMaskGeneration
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import logging

from sam2_pipelines.models.loading import DEFAULT_MODEL, AutoModelForVideoObjectTracking


def register_pipelines() -> None:
    """Register ``mask-generation`` (replacing the built-in entry) and ``video-object-tracking``.

    Safe to call more than once. Replacing ``mask-generation`` is deliberate, so the registry's
    "already registered" warning is silenced for that one call.
    """
    from sam2_pipelines.image.pipeline import MaskGenerationPipeline
    from sam2_pipelines.video.pipeline import VideoObjectTrackingPipeline

    registry_logger = logging.get_logger("transformers.pipelines.base")
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)
    try:
        PIPELINE_REGISTRY.register_pipeline(
            "mask-generation",
            pipeline_class=MaskGenerationPipeline,
            pt_model=AutoModelForMaskGeneration,
            default={"pt": (DEFAULT_MODEL, "main")},
            type="multimodal",
        )
        PIPELINE_REGISTRY.register_pipeline(
            "video-object-tracking",
            pipeline_class=VideoObjectTrackingPipeline,
            pt_model=AutoModelForVideoObjectTracking,
            default={"pt": (DEFAULT_MODEL, "main")},
            type="multimodal",
        )
    finally:
        registry_logger.setLevel(level)
