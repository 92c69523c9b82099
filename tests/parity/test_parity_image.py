"""Prompted image segmentation: our mask-generation pipeline vs Meta's ``SAM2ImagePredictor``.

Both run the same random SAM 2.1 hiera-tiny weights (Meta's model loaded by Meta's code, ours converted
from the same ``.pt``). Masks must agree to IoU >= 0.999 and scores to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import mask_iou

pytestmark = [pytest.mark.parity, pytest.mark.slow]

MIN_IOU = 0.999
SCORE_ATOL = 1e-4


@pytest.fixture(scope="module")
def meta_predictor(meta_image_predictor, parity_image):
    """Meta's predictor with the parity image already encoded."""
    with torch.no_grad():
        meta_image_predictor.set_image(parity_image)
    return meta_image_predictor


def meta_predict(predictor, **kwargs):
    with torch.no_grad():
        masks, scores, logits = predictor.predict(**kwargs)
    if masks.ndim == 3:  # a single object: add the object axis
        masks, scores, logits = masks[None], scores[None], logits[None]
    return masks.astype(bool), scores, logits


def assert_same(ours: dict, masks, scores):
    assert ours["masks"].shape == masks.shape
    assert ours["scores"].shape == scores.shape
    np.testing.assert_allclose(ours["scores"], scores, atol=SCORE_ATOL, rtol=0)
    for obj in range(masks.shape[0]):
        for k in range(masks.shape[1]):
            iou = mask_iou(ours["masks"][obj, k], masks[obj, k])
            assert iou >= MIN_IOU, f"object {obj}, mask {k}: IoU {iou:.5f} with Meta's mask"


def test_points_multimask(our_generator, meta_predictor, parity_image):
    """Two objects with one positive click each, three masks per object."""
    points = np.array([[[96.0, 95.0]], [[230.0, 180.0]]])
    labels = np.array([[1], [1]])
    masks, scores, _ = meta_predict(meta_predictor, point_coords=points, point_labels=labels, multimask_output=True)
    ours = our_generator(parity_image, points=points.tolist(), labels=labels.tolist(), multimask_output=True)
    assert ours["masks"].shape == (2, 3, 240, 320)
    assert_same(ours, masks, scores)


def test_points_and_box_single_mask(our_generator, meta_predictor, parity_image):
    """One object: a positive and a negative click inside a box, one mask."""
    points = np.array([[[220.0, 170.0], [60.0, 60.0]]])
    labels = np.array([[1, 0]])
    box = np.array([[170.0, 130.0, 290.0, 220.0]])
    masks, scores, _ = meta_predict(
        meta_predictor, point_coords=points, point_labels=labels, box=box, multimask_output=False
    )
    ours = our_generator(
        parity_image, points=points.tolist(), labels=labels.tolist(), boxes=box.tolist(), multimask_output=False
    )
    assert ours["masks"].shape == (1, 1, 240, 320)
    assert_same(ours, masks, scores)


def test_boxes_and_mask_prompt(our_generator, meta_predictor, parity_image):
    """Two box-only objects (multimask on), then the first one refined with its own logits as mask prompt."""
    boxes = np.array([[40.0, 40.0, 150.0, 150.0], [170.0, 130.0, 290.0, 220.0]])
    masks, scores, logits = meta_predict(meta_predictor, box=boxes, multimask_output=True)
    ours = our_generator(parity_image, boxes=boxes.tolist(), multimask_output=True)
    assert_same(ours, masks, scores)
    np.testing.assert_allclose(ours["logits"], logits, atol=1e-3, rtol=0)

    best = logits[0, int(np.argmax(scores[0]))][None]  # (1, 256, 256) low-resolution logits
    point = np.array([[[96.0, 95.0]]])
    masks, scores, _ = meta_predict(
        meta_predictor, point_coords=point, point_labels=np.array([[1]]), mask_input=best, multimask_output=False
    )
    ours = our_generator(parity_image, points=point.tolist(), labels=[[1]], masks=best, multimask_output=False)
    assert_same(ours, masks, scores)
