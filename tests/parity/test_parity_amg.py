"""Automatic mask generation: our mask-generation pipeline vs Meta's ``SAM2AutomaticMaskGenerator``.

Random weights give low predicted IoUs and near-identical masks, so the thresholds are 0 (every candidate
survives the filters) and, where the per-crop NMS would collapse everything into one record, the box NMS
threshold is 1 (keeps every candidate: it exercises the record fields of all 192 candidates of an 8x8 grid
with three masks per point). The crop case keeps Meta's default cross-crop NMS.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import mask_iou

pytestmark = [pytest.mark.parity, pytest.mark.slow]

MIN_IOU = 0.999
SCORE_ATOL = 1e-4

BASE = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)

CASES = {
    "single-crop": dict(BASE, box_nms_thresh=1.0),
    "single-crop-nms": dict(BASE),
    "m2m": dict(BASE, box_nms_thresh=1.0, use_m2m=True),
    "one-crop-layer": dict(BASE, crop_n_layers=1),
}


def match_records(ours: list[dict], theirs: list[dict]) -> list[tuple[dict, dict, float]]:
    """Pair each of Meta's records with an unused record of ours from the same grid point, best IoU first."""
    used: set[int] = set()
    pairs = []
    for record in theirs:
        best, best_iou = None, -1.0
        for j, candidate in enumerate(ours):
            if j in used or candidate["crop_box"] != record["crop_box"]:
                continue
            if not np.allclose(candidate["point_coords"], record["point_coords"], atol=1e-3):
                continue
            iou = mask_iou(candidate["segmentation"], record["segmentation"])
            if iou > best_iou:
                best, best_iou = j, iou
        assert best is not None, f"no record of ours at point {record['point_coords']} in crop {record['crop_box']}"
        used.add(best)
        pairs.append((ours[best], record, best_iou))
    return pairs


@pytest.mark.parametrize("case", list(CASES))
def test_amg_records_match_meta(case, our_generator, meta_image_model, parity_image):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    options = CASES[case]
    with torch.no_grad():
        theirs = SAM2AutomaticMaskGenerator(meta_image_model, **options).generate(parity_image)
    ours = our_generator(parity_image, **options)["records"]
    assert len(theirs) > 0
    assert len(ours) == len(theirs)
    for mine, meta, iou in match_records(ours, theirs):
        assert iou >= MIN_IOU, f"record at {meta['point_coords']}: mask IoU {iou:.5f}"
        assert mine["predicted_iou"] == pytest.approx(meta["predicted_iou"], abs=SCORE_ATOL)
        assert mine["stability_score"] == pytest.approx(meta["stability_score"], abs=SCORE_ATOL)
        assert mine["area"] == pytest.approx(meta["area"], rel=1 - MIN_IOU)
        assert np.allclose(mine["bbox"], meta["bbox"], atol=1)
        assert mine["segmentation"].shape == parity_image.shape[:2]
