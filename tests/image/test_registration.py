"""Both task strings resolve to this package's classes and run end to end on tiny checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from sam2_pipelines import MaskGenerationPipeline, VideoObjectTrackingPipeline


def test_tasks_are_registered():
    tasks = PIPELINE_REGISTRY.get_supported_tasks()
    assert "mask-generation" in tasks and "video-object-tracking" in tasks
    assert PIPELINE_REGISTRY.supported_tasks["mask-generation"]["impl"] is MaskGenerationPipeline
    assert PIPELINE_REGISTRY.supported_tasks["video-object-tracking"]["impl"] is VideoObjectTrackingPipeline


@pytest.mark.parametrize("model_fixture", ["tiny_image_model_dir", "tiny_edgetam_model_dir"])
def test_mask_generation_resolves_and_runs(request, model_fixture, image):
    generator = pipeline("mask-generation", model=request.getfixturevalue(model_fixture))
    assert type(generator) is MaskGenerationPipeline
    out = generator(Image.fromarray(image), points=[[[50, 60]]], labels=[[1]])
    masks = np.asarray(out["masks"])
    assert masks.shape[-2:] == image.shape[:2]


@pytest.mark.parametrize("model_fixture", ["tiny_video_model_dir", "tiny_edgetam_video_model_dir"])
def test_video_tracking_resolves_and_runs(request, model_fixture, frames):
    tracker = pipeline("video-object-tracking", model=request.getfixturevalue(model_fixture))
    assert type(tracker) is VideoObjectTrackingPipeline
    results = list(tracker(list(frames), prompts=[{"frame": 0, "obj_id": 1, "points": [[40, 48]], "labels": [1]}]))
    assert [r["frame_idx"] for r in results] == list(range(len(frames)))
    assert np.asarray(results[0]["masks"]).shape[-2:] == frames.shape[1:3]


def test_explicit_pipeline_class_still_works(tiny_image_model_dir, image):
    class Custom(MaskGenerationPipeline):
        pass

    generator = pipeline("mask-generation", model=tiny_image_model_dir, pipeline_class=Custom)
    assert type(generator) is Custom


def test_unhandled_models_keep_the_builtin_pipeline(tiny_image_model_dir):
    """A model class outside our list (here a user subclass) is served by transformers' own pipeline."""
    from transformers import AutoImageProcessor, AutoProcessor, Sam2Model
    from transformers.pipelines.mask_generation import MaskGenerationPipeline as Builtin

    class SomeOtherSamModel(Sam2Model):
        pass

    model = SomeOtherSamModel.from_pretrained(tiny_image_model_dir)
    image_processor = AutoImageProcessor.from_pretrained(tiny_image_model_dir)
    processor = AutoProcessor.from_pretrained(tiny_image_model_dir)
    generator = pipeline("mask-generation", model=model, image_processor=image_processor, processor=processor)
    assert type(generator) is Builtin


@pytest.mark.parametrize("which", ["sam2", "sam3-tracker"])
def test_image_checkpoint_is_refused_by_video_tracking(which, tiny_image_model_dir, tiny_sam3_tracker_model_dir):
    """An image-only checkpoint has no memory weights: refused at creation with what to use instead."""
    from transformers import pipeline

    directory = tiny_image_model_dir if which == "sam2" else tiny_sam3_tracker_model_dir
    with pytest.raises(ValueError, match="image-only checkpoint.*mask-generation.*--kind video"):
        pipeline("video-object-tracking", model=directory)
