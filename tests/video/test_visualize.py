"""Overlays: palette, colours per id, fills, outlines, id labels, prompt markers, records and video frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sam2_pipelines.core.masks import encode_rle
from sam2_pipelines.io.visualize import (
    color_for,
    draw_labels,
    draw_prompts,
    mask_centers,
    overlay_frame,
    overlay_masks,
    overlay_records,
    overlay_video,
    palette,
)


def _rect(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_palette_is_the_davis_palette():
    colors = palette()
    assert colors.shape == (256, 3) and colors.dtype == np.uint8
    assert colors[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert len({tuple(c) for c in colors}) == 256
    ids = range(1, 256)
    assert len({tuple(color_for(i)) for i in ids}) == 255
    assert all(color_for(i).any() for i in ids)  # never black, the background colour
    assert np.array_equal(color_for(256), color_for(1))  # wraps around, skipping black


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    alpha=st.floats(0.0, 1.0),
    count=st.integers(0, 4),
)
def test_overlay_changes_only_masked_pixels(seed, alpha, count):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    masks = rng.random((count, 24, 32)) > 0.7
    original = image.copy()
    out = overlay_masks(image, list(masks), alpha=alpha, outline=False)
    covered = masks.any(axis=0) if count else np.zeros((24, 32), bool)
    assert np.array_equal(out[~covered], image[~covered])
    if count:
        last = masks[-1]
        below = overlay_masks(image, list(masks[:-1]), alpha=alpha, outline=False)
        expected = below[last].astype(np.float64) * (1 - alpha) + color_for(count).astype(np.float64) * alpha
        assert np.abs(out[last].astype(np.float64) - expected).max() <= 1.0  # the last mask is drawn on top
    assert np.array_equal(image, original)  # the input is not modified


def test_overlay_outline_and_rle_input():
    image = np.full((20, 30, 3), 10, dtype=np.uint8)
    mask = _rect((20, 30), 5, 15, 10, 20)
    out = overlay_masks(image, [mask], obj_ids=[3], alpha=0.5)
    assert np.array_equal(out[5, 12], color_for(3))  # border pixel: full colour
    inner = ((10 * 0.5) + color_for(3).astype(np.float32) * 0.5).astype(np.uint8)
    assert np.array_equal(out[10, 15], inner)
    assert np.array_equal(out[0, 0], image[0, 0])
    assert np.array_equal(overlay_masks(image, [encode_rle(mask)], obj_ids=[3]), out)
    assert np.array_equal(overlay_masks(image, [mask[None]], obj_ids=[3]), out)  # (1, H, W) masks


def test_overlay_errors():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="RGB"):
        overlay_masks(np.zeros((10, 10)), [])
    with pytest.raises(ValueError, match="does not match"):
        overlay_masks(image, [np.zeros((5, 5), bool)])
    with pytest.raises(ValueError, match="obj_ids"):
        overlay_masks(image, [np.zeros((10, 10), bool)], obj_ids=[1, 2])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        overlay_masks(image, [np.zeros((2, 10, 10), bool)])


def test_mask_centers_are_inside_the_masks():
    ring = _rect((40, 40), 5, 35, 5, 35) & ~_rect((40, 40), 12, 28, 12, 28)
    square = _rect((40, 40), 20, 30, 2, 12)
    centers = mask_centers([ring, square, np.zeros((40, 40), bool)])
    assert centers[2] is None
    for (x, y), mask in zip(centers[:2], (ring, square)):
        assert mask[y, x]
    x, y = centers[1]
    assert abs(x - 7) <= 1 and abs(y - 25) <= 1


def test_labels_are_written_in_the_object_colour():
    image = np.zeros((60, 80, 3), np.uint8)
    masks = [_rect((60, 80), 10, 50, 5, 35), np.zeros((60, 80), bool)]
    out = draw_labels(image, masks, obj_ids=[7, 9])
    x, y = mask_centers(masks[:1])[0]
    patch = out[y - 3 : y + 4, x - 3 : x + 4].reshape(-1, 3)
    assert any(np.array_equal(p, color_for(7)) for p in patch)  # label box
    assert (patch > 170).all(axis=1).any()  # white (anti-aliased) text
    changed = np.any(out != image, axis=-1)
    assert changed[masks[0]].any() and not changed[:, 40:].any()  # nothing for the empty mask
    with_labels = overlay_masks(image, masks, obj_ids=[7, 9], labels=True)
    assert np.array_equal(with_labels, draw_labels(overlay_masks(image, masks, obj_ids=[7, 9]), masks, [7, 9]))


def test_prompt_markers():
    image = np.zeros((50, 50, 3), np.uint8)
    out = draw_prompts(image, points=[(10, 10), (40, 40)], labels=[1, 0], boxes=[(20, 5, 30, 15)])
    assert out[10, 10].tolist() == [0, 220, 0]
    assert out[40, 40].tolist() == [230, 0, 0]
    assert out[5, 25].tolist() == [255, 255, 255]
    assert np.array_equal(draw_prompts(image), image)
    with pytest.raises(ValueError, match="labels"):
        draw_prompts(image, points=[(1, 1)], labels=[1, 0])


def test_records_draw_large_masks_first():
    image = np.zeros((30, 30, 3), np.uint8)
    small, large = _rect((30, 30), 10, 15, 10, 15), _rect((30, 30), 0, 30, 0, 30)
    records = [{"segmentation": encode_rle(small), "area": 25}, {"segmentation": large, "area": 900}]
    out = overlay_records(image, records, outline=False)
    assert np.array_equal(out[12, 12], (color_for(1).astype(np.float32) * 0.5 + (color_for(2).astype(np.float32) * 0.5).astype(np.uint8) * 0.5).astype(np.uint8))
    assert np.array_equal(out[0, 0], (color_for(2).astype(np.float32) * 0.5).astype(np.uint8))


def test_frame_overlays_use_object_ids():
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    mask = _rect((16, 16), 4, 12, 4, 12)
    results = [
        {"frame_idx": 0, "object_ids": [5], "masks": mask[None, None]},
        {"frame_idx": 2, "object_ids": [5, 6], "masks": [encode_rle(mask), encode_rle(np.zeros_like(mask))]},
    ]
    out = list(overlay_video(iter(frames), results, labels=False))
    assert len(out) == 3
    assert np.array_equal(out[0], overlay_masks(frames[0], [mask], obj_ids=[5]))
    assert np.array_equal(out[1], frames[1])  # no result for frame 1
    assert np.array_equal(out[2], out[0])
    assert np.array_equal(overlay_frame(frames[0], results[0], labels=False), out[0])
    with pytest.raises(ValueError, match="object_ids"):
        overlay_frame(frames[0], {"masks": []})
