"""Text prompts with SAM 3 (``Sam3Model``) in ``mask-generation``: every instance of a concept, as records, equal
to what transformers' own SAM 3 API returns (processor, model, ``post_process_instance_segmentation``) on the
same weights; and the errors for text given where it does not apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.image.pipeline import MaskGenerationPipeline


@pytest.fixture(scope="module")
def segmenter(tiny_sam3_model_dir):
    segmenter = pipeline("mask-generation", model=tiny_sam3_model_dir)
    assert isinstance(segmenter, MaskGenerationPipeline) and type(segmenter.model).__name__ == "Sam3Model"
    return segmenter


def transformers_instances(segmenter, image, concept, threshold):
    processor, model = segmenter.processor, segmenter.model
    inputs = processor(images=Image.fromarray(image), text=concept, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return processor.post_process_instance_segmentation(outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]


def test_instances_equal_transformers_sam3(segmenter, image):
    everything = transformers_instances(segmenter, image, "red car", 0.0)
    threshold = float(everything["scores"].median())  # some instances pass, some do not: the filter is exercised
    theirs = transformers_instances(segmenter, image, "red car", threshold)
    assert 0 < len(theirs["scores"]) < len(everything["scores"])
    ours = segmenter(image, text="red car", score_threshold=threshold)
    records = ours["records"]
    assert len(records) == len(theirs["scores"])
    np.testing.assert_allclose(ours["scores"], theirs["scores"].numpy(), rtol=0, atol=1e-6)
    masks = theirs["masks"].bool().numpy()
    assert any(0.0 < m.mean() < 1.0 for m in masks)
    for record, mask in zip(records, masks):
        assert record["concept"] == "red car"
        np.testing.assert_array_equal(record["segmentation"], mask)
        assert record["area"] == int(mask.sum())
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert record["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]


def test_concept_lists_output_modes_and_batches(segmenter, image):
    both = segmenter(image, text=["red car", "dog"], score_threshold=0.0)
    car = segmenter(image, text="red car", score_threshold=0.0)
    dog = segmenter(image, text="dog", score_threshold=0.0)
    assert [r["concept"] for r in both["records"]] == ["red car"] * len(car["records"]) + ["dog"] * len(dog["records"])
    np.testing.assert_array_equal(both["scores"], np.concatenate([car["scores"], dog["scores"]]))
    assert not np.array_equal(car["scores"], dog["scores"])  # the text reaches the model
    rle = segmenter(image, text="dog", score_threshold=0.0, output_mode="coco_rle")
    for record, plain in zip(rle["records"], dog["records"]):
        np.testing.assert_array_equal(decode_rle(record["segmentation"]), plain["segmentation"])
    flipped = image[::-1].copy()
    batch = segmenter([image, flipped], text="dog", score_threshold=0.0, batch_size=2)
    np.testing.assert_array_equal(batch[0]["scores"], dog["scores"])
    np.testing.assert_array_equal(batch[1]["scores"], segmenter(flipped, text="dog", score_threshold=0.0)["scores"])


def test_text_where_it_does_not_apply(segmenter, mask_generator, image):
    with pytest.raises(ValueError, match="text prompts need SAM 3's text model"):
        mask_generator(image, text="dog")
    with pytest.raises(ValueError, match="score_threshold applies to text prompts"):
        mask_generator(image, score_threshold=0.5)
    with pytest.raises(ValueError, match="segments what a text prompt names"):
        segmenter(image)
    with pytest.raises(ValueError, match="cannot be combined"):
        segmenter(image, text="dog", points=[[[10, 10]]], labels=[[1]])
    with pytest.raises(ValueError, match="do not apply to text prompts"):
        segmenter(image, text="dog", points_per_side=4)
    with pytest.raises(ValueError, match="score_threshold must be a number in"):
        segmenter(image, text="dog", score_threshold=2)
    for bad in ("", [], ["dog", ""], 3):
        with pytest.raises(ValueError, match="text must be a non-empty string"):
            segmenter(image, text=bad)
    with pytest.raises(ValueError, match="takes text"):
        segmenter.session(image)


def test_model_and_processor_instances(tiny_sam3_model_dir, segmenter, image):
    """The documented way to load SAM 3 from a checkpoint holding the whole family: the classes, then the pipeline."""
    from transformers import Sam3Model, Sam3Processor

    loaded = pipeline("mask-generation", model=Sam3Model.from_pretrained(tiny_sam3_model_dir), processor=Sam3Processor.from_pretrained(tiny_sam3_model_dir))
    assert isinstance(loaded, MaskGenerationPipeline)
    np.testing.assert_array_equal(loaded(image, text="cat", score_threshold=0.0)["scores"], segmenter(image, text="cat", score_threshold=0.0)["scores"])


def transformers_exemplar_instances(segmenter, image, concept, boxes, labels, threshold):
    """transformers' own SAM 3 API with exemplar boxes: processor(images, text, input_boxes, input_boxes_labels), model, post-processing."""
    processor, model = segmenter.processor, segmenter.model
    inputs = processor(images=image, text=concept, input_boxes=[boxes], input_boxes_labels=[labels], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return processor.post_process_instance_segmentation(outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]


@pytest.mark.parametrize("concept", ["red car", None])
def test_exemplar_boxes_equal_transformers_sam3(segmenter, image, concept):
    boxes, labels = [[10, 20, 60, 70], [80, 10, 150, 100]], [1, 0]
    keywords = {} if concept is None else {"text": concept}
    ours = segmenter(image, exemplars=boxes, exemplar_labels=labels, score_threshold=0.0, **keywords)
    theirs = transformers_exemplar_instances(segmenter, image, concept or "visual", boxes, labels, 0.0)
    assert len(ours["records"]) == len(theirs["scores"]) > 0
    np.testing.assert_allclose(ours["scores"], theirs["scores"].numpy(), rtol=0, atol=1e-6)
    for record, mask in zip(ours["records"], theirs["masks"]):
        assert np.array_equal(record["segmentation"], mask.numpy().astype(bool))
        assert record["concept"] == (concept or "visual")
    if concept is not None:  # the exemplars change the detections
        plain = segmenter(image, text=concept, score_threshold=0.0)["scores"]
        assert len(plain) != len(ours["scores"]) or not np.allclose(plain, ours["scores"])


def test_exemplars_in_input_dicts_and_defaults(segmenter, image):
    boxes = [[10, 20, 60, 70]]
    theirs = transformers_exemplar_instances(segmenter, image, "dog", boxes, [1], 0.0)["scores"].numpy()
    called = segmenter(image, text="dog", exemplars=boxes, exemplar_labels=None, score_threshold=0.0)  # labels default to 1
    row = segmenter([{"image": image, "text": "dog", "exemplars": boxes, "exemplar_labels": [1]}], score_threshold=0.0)[0]
    for result in (called, row):
        np.testing.assert_allclose(result["scores"], theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"text": ["red car", "dog"], "exemplars": [[1, 1, 5, 5]]}, "one concept per call"),
        ({"text": "dog", "exemplars": [[1, 1, 5, 5]], "exemplar_labels": [2]}, "exemplar_labels must hold"),
        ({"text": "dog", "exemplars": [[1, 1, 5, 5]], "exemplar_labels": [1, 0]}, "exemplar_labels must hold"),
        ({"text": "dog", "exemplar_labels": [1]}, "without exemplars"),
        ({"exemplar_labels": [1]}, "without exemplars"),
        ({"text": "dog", "exemplars": [[5, 5, 1, 1]]}, "x0 <= x1"),
        ({"text": "dog", "exemplars": [1, 1, 5, 5]}, "wrap it in a list"),
    ],
)
def test_bad_exemplars_are_refused(segmenter, image, keywords, message):
    with pytest.raises(ValueError, match=message):
        segmenter(image, **keywords)


def test_exemplars_need_the_text_model(tiny_image_model_dir, image):
    generator = pipeline("mask-generation", model=tiny_image_model_dir)
    with pytest.raises(ValueError, match="Sam3Model"):
        generator(image, exemplars=[[1, 1, 5, 5]])
