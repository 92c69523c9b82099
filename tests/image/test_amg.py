"""Pure AMG building blocks (sam2_pipelines.image.amg) and mask helpers: their own properties, and equality with Meta's
sam2.utils.amg (those comparisons need the reference extra and skip without it; the rest always run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sam2_pipelines.image import amg
from sam2_pipelines.core.masks import (
    batched_mask_to_box,
    decode_rle,
    encode_rle_batch,
    remove_small_regions,
    rle_to_uncompressed,
)

@pytest.fixture(scope="module")
def meta_amg():
    """Meta's ``sam2.utils.amg`` (the reference extra)."""
    return pytest.importorskip("sam2.utils.amg")


@pytest.mark.parametrize("n", [1, 2, 4, 32])
def test_point_grid_is_centred_cells(n):
    ours = amg.build_point_grid(n)
    assert ours.shape == (n * n, 2)
    assert np.all((ours > 0) & (ours < 1))
    np.testing.assert_allclose(np.unique(ours[:, 0]), (np.arange(n) + 0.5) / n)


@pytest.mark.parametrize("n", [1, 2, 4, 32])
def test_point_grid_matches_meta(n, meta_amg):
    np.testing.assert_array_equal(amg.build_point_grid(n), meta_amg.build_point_grid(n))


def test_layer_grids_downscale():
    grids = amg.build_all_layer_point_grids(16, 2, 2)
    assert [len(g) for g in grids] == [256, 64, 16]


def test_layer_grids_match_meta(meta_amg):
    for ours, ref in zip(amg.build_all_layer_point_grids(16, 2, 2), meta_amg.build_all_layer_point_grids(16, 2, 2), strict=True):
        np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("size", [(120, 160), (1500, 2250), (37, 301)])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_crop_boxes_match_meta(size, layers, meta_amg):
    boxes, idx = amg.generate_crop_boxes(size, layers, 512 / 1500)
    assert (boxes, idx) == meta_amg.generate_crop_boxes(size, layers, 512 / 1500)
    assert boxes[0] == [0, 0, size[1], size[0]]
    assert len(boxes) == sum(4**i for i in range(layers + 1))
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= size[1] and 0 <= y0 < y1 <= size[0]


def test_batch_ranges_cover_everything_once():
    parts = amg.batch_ranges(10, 4)
    assert [(p.start, p.stop) for p in parts] == [(0, 4), (4, 8), (8, 10)]
    assert amg.batch_ranges(0, 4) == []


def test_stability_score_matches_meta(meta_amg):
    torch.manual_seed(0)
    logits = torch.randn(6, 40, 50) * 4
    for threshold, offset in [(0.0, 1.0), (0.5, 0.25), (-1.0, 2.0)]:
        ours = amg.calculate_stability_score(logits, threshold, offset)
        torch.testing.assert_close(ours, meta_amg.calculate_stability_score(logits, threshold, offset))
        assert torch.all((ours >= 0) & (ours <= 1))


def test_stability_score_is_one_for_saturated_logits():
    logits = torch.full((1, 10, 10), -50.0)
    logits[0, 2:5, 2:5] = 50.0
    assert amg.calculate_stability_score(logits, 0.0, 1.0).item() == 1.0


def test_edge_filter_matches_meta(meta_amg):
    crop_box = [100, 50, 300, 250]
    orig_box = [0, 0, 300, 250]
    boxes = torch.tensor([[5, 5, 50, 50], [0, 0, 10, 10], [100, 100, 199, 199], [150, 10, 190, 199], [30, 30, 200, 60]])
    ours = amg.is_box_near_crop_edge(boxes, crop_box, orig_box)
    torch.testing.assert_close(ours, meta_amg.is_box_near_crop_edge(boxes, crop_box, orig_box))
    # a box touching the crop's left edge (not an image edge) is filtered, one touching the right image edge is not
    assert ours[1].item() is True
    assert ours[2].item() is False


def test_uncrop_helpers():
    crop_box = [10, 20, 40, 60]
    boxes = torch.tensor([[0, 0, 5, 5]])
    assert amg.uncrop_boxes_xyxy(boxes, crop_box).tolist() == [[10, 20, 15, 25]]
    assert amg.uncrop_points(torch.tensor([[1.5, 2.5]]), crop_box).tolist() == [[11.5, 22.5]]
    masks = torch.zeros(2, 40, 30, dtype=torch.bool)
    masks[:, 0, 0] = True
    full = amg.uncrop_masks(masks, crop_box, 100, 80)
    assert full.shape == (2, 100, 80)
    assert full[:, 20, 10].all() and full.sum() == 2
    assert amg.uncrop_masks(masks, [0, 0, 30, 40], 40, 30) is masks


def test_uncrop_masks_matches_meta(meta_amg):
    masks = torch.zeros(2, 40, 30, dtype=torch.bool)
    masks[:, 0, 0] = True
    masks[1, 5:9, 3:7] = True
    crop_box = [10, 20, 40, 60]
    torch.testing.assert_close(amg.uncrop_masks(masks, crop_box, 100, 80), meta_amg.uncrop_masks(masks, crop_box, 100, 80))


def test_box_nms_keeps_best_of_duplicates_in_score_order():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60]])
    keep = amg.box_nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.7)
    assert keep.tolist() == [1, 2]
    assert amg.box_nms(boxes[:0], torch.zeros(0), 0.7).numel() == 0


def test_crop_preference_scores_prefer_small_crops():
    scores = amg.crop_preference_scores(torch.tensor([[0, 0, 100, 100], [0, 0, 60, 60]]))
    assert scores[1] > scores[0]


def test_box_xywh():
    assert amg.box_xyxy_to_xywh(torch.tensor([1.0, 2.0, 11.0, 22.0])) == [1.0, 2.0, 10.0, 20.0]


MASKS = st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))


def _random_masks(n, h, w, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, h, w)) > rng.random()


@settings(max_examples=25, deadline=None)
@given(MASKS)
def test_rle_round_trip_and_boxes(shape):
    masks = _random_masks(*shape)
    for mask, rle in zip(masks, encode_rle_batch(masks), strict=True):
        np.testing.assert_array_equal(decode_rle(rle), mask)
        counts = rle_to_uncompressed(rle)["counts"]
        assert sum(counts) == mask.size
    for mask, box in zip(masks, batched_mask_to_box(torch.as_tensor(masks)).tolist(), strict=True):
        ys, xs = np.nonzero(mask)
        assert box == ([xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0])


@settings(max_examples=25, deadline=None)
@given(MASKS)
def test_rle_and_boxes_match_meta(meta_amg, shape):
    masks = _random_masks(*shape)
    meta_rles = meta_amg.mask_to_rle_pytorch(torch.as_tensor(masks))
    assert [rle_to_uncompressed(rle) for rle in encode_rle_batch(masks)] == meta_rles
    torch.testing.assert_close(batched_mask_to_box(torch.as_tensor(masks)), meta_amg.batched_mask_to_box(torch.as_tensor(masks)))


def test_remove_small_regions_holes_and_islands():
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:20, 5:20] = True
    mask[10, 10] = False  # a 1-pixel hole
    mask[25, 25] = True  # a 1-pixel island
    filled, changed = remove_small_regions(mask, 5, "holes")
    assert changed and filled[10, 10] and filled[25, 25]
    cleaned, changed = remove_small_regions(filled, 5, "islands")
    assert changed and not cleaned[25, 25] and cleaned[5:20, 5:20].all()
    same, changed = remove_small_regions(cleaned, 5, "islands")
    assert not changed and np.array_equal(same, cleaned)
    # when every island is small, the largest is kept
    tiny = np.zeros((10, 10), dtype=bool)
    tiny[0, 0] = True
    tiny[5:7, 5:7] = True
    kept, _ = remove_small_regions(tiny, 100, "islands")
    assert kept.sum() == 4 and kept[5:7, 5:7].all()
    with pytest.raises(ValueError, match="holes"):
        remove_small_regions(mask, 5, "blobs")
