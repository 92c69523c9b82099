"""Prompt validation and normalisation (sam2_pipelines.core.prompts): image prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_pipelines.core.prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    NEGATIVE,
    PADDING,
    POSITIVE,
    check_image_size,
    normalize_box,
    normalize_boxes,
    normalize_image_prompts,
    normalize_mask_logits,
    normalize_points,
    split_per_image,
)

SIZE = (120, 160)  # (height, width)


def test_normalize_points_layouts():
    xy, labels = normalize_points([[10, 20], [30, 40]], [1, 0], SIZE)
    assert xy.dtype == np.float32 and xy.shape == (2, 2) and xy.tolist() == [[10, 20], [30, 40]]
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0]
    xy, labels = normalize_points([5, 6], 1, SIZE)
    assert xy.shape == (1, 2) and labels.tolist() == [1]
    xy, labels = normalize_points(torch.tensor([[1.5, 2.5]]), np.array([1]), SIZE)
    assert xy.tolist() == [[1.5, 2.5]]


def test_points_on_the_border_are_inside():
    normalize_points([[0, 0], [160, 120]], [1, 1], SIZE)


@pytest.mark.parametrize(
    "points, labels, message",
    [
        ([[161, 10]], [1], "outside the image"),
        ([[10, -1]], [1], "outside the image"),
        ([[10, 121]], [1], "outside the image"),
        ([[10, 20, 30]], [1], r"\(num_points, 2\)"),
        ([], [], r"\(num_points, 2\)"),
        ([[10, 20]], [1, 1], "one label per point"),
        ([[10, 20]], [2], r"\[0, 1\]"),
        ([[10, 20]], [0.5], r"\[0, 1\]"),
        ([[10, 20]], None, "labels are required"),
        ([[10, float("nan")]], [1], "NaN"),
        ([["a", 2]], [1], "numbers"),
        ([[1, 2], [3]], [1, 1], "rectangular"),
    ],
)
def test_bad_points_raise(points, labels, message):
    with pytest.raises(ValueError, match=message):
        normalize_points(points, labels, SIZE)


def test_extended_labels_when_allowed():
    _, labels = normalize_points([[1, 1], [2, 2], [3, 3]], [-1, 2, 3], SIZE, allowed_labels=(PADDING, NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT))
    assert labels.tolist() == [-1, 2, 3]


def test_boxes():
    assert normalize_box([1, 2, 30, 40], SIZE).tolist() == [1, 2, 30, 40]
    boxes = normalize_boxes([[1, 2, 30, 40], [0, 0, 160, 120]], SIZE)
    assert boxes.shape == (2, 4) and boxes.dtype == np.float32
    with pytest.raises(ValueError, match="x0 <= x1"):
        normalize_box([30, 2, 1, 40], SIZE)
    with pytest.raises(ValueError, match="outside the image"):
        normalize_box([0, 0, 161, 10], SIZE)
    with pytest.raises(ValueError, match="4 numbers"):
        normalize_box([0, 0, 10], SIZE)
    with pytest.raises(ValueError, match="wrap it in a list"):
        normalize_boxes([0, 0, 10, 10], SIZE)
    with pytest.raises(ValueError, match=r"\(num_objects, 4\)"):
        normalize_boxes([[[0, 0, 10, 10]]], SIZE)


def test_image_prompts_per_object():
    out = normalize_image_prompts([[[10, 10]], [[20, 20], [30, 30]]], [[1], [1, 0]], image_size=SIZE)
    assert out["num_objects"] == 2
    assert [p.shape for p in out["points"]] == [(1, 2), (2, 2)]
    assert out["boxes"] is None
    out = normalize_image_prompts(boxes=[[0, 0, 10, 10]] * 3, image_size=SIZE)
    assert out["num_objects"] == 3 and out["points"] is None
    out = normalize_image_prompts([[[5, 5]], [[6, 6]]], [[1], [1]], [[0, 0, 10, 10], [1, 1, 20, 20]], SIZE)
    assert out["num_objects"] == 2 and out["boxes"].shape == (2, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "at least one"),
        (dict(labels=[[1]]), "without points"),
        (dict(points=[[[1, 1]]]), "labels are required"),
        (dict(points=[[[1, 1]], [[2, 2]]], labels=[[1]]), "same number of objects"),
        (dict(points=[], labels=[]), "at least one object"),
        (dict(points=[[[1, 1]]], labels=[[1]], boxes=[[0, 0, 1, 1], [0, 0, 2, 2]]), "different numbers of objects"),
        (dict(points=7, labels=[[1]]), "one entry per object"),
    ],
)
def test_bad_image_prompts_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        normalize_image_prompts(image_size=SIZE, **kwargs)


def test_mask_logits():
    logits = np.zeros((2, 64, 64), dtype=np.float32)
    assert normalize_mask_logits(logits, 2, (64, 64)).shape == (2, 64, 64)
    assert normalize_mask_logits(logits[:, None], None, (64, 64)).shape == (2, 64, 64)
    with pytest.raises(ValueError, match="ONE"):
        normalize_mask_logits(np.zeros((2, 3, 64, 64)), 2, (64, 64))
    with pytest.raises(ValueError, match="wrap it in a list"):
        normalize_mask_logits(np.zeros((64, 64)), 1, (64, 64))
    with pytest.raises(ValueError, match=r"\(objects, 64, 64\)"):
        normalize_mask_logits(np.zeros((2, 32, 32)), 2, (64, 64))
    with pytest.raises(ValueError, match="describe 3"):
        normalize_mask_logits(logits, 3, (64, 64))


def test_split_per_image_and_sizes():
    assert split_per_image(None, 2, "points") == [None, None]
    assert split_per_image([1, 2], 2, "points") == [1, 2]
    with pytest.raises(ValueError, match="one entry per image"):
        split_per_image([1], 2, "points")
    assert check_image_size(np.array([3, 4])) == (3, 4)
    with pytest.raises(ValueError, match="positive"):
        check_image_size((0, 4))
