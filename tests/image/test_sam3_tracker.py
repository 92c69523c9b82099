"""SAM 3 tracker models (``Sam3TrackerModel``) in the ``mask-generation`` pipeline: prompted masks equal those of
transformers' own SAM 3 tracker API (processor + model + ``post_process_masks``) on the same weights, and
automatic mode, image sessions and batches work as for SAM 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from sam2_pipelines.image.session import ImageSession
from sam2_pipelines.image.pipeline import MaskGenerationPipeline


@pytest.fixture(scope="module")
def generator(tiny_sam3_tracker_model_dir):
    generator = pipeline("mask-generation", model=tiny_sam3_tracker_model_dir)
    assert isinstance(generator, MaskGenerationPipeline) and type(generator.model).__name__ == "Sam3TrackerModel"
    return generator


def transformers_masks(generator, image, multimask=True, **prompts):
    """Masks and scores from transformers' SAM 3 tracker API: processor, model forward, ``post_process_masks``."""
    processor, model = generator.processor, generator.model
    inputs = processor(images=Image.fromarray(image), return_tensors="pt", **prompts)
    with torch.no_grad():
        out = model(**inputs, multimask_output=multimask)
    masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0]
    return masks.numpy(), out.iou_scores[0].numpy()


def test_pixels_are_the_processors(generator, image):
    ours, resized = generator.image_model.pixel_values([image])
    theirs = generator.processor(images=Image.fromarray(image), return_tensors="pt")["pixel_values"]
    assert resized == [(112, 112)]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", ["points", "boxes", "points+boxes"])
def test_prompted_masks_equal_transformers_sam3_tracker(generator, image, prompt, multimask):
    points = [[[40.0, 30.0], [120.0, 90.0]], [[100.0, 60.0], [20.0, 100.0]]]
    labels = [[1, 0], [1, 1]]
    boxes = [[10.0, 20.0, 90.0, 100.0], [60.0, 5.0, 150.0, 70.0]]
    ours_prompts, their_prompts = {}, {}
    if "points" in prompt:
        ours_prompts.update(points=points, labels=labels)
        their_prompts.update(input_points=[points], input_labels=[labels])
    if "boxes" in prompt:
        ours_prompts["boxes"] = boxes
        their_prompts["input_boxes"] = [boxes]
    ours = generator(image, multimask_output=multimask, **ours_prompts)
    masks, scores = transformers_masks(generator, image, multimask, **their_prompts)
    assert ours["masks"].shape == masks.shape == (2, 3 if multimask else 1, 120, 160)
    assert 0.02 < masks.mean() < 0.98  # neither empty nor full: the comparison can fail
    np.testing.assert_array_equal(ours["masks"], masks)
    np.testing.assert_allclose(ours["scores"], scores, rtol=0, atol=1e-5)


def test_automatic_mode_session_and_batch(generator, image):
    options = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    result = generator(image, **options)
    assert result["records"]
    for record in result["records"]:
        mask = record["segmentation"]
        assert mask.shape == image.shape[:2] and record["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
    with generator.session(image) as session:
        assert isinstance(session, ImageSession)
        again = session.generate(**options)
        click = session.predict(points=[[[40, 30]]], labels=[[1]])
    assert [r["predicted_iou"] for r in again["records"]] == [r["predicted_iou"] for r in result["records"]]
    np.testing.assert_array_equal(click["masks"], generator(image, points=[[[40, 30]]], labels=[[1]])["masks"])
    batch = generator([image, image[::-1].copy()], **options, batch_size=2)
    assert len(batch) == 2
    assert [r["predicted_iou"] for r in batch[0]["records"]] == [r["predicted_iou"] for r in result["records"]]


def test_model_and_processor_instances(tiny_sam3_tracker_model_dir, generator, image):
    """The documented way to load the tracker of a SAM 3 checkpoint: the classes, then the pipeline."""
    from transformers import Sam3TrackerModel, Sam3TrackerProcessor

    model = Sam3TrackerModel.from_pretrained(tiny_sam3_tracker_model_dir)
    processor = Sam3TrackerProcessor.from_pretrained(tiny_sam3_tracker_model_dir)
    loaded = pipeline("mask-generation", model=model, processor=processor)
    assert isinstance(loaded, MaskGenerationPipeline)
    prompts = dict(points=[[[40, 30]]], labels=[[1]])
    np.testing.assert_array_equal(loaded(image, **prompts)["masks"], generator(image, **prompts)["masks"])
