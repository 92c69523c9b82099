"""sam2-pipelines: SAM 2 as first-class Hugging Face pipelines.

Importing this package registers two tasks with ``transformers``' ``PIPELINE_REGISTRY``:

* ``"mask-generation"`` -> :class:`MaskGenerationPipeline` (automatic and prompted masks for SAM-family
  image models; other models keep the built-in ``transformers`` pipeline);
* ``"video-object-tracking"`` -> :class:`VideoObjectTrackingPipeline` (prompted tracking with
  ``Sam2VideoModel`` / ``EdgeTamVideoModel``).

Example::

    import sam2_pipelines
    from transformers import pipeline

    generator = pipeline("mask-generation", model="facebook/sam2.1-hiera-tiny")
    tracker = pipeline("video-object-tracking", model="facebook/sam2.1-hiera-tiny")
"""

from __future__ import annotations

from sam2_pipelines.models.convert import convert_checkpoint, load_checkpoint
from sam2_pipelines.image.session import ImageSession
from sam2_pipelines.models.loading import AutoModelForVideoObjectTracking, pipeline
from sam2_pipelines.image.pipeline import MaskGenerationPipeline
from sam2_pipelines.registration import register_pipelines
from sam2_pipelines.video.session import TrackingSession
from sam2_pipelines.video.pipeline import VideoObjectTrackingPipeline

__version__ = "0.1.0"

register_pipelines()

__all__ = [
    "AutoModelForVideoObjectTracking",
    "ImageSession",
    "MaskGenerationPipeline",
    "VideoObjectTrackingPipeline",
    "convert_checkpoint",
    "load_checkpoint",
    "pipeline",
    "register_pipelines",
    "TrackingSession",
    "__version__",
]
