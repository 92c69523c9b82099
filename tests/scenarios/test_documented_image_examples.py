"""Every image scenario of the SAM 2 model doc, through the mask-generation pipeline.

Sections "Automatic Mask Generation with Pipeline", "Basic Image Segmentation", "Batch Inference" and
"Using Previous Masks as Input". The doc's images are replaced by small synthetic ones and its pixel
coordinates are scaled with them; the counts and shapes it states are checked (masks always come back
at each image's own resolution).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam2_pipelines.testing import synthetic_image

#: The doc's truck is 2250x1500 (W x H); ours is 15 times smaller.
TRUCK_SCALE = 1 / 15
#: Groceries and dog stand-ins, with the scale applied to the doc's coordinates on them.
GROCERIES_SCALE = 1 / 4
DOG_SCALE = 1 / 8


def scaled(value, scale):
    """Scale nested (possibly ragged) lists of pixel coordinates."""
    if isinstance(value, (list, tuple)):
        return [scaled(v, scale) for v in value]
    return value * scale


@pytest.fixture(scope="module")
def truck():
    return synthetic_image(100, 150, seed=1)


@pytest.fixture(scope="module")
def groceries():
    return synthetic_image(120, 160, seed=2)


@pytest.fixture(scope="module")
def dog():
    return synthetic_image(96, 128, seed=3)


def test_automatic_mask_generation_with_pipeline(mask_generator, truck, tmp_path):
    path = tmp_path / "truck.png"
    Image.fromarray(truck).save(path)
    outputs = mask_generator(str(path), points_per_batch=64)
    assert len(outputs["masks"]) == len(outputs["scores"]) == len(outputs["records"])
    for mask in outputs["masks"]:
        assert mask.shape == truck.shape[:2]
    loose = mask_generator(str(path), points_per_batch=64, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert len(loose["masks"]) > 0


def test_single_point_click(mask_generator, truck):
    out = mask_generator(truck, points=scaled([[[500, 375]]], TRUCK_SCALE), labels=[[1]])
    masks = out["masks"][0]
    # "Generated 3 masks with shape torch.Size([3, 1500, 2250])"
    assert masks.shape == (3, *truck.shape[:2])
    assert out["scores"].shape == (1, 3)


def test_multiple_points_for_refinement(mask_generator, truck):
    out = mask_generator(truck, points=scaled([[[500, 375], [1125, 625]]], TRUCK_SCALE), labels=[[1, 1]])
    assert out["masks"].shape == (1, 3, *truck.shape[:2])


def test_bounding_box_input(mask_generator, truck):
    out = mask_generator(truck, boxes=scaled([[75, 275, 1725, 850]], TRUCK_SCALE))
    assert out["masks"].shape == (1, 3, *truck.shape[:2])


def test_multiple_objects_segmentation(mask_generator, truck):
    out = mask_generator(truck, points=scaled([[[500, 375]], [[650, 750]]], TRUCK_SCALE), labels=[[1], [1]], multimask_output=False)
    # "Generated masks for 2 objects"
    assert out["masks"].shape[0] == 2
    assert out["masks"].shape == (2, 1, *truck.shape[:2])


@pytest.mark.parametrize("batch_size", [1, 2])
def test_batched_images(mask_generator, truck, dog, batch_size):
    points = [scaled([[[500, 375]]], TRUCK_SCALE), scaled([[[770, 200]]], DOG_SCALE)]
    all_masks = mask_generator([truck, dog], points=points, labels=[[[1]], [[1]]], multimask_output=False, batch_size=batch_size)
    # "Processed 2 images, each with 1 objects"
    assert len(all_masks) == 2
    assert all_masks[0]["masks"].shape == (1, 1, *truck.shape[:2])
    assert all_masks[1]["masks"].shape == (1, 1, *dog.shape[:2])


def test_batched_objects_per_image(mask_generator, truck, dog):
    points = [scaled([[[500, 375]], [[650, 750]]], TRUCK_SCALE), scaled([[[770, 200]]], DOG_SCALE)]
    labels = [[[1], [1]], [[1]]]
    all_masks = mask_generator([truck, dog], points=points, labels=labels, multimask_output=False)
    # "Truck image: 2 objects, Dog image: 1 objects"
    assert [out["masks"].shape[0] for out in all_masks] == [2, 1]
    # each object is the same as when segmented alone
    alone = mask_generator(dog, points=points[1], labels=labels[1], multimask_output=False)
    np.testing.assert_array_equal(alone["masks"], all_masks[1]["masks"])


def test_batched_images_with_batched_objects_and_multiple_points(mask_generator, truck, groceries):
    points = [
        scaled([[[500, 375]], [[650, 750]]], TRUCK_SCALE),
        scaled([[[400, 300]], [[630, 300], [550, 300]]], GROCERIES_SCALE),
    ]
    labels = [[[1], [1]], [[1], [1, 1]]]
    all_masks = mask_generator([truck, groceries], points=points, labels=labels, multimask_output=False, batch_size=2)
    assert all_masks[0]["masks"].shape == (2, 1, *truck.shape[:2])
    assert all_masks[1]["masks"].shape == (2, 1, *groceries.shape[:2])
    assert all_masks[1]["scores"].shape == (2, 1)


def test_batched_bounding_boxes(mask_generator, truck, groceries):
    boxes = [
        scaled([[75, 275, 1725, 850], [425, 600, 700, 875], [1375, 550, 1650, 800], [1240, 675, 1400, 750]], TRUCK_SCALE),
        scaled([[450, 170, 520, 350], [350, 190, 450, 350], [500, 170, 580, 350], [580, 170, 640, 350]], GROCERIES_SCALE),
    ]
    all_masks = mask_generator([truck, groceries], boxes=boxes, multimask_output=False)
    # "Processed 2 images with 4 and 4 boxes respectively"
    assert [out["masks"].shape[0] for out in all_masks] == [4, 4]
    assert all_masks[0]["masks"].shape == (4, 1, *truck.shape[:2])
    assert all_masks[1]["masks"].shape == (4, 1, *groceries.shape[:2])
    # unlike the processor route, different numbers of boxes per image are fine
    uneven = mask_generator([truck, groceries], boxes=[boxes[0], boxes[1][:3]], multimask_output=False)
    assert [out["masks"].shape[0] for out in uneven] == [4, 3]


def test_using_previous_masks_as_input(mask_generator, truck):
    first = mask_generator(truck, points=scaled([[[500, 375]]], TRUCK_SCALE), labels=[[1]])
    # the best mask of each object, as low-resolution logits
    mask_input = first["logits"][np.arange(len(first["logits"])), first["scores"].argmax(axis=1)]
    refined = mask_generator(
        truck,
        points=scaled([[[500, 375], [450, 300]]], TRUCK_SCALE),
        labels=[[1, 1]],
        masks=mask_input,
        multimask_output=False,
    )
    assert refined["masks"].shape == (1, 1, *truck.shape[:2])
    assert refined["logits"].shape == (1, 1, *first["logits"].shape[-2:])
