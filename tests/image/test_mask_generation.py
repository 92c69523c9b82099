"""The mask-generation pipeline end to end, on tiny random SAM 2 / EdgeTAM checkpoints loaded with pipeline()."""

from __future__ import annotations

import collections
import numpy as np
import pytest
import torch
from transformers import pipeline

from sam2_pipelines import MaskGenerationPipeline

from sam2_pipelines.image import amg
from sam2_pipelines.core.masks import batched_mask_to_box, decode_rle, remove_small_regions
from sam2_pipelines.testing import synthetic_image

#: Thresholds off, so that random weights still leave masks to look at.
LOOSE = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)


@pytest.fixture(scope="module")
def loose_output(mask_generator):
    return mask_generator(synthetic_image(), **LOOSE)


def _check_record(record, height, width):
    mask = record["segmentation"]
    assert mask.shape == (height, width) and mask.dtype == bool
    assert record["area"] == int(mask.sum()) > 0
    x0, y0, x1, y1 = batched_mask_to_box(torch.as_tensor(mask)).tolist()
    assert record["bbox"] == [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    assert len(record["point_coords"]) == 1 and len(record["point_coords"][0]) == 2
    assert isinstance(record["predicted_iou"], float) and isinstance(record["stability_score"], float)
    assert len(record["crop_box"]) == 4


def test_returns_our_pipeline(mask_generator):
    assert isinstance(mask_generator, MaskGenerationPipeline)


def test_automatic_records_and_transformers_style(loose_output, image):
    out = loose_output
    assert set(out) == {"masks", "scores", "records"}
    assert len(out["masks"]) == len(out["scores"]) == len(out["records"]) > 0
    for mask, score, record in zip(out["masks"], out["scores"], out["records"]):
        assert mask is record["segmentation"]
        assert score == pytest.approx(record["predicted_iou"])
        _check_record(record, *image.shape[:2])
        assert record["crop_box"] == [0.0, 0.0, 160.0, 120.0]
    # grid points of a 4x4 grid over a 160x120 image
    grid = {(20.0 + 40 * i, 15.0 + 30 * j) for i in range(4) for j in range(4)}
    assert {tuple(r["point_coords"][0]) for r in out["records"]} <= grid


def test_deterministic(mask_generator, image, loose_output):
    again = mask_generator(image, **LOOSE)
    assert [r["bbox"] for r in again["records"]] == [r["bbox"] for r in loose_output["records"]]
    for a, b in zip(again["masks"], loose_output["masks"]):
        np.testing.assert_array_equal(a, b)


def test_thresholds_filter(mask_generator, image):
    base = mask_generator(image, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    ious = sorted(r["predicted_iou"] for r in base["records"])
    assert len(ious) >= 2
    cut = (ious[0] + ious[-1]) / 2
    filtered = mask_generator(image, points_per_side=4, pred_iou_thresh=cut, stability_score_thresh=0.0, box_nms_thresh=1.0)
    assert 0 < len(filtered["records"]) < len(base["records"])
    assert all(r["predicted_iou"] > cut for r in filtered["records"])
    assert len(filtered["records"]) == sum(i > cut for i in ious)
    stab = sorted(r["stability_score"] for r in base["records"])
    if stab[-1] > 0:
        stable = mask_generator(image, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=stab[-1], box_nms_thresh=1.0)
        assert all(r["stability_score"] >= stab[-1] for r in stable["records"])
    # box NMS with a low threshold never keeps more masks than without it
    assert len(mask_generator(image, **LOOSE, box_nms_thresh=0.0)["records"]) <= len(base["records"])


def test_output_modes_agree(mask_generator, image, loose_output):
    coco = mask_generator(image, **LOOSE, output_mode="coco_rle")
    raw = mask_generator(image, **LOOSE, output_mode="uncompressed_rle")
    assert len(coco["records"]) == len(raw["records"]) == len(loose_output["records"])
    h, w = image.shape[:2]
    for c, r, b in zip(coco["records"], raw["records"], loose_output["records"]):
        assert isinstance(c["segmentation"]["counts"], str)
        assert c["segmentation"]["size"] == [h, w]
        np.testing.assert_array_equal(decode_rle(c["segmentation"]), b["segmentation"])
        counts = r["segmentation"]["counts"]
        assert isinstance(counts, list) and sum(counts) == h * w
        np.testing.assert_array_equal(decode_rle(r["segmentation"]), b["segmentation"])
        assert c["area"] == r["area"] == b["area"]


def test_multimask_off_and_m2m(mask_generator, image):
    off = mask_generator(image, **LOOSE, multimask_output=False, box_nms_thresh=1.0)
    on = mask_generator(image, **LOOSE, box_nms_thresh=1.0)
    # without multimask each of the 16 grid points gives at most one mask; with it, up to three (NMS is off)
    per_point_off = collections.Counter(tuple(r["point_coords"][0]) for r in off["records"])
    per_point_on = collections.Counter(tuple(r["point_coords"][0]) for r in on["records"])
    assert len(per_point_off) <= 16 and max(per_point_off.values()) == 1
    assert max(per_point_on.values()) > 1 and max(per_point_on.values()) <= 3 and len(on["records"]) > len(off["records"])
    refined = mask_generator(image, **LOOSE, use_m2m=True)
    for record in refined["records"]:
        _check_record(record, *image.shape[:2])


def test_crops(mask_generator, image):
    plain = mask_generator(image, **LOOSE, box_nms_thresh=1.0)
    out = mask_generator(image, **LOOSE, crop_n_layers=1, crop_nms_thresh=1.0, box_nms_thresh=1.0)
    full = [0.0, 0.0, 160.0, 120.0]
    # with cross-crop NMS off, the whole-image crop contributes exactly the masks of a run without crops
    assert sorted(r["bbox"] for r in out["records"] if r["crop_box"] == full) == sorted(r["bbox"] for r in plain["records"])
    for record in out["records"]:
        _check_record(record, *image.shape[:2])
        x0, y0, cw, ch = record["crop_box"]
        px, py = record["point_coords"][0]
        assert x0 <= px <= x0 + cw and y0 <= py <= y0 + ch
        if record["crop_box"] != full:  # masks from small crops never touch an inner crop edge
            bx, by, bw, bh = record["bbox"]
            assert not amg.is_box_near_crop_edge(
                torch.tensor([[bx - x0, by - y0, bx + bw - x0, by + bh - y0]]), [x0, y0, x0 + cw, y0 + ch], [0, 0, 160, 120]
            ).item()
    # cross-crop NMS only removes masks
    merged = mask_generator(image, **LOOSE, crop_n_layers=1, crop_nms_thresh=0.3, box_nms_thresh=1.0)
    assert len(merged["records"]) <= len(out["records"])


def test_point_grids_option(mask_generator, image):
    grid = np.array([[0.25, 0.5], [0.75, 0.5]])
    out = mask_generator(image, points_per_side=None, point_grids=[grid], pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert {tuple(r["point_coords"][0]) for r in out["records"]} <= {(40.0, 60.0), (120.0, 60.0)}
    out = mask_generator(image, point_grids=[grid], pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert len(out["records"]) > 0
    with pytest.raises(ValueError, match="exactly one"):
        mask_generator(image, points_per_side=4, point_grids=[grid])
    with pytest.raises(ValueError, match="one grid per crop layer"):
        mask_generator(image, point_grids=[grid], crop_n_layers=1)
    with pytest.raises(ValueError, match="points_per_side is None, so point_grids"):
        mask_generator(image, points_per_side=None)


def test_min_mask_region_area_leaves_no_small_regions(mask_generator, image):
    area = 60
    out = mask_generator(image, **LOOSE, min_mask_region_area=area)
    assert out["records"]
    for record in out["records"]:
        _check_record(record, *image.shape[:2])
        _, holes = remove_small_regions(record["segmentation"], area, "holes")
        _, islands = remove_small_regions(record["segmentation"], area, "islands")
        assert not holes and not islands


def test_only_iou_survivors_are_upscaled_and_upsampled_and_each_crop_encoded_once(tiny_image_model_dir, image, monkeypatch):
    """Masks are computed (decoder upscaling) and upsampled only for candidates above pred_iou_thresh."""
    generator = pipeline("mask-generation", model=tiny_image_model_dir)
    decoded_ious, upscaled_rows, surviving_rows, upsampled, encoded = [], [], [], [], []
    model = generator.image_model
    decode_fast, upsample, encode = model.decode_fast, model.upsample, model.encode

    def spy_decode_fast(*args, **kwargs):
        decoded = decode_fast(*args, **kwargs)
        decoded_ious.append(decoded.iou_scores[:, 1:].flatten())
        upscaled_rows.append(len(decoded.mask_logits))
        return decoded

    def spy_upsample(logits, *args):
        upsampled.append(len(logits))
        return upsample(logits, *args)

    def spy_encode(pixel_values):
        encoded.append(len(pixel_values))
        return encode(pixel_values)

    monkeypatch.setattr(model, "decode_fast", spy_decode_fast)
    monkeypatch.setattr(model, "upsample", spy_upsample)
    monkeypatch.setattr(model, "encode", spy_encode)
    generator(image, points_per_side=4, points_per_batch=5, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    all_ious = torch.cat(decoded_ious)
    threshold = float(all_ious.quantile(0.9))
    decoded_ious.clear(), upscaled_rows.clear(), upsampled.clear(), encoded.clear()
    generator(image, points_per_side=4, points_per_batch=5, pred_iou_thresh=threshold, stability_score_thresh=0.0, crop_n_layers=1)
    ious = torch.cat(decoded_ious)
    assert len(decoded_ious) == 4 * 5  # ceil(16 / 5) batches in each of the 5 crops
    assert sum(upsampled) == int((ious > threshold).sum()) < len(ious)
    points_with_a_survivor = sum(int((batch.view(-1, 3) > threshold).any(dim=1).sum()) for batch in decoded_ious)
    assert sum(upscaled_rows) == points_with_a_survivor < len(ious) // 3
    assert encoded == [1] * 5  # one encoder pass per crop


def test_batch_size_list_generator_and_dataset(mask_generator, image):
    small = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    other = synthetic_image(seed=3)
    single = [mask_generator(im, **small) for im in (image, other)]
    batched = mask_generator([image, other], batch_size=2, **small)
    listed = mask_generator((image, other), **small)
    streamed = list(mask_generator((im for im in [image, other]), batch_size=2, **small))
    datasets = pytest.importorskip("datasets")
    from transformers.pipelines.pt_utils import KeyDataset

    dataset = datasets.Dataset.from_dict({"image": [image.tolist(), other.tolist()]}).with_format("numpy")

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            return {"image": np.asarray(dataset[i]["image"], dtype=np.uint8)}

    from_dataset = list(mask_generator(KeyDataset(Images(), "image"), batch_size=2, **small))
    for results in (batched, listed, streamed, from_dataset):
        assert len(results) == 2
        for got, want in zip(results, single):
            assert [r["bbox"] for r in got["records"]] == [r["bbox"] for r in want["records"]]
            np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)


def test_options_at_construction(tiny_image_model_dir, image, loose_output):
    generator = pipeline("mask-generation", model=tiny_image_model_dir, **LOOSE)
    out = generator(image)
    assert [r["bbox"] for r in out["records"]] == [r["bbox"] for r in loose_output["records"]]
    assert len(generator(image, pred_iou_thresh=1.0)["records"]) == 0
    # automatic-mode options set at construction do not get in the way of prompts
    assert generator(image, points=[[[50, 40]]], labels=[[1]])["masks"].shape == (1, 3, 120, 160)


def test_progress_bar(mask_generator, image, capsys):
    mask_generator(image, **LOOSE, progress=True)
    assert "mask generation" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points_per_batch=0), "points_per_batch must be a positive int"),
        (dict(points_per_batch=-3), "points_per_batch must be a positive int"),
        (dict(points_per_batch=2.5), "points_per_batch must be a positive int"),
        (dict(output_mode="png"), "binary_mask, uncompressed_rle, coco_rle"),
        (dict(points_per_sid=4), "unknown keyword.*points_per_sid.*Accepted"),
        (dict(stability_score_thresh=1.5), r"\[0, 1\]"),
        (dict(crop_n_layers=-1), "int >= 0"),
        (dict(min_mask_region_area=-1), ">= 0"),
        (dict(use_m2m="yes"), "True or False"),
        (dict(point_grids=[np.array([[2.0, 0.5]])], points_per_side=None), r"normalised to \[0, 1\]"),
    ],
)
def test_bad_options_raise(mask_generator, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_generator(image, **kwargs)


def test_bad_images_raise(mask_generator):
    with pytest.raises(ValueError, match="uint8"):
        mask_generator(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="accepted"):
        mask_generator(12)
    with pytest.raises(ValueError, match="'image'"):
        mask_generator({"picture": synthetic_image()})


def test_prompted_single_click(mask_generator, image):
    out = mask_generator(image, points=[[[50, 40]]], labels=[[1]])
    assert out["masks"].shape == (1, 3, 120, 160) and out["masks"].dtype == bool
    assert out["scores"].shape == (1, 3)
    assert out["logits"].shape == (1, 3, 64, 64) and np.abs(out["logits"]).max() <= 32


def test_prompted_matches_processor_and_model(mask_generator, image):
    """Same masks as the transformers processor + model + post_process_masks route of the model doc."""
    processor, model = mask_generator.processor, mask_generator.model
    points, labels = [[[[50, 40]], [[100, 90], [20, 30]]]], [[[1, -10], [1, 0]]]
    inputs = processor(images=image, input_points=[[[[50, 40]], [[100, 90], [20, 30]]]], input_labels=[[[1], [1, 0]]], return_tensors="pt")
    out = mask_generator(image, points=points[0], labels=[[1], [1, 0]])
    # per object on its own (our pipeline never pads: objects with different point counts are decoded separately)
    for obj, (pts, labs) in enumerate([([[50, 40]], [1]), ([[100, 90], [20, 30]], [1, 0])]):
        inputs = processor(images=image, input_points=[[pts]], input_labels=[[labs]], return_tensors="pt")
        with torch.no_grad():
            ref = model(**inputs)
        masks = processor.post_process_masks(ref.pred_masks, inputs["original_sizes"])[0][0].numpy()
        np.testing.assert_allclose(out["scores"][obj], ref.iou_scores[0, 0].numpy(), atol=1e-4)
        assert (masks == out["masks"][obj]).mean() > 0.99  # coordinates differ in the last float bits


def test_prompted_box_points_and_mask_refinement(mask_generator, image):
    boxed = mask_generator(image, boxes=[[10, 10, 80, 70], [90, 60, 150, 110]], multimask_output=False)
    assert boxed["masks"].shape == (2, 1, 120, 160)
    both = mask_generator(image, points=[[[40, 40]], [[120, 80]]], labels=[[1], [1]], boxes=[[10, 10, 80, 70], [90, 60, 150, 110]])
    assert both["masks"].shape == (2, 3, 120, 160)
    first = mask_generator(image, points=[[[50, 40]]], labels=[[1]])
    best = first["logits"][np.arange(1), first["scores"].argmax(1)]
    refined = mask_generator(image, points=[[[50, 40], [45, 30]]], labels=[[1, 1]], masks=best, multimask_output=False)
    assert refined["masks"].shape == (1, 1, 120, 160) and refined["logits"].shape == (1, 1, 64, 64)
    plain = mask_generator(image, points=[[[50, 40], [45, 30]]], labels=[[1, 1]], multimask_output=False)
    assert not np.allclose(plain["logits"], refined["logits"])  # the mask prompt is used
    only_mask = mask_generator(image, masks=best)
    assert only_mask["masks"].shape == (1, 3, 120, 160)


def test_prompted_mask_threshold(mask_generator, image):
    low = mask_generator(image, points=[[[50, 40]]], labels=[[1]], mask_threshold=-1.0)
    high = mask_generator(image, points=[[[50, 40]]], labels=[[1]], mask_threshold=1.0)
    assert np.all(low["masks"] >= high["masks"])
    assert low["masks"].sum() > high["masks"].sum()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points=[[[500, 40]]], labels=[[1]]), "outside the image"),
        (dict(points=[[[50, 40]]], labels=[[7]]), r"\[0, 1\]"),
        (dict(points=[[50, 40]], labels=[[1]]), r"\(objects, points_per_object, 2\)"),
        (dict(points=[[[50, 40]]]), "labels are required"),
        (dict(boxes=[10, 10, 20, 20]), "wrap it in a list"),
        (dict(points=[[[50, 40]]], labels=[[1]], points_per_side=4), "automatic mask generation only"),
        (dict(masks=np.zeros((1, 3, 64, 64))), "ONE"),
        (dict(masks=np.zeros((1, 256, 256))), r"\(objects, 64, 64\)"),
    ],
)
def test_bad_prompts_raise(mask_generator, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_generator(image, **kwargs)


def test_prompts_for_a_list_need_one_entry_per_image(mask_generator, image):
    with pytest.raises(ValueError, match="one entry per image"):
        mask_generator([image, image], points=[[[[5, 5]]]], labels=[[[1]]])
    with pytest.raises(ValueError, match="not when creating"):
        pipeline("mask-generation", model=mask_generator.model, processor=mask_generator.processor, points=[[[1, 1]]])


def test_dict_inputs_with_prompts(mask_generator, image):
    # a stream mixing prompted and automatic images; automatic options apply to the automatic ones
    out = list(mask_generator((x for x in [{"image": image, "points": [[[50, 40]]], "labels": [[1]]}, image]), **LOOSE))
    assert out[0]["masks"].shape == (1, 3, 120, 160)
    assert len(out[1]["records"]) > 0
    assert mask_generator((image,), **LOOSE)[0]["scores"].shape == (len(out[1]["records"]),)


def test_edgetam(tiny_edgetam_model_dir, image):
    generator = pipeline("mask-generation", model=tiny_edgetam_model_dir)
    assert isinstance(generator, MaskGenerationPipeline)
    out = generator(image, **LOOSE)
    for record in out["records"]:
        _check_record(record, *image.shape[:2])
    prompted = generator(image, points=[[[50, 40]], [[100, 90]]], labels=[[1], [1]], multimask_output=False)
    assert prompted["masks"].shape == (2, 1, 120, 160)


@pytest.mark.slow
def test_benchmark_script_quick_smoke():
    """benchmarks/amg_benchmark.py --quick runs both pipelines and prints its ratios."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "amg_benchmark.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--threads", "1", "--timeout", "600"], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "speed-up (built-in time / our time)" in done.stdout and "x CPU" in done.stdout
    assert "ours     peak RSS" in done.stdout


def test_sam1_model(tiny_sam1_model_dir, image):
    """SAM 1 geometry (aspect-preserving resize, padding) matches the processor + model route."""
    generator = pipeline("mask-generation", model=tiny_sam1_model_dir)
    assert isinstance(generator, MaskGenerationPipeline)
    out = generator(image, points=[[[50, 40]]], labels=[[1]])
    inputs = generator.processor(images=image, input_points=[[[[50, 40]]]], input_labels=[[[1]]], return_tensors="pt")
    with torch.no_grad():
        ref = generator.model(**inputs)
    masks = generator.processor.post_process_masks(ref.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])[0][0]
    np.testing.assert_allclose(out["scores"][0], ref.iou_scores[0, 0].numpy(), atol=1e-4)
    assert (masks.numpy() == out["masks"][0]).mean() > 0.999
    automatic = generator(image, **LOOSE)
    for record in automatic["records"]:
        _check_record(record, *image.shape[:2])


def test_shared_input_projections_give_the_same_numbers(tiny_sam1_model_dir, image):
    """Models outside the fast decoder (SAM 1): projecting the shared first-layer input once changes nothing."""
    import contextlib

    from sam2_pipelines.kernels import fast_decoder

    from sam2_pipelines.image import model as image_model

    mask_generator = pipeline("mask-generation", model=tiny_sam1_model_dir)
    assert not fast_decoder.supports(mask_generator.model)
    model = mask_generator.image_model
    pixel_values, resized = model.pixel_values([image])
    with torch.no_grad():
        embedding = model.encode(pixel_values)[0]
        points = torch.rand(5, 1, 2) * 256
        labels = torch.ones(5, 1, dtype=torch.long)
        shared = model.decode(embedding, points, labels)
        original = image_model.shared_input_projections
        try:
            image_model.shared_input_projections = lambda model: contextlib.nullcontext()
            plain = model.decode(embedding, points, labels)
        finally:
            image_model.shared_input_projections = original
    torch.testing.assert_close(shared[0], plain[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(shared[1], plain[1], rtol=0, atol=1e-5)
    # calls never add hooks to the shared model: installed once, they act only inside the context
    layer = mask_generator.model.mask_decoder.transformer.layers[0]
    hooks = len(layer.cross_attn_token_to_image.k_proj._forward_pre_hooks)
    with torch.no_grad():
        model.decode(embedding, points, labels)
    assert len(layer.cross_attn_token_to_image.k_proj._forward_pre_hooks) == hooks == 1
    hidden = torch.rand(1, 7, layer.cross_attn_token_to_image.k_proj.in_features).expand(3, 7, -1)
    projected = layer.cross_attn_token_to_image.k_proj(hidden)  # outside the context: as if there were no hook
    torch.testing.assert_close(projected, torch.nn.functional.linear(hidden, layer.cross_attn_token_to_image.k_proj.weight, layer.cross_attn_token_to_image.k_proj.bias))


def test_prompted_calls_from_several_threads_on_one_sam1_pipeline(tiny_sam1_model_dir):
    """SAM 1 prompted calls (decoder hooks) from 4 threads on one pipeline equal the same calls made one by one."""
    from concurrent.futures import ThreadPoolExecutor

    from sam2_pipelines import testing

    generator = pipeline("mask-generation", model=tiny_sam1_model_dir)
    calls = [(testing.synthetic_image(96, 128, seed=i % 3), [[[10 + 4 * i, 20 + 2 * i]] for _ in range(1 + i % 4)]) for i in range(24)]

    def call(args):
        image, points = args
        return generator(image, points=points, labels=[[1]] * len(points))

    expected = [call(args) for args in calls]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(call, calls))
    for a, b in zip(got, expected):
        assert np.array_equal(a["masks"], b["masks"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=0, atol=1e-6)


def test_builtin_pipeline_keywords_and_outputs(mask_generator, image):
    """Keywords of transformers' built-in mask-generation pipeline mean the same here, outputs included."""
    from pycocotools import mask as mask_utils

    loose = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    ours = mask_generator(image, points_per_side=2, crop_n_layers=1, crop_nms_thresh=0.5, **loose)
    builtin = mask_generator(
        image, points_per_crop=2, crops_n_layers=1, crops_nms_thresh=0.5, output_rle_mask=True, output_bboxes_mask=True,
        timeout=5.0, **loose,
    )
    assert len(builtin["masks"]) == len(ours["masks"]) > 0
    for a, b in zip(ours["masks"], builtin["masks"]):
        assert np.array_equal(a, b)
    assert "rle_mask" not in ours and "bounding_boxes" not in ours
    assert len(builtin["rle_mask"]) == len(builtin["bounding_boxes"]) == len(builtin["masks"])
    for rle, box, record in zip(builtin["rle_mask"], builtin["bounding_boxes"], builtin["records"]):
        assert rle["size"] == [120, 160] and all(isinstance(c, int) for c in rle["counts"])
        decoded = mask_utils.decode(mask_utils.frPyObjects(rle, *rle["size"]))
        assert np.array_equal(decoded.astype(bool), record["segmentation"])
        x, y, w, h = record["bbox"]
        assert box.tolist() == [x, y, x + w, y + h]
    with pytest.raises(ValueError, match="points_per_crop .*points_per_side"):
        mask_generator(image, points_per_crop=2, points_per_side=2)
    with pytest.raises(ValueError, match="timeout"):
        mask_generator(image, timeout=-1)
    with pytest.raises(ValueError, match="output_rle_mask"):
        mask_generator(image, output_rle_mask="yes")
