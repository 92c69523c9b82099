"""Generated inputs and call orders (hypothesis, fixed seed): a documented result or a ValueError/TypeError.

Over both pipelines, tracking sessions in random call orders and the command line, every case must end in
a result of the documented shape or a ``ValueError`` / ``TypeError`` with a message: never another
exception, never a hang (each case is bounded by the tiny models), never a partial output file. About
2,100 cases in all (``max_examples`` below), derandomized so CI runs the same cases every time.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sam2_pipelines import cli, testing

FUZZ = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
H, W = 120, 160
IMAGE = testing.synthetic_image(H, W)


def _expect_result_or_clear_error(call):
    """Run ``call``; return its result, or None after a ValueError/TypeError with a non-empty message."""
    try:
        return call()
    except (ValueError, TypeError) as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        return None


# ---------------------------------------------------------------------------------------------- values

numbers = st.one_of(
    st.integers(-5, 300),
    st.floats(-50, 400, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), -1e9, 0, 1, 0.5]),
)
odd_values = st.one_of(numbers, st.text(max_size=3), st.none(), st.booleans(), st.just([]), st.just({}))


def nested(depth_shape):
    """Nested lists of numbers (sometimes odd values) of a random shape."""
    return st.recursive(st.one_of(numbers, odd_values), lambda inner: st.lists(inner, min_size=0, max_size=3), max_leaves=12)


points_strategy = st.one_of(
    st.builds(lambda n, k: np.random.default_rng(n).uniform(-10, 170, (n, k, 2)).tolist(), st.integers(1, 3), st.integers(1, 3)),
    nested(3),
)
labels_strategy = st.one_of(
    st.builds(lambda n, k, s: np.random.default_rng(s).integers(-1, 3, (n, k)).tolist(), st.integers(1, 3), st.integers(1, 3), st.integers(0, 9)),
    nested(2),
)
boxes_strategy = st.one_of(
    st.builds(lambda n, s: np.sort(np.random.default_rng(s).uniform(-10, 170, (n, 2, 2)), axis=1).reshape(n, 4).tolist(),
              st.integers(1, 3), st.integers(0, 9)),
    nested(2),
)


# ---------------------------------------------------------------------------------------------- mask-generation


@settings(max_examples=900, **FUZZ)
@given(
    points=st.one_of(st.none(), points_strategy),
    labels=st.one_of(st.none(), labels_strategy),
    boxes=st.one_of(st.none(), boxes_strategy),
    multimask=st.one_of(st.booleans(), odd_values),
)
def test_prompted_calls(mask_generator, points, labels, boxes, multimask):
    prompts = {k: v for k, v in dict(points=points, labels=labels, boxes=boxes).items() if v is not None}
    assume(prompts)  # without prompts the call is automatic mode (test_automatic_options)
    out = _expect_result_or_clear_error(lambda: mask_generator(IMAGE, multimask_output=multimask, **prompts))
    if out is None:
        return
    objects = len(out["masks"])
    k = 3 if multimask else 1
    assert out["masks"].shape == (objects, k, H, W) and out["masks"].dtype == bool
    assert out["scores"].shape == (objects, k) and np.isfinite(out["scores"]).all()
    assert out["logits"].shape[:2] == (objects, k)


option_names = ["points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh", "stability_score_offset",
                "mask_threshold", "box_nms_thresh", "crop_n_layers", "crop_nms_thresh", "crop_overlap_ratio",
                "crop_n_points_downscale_factor", "min_mask_region_area", "output_mode", "use_m2m", "multimask_output",
                "points_per_crop", "crops_n_layers", "output_rle_mask", "output_bboxes_mask", "batch_size", "bogus"]
option_values = st.one_of(
    st.integers(-2, 6),
    st.floats(-1, 2, allow_nan=False),
    st.sampled_from([0.0, 1.0, 0.5, "binary_mask", "coco_rle", "uncompressed_rle", "x", True, False, None]),
)


@settings(max_examples=500, **FUZZ)
@given(options=st.dictionaries(st.sampled_from(option_names), option_values, max_size=4), size=st.sampled_from([(1, 160), (4, 5), (48, 64)]))
def test_automatic_options(mask_generator, options, size):
    options.setdefault("points_per_side", 2)
    if isinstance(options["points_per_side"], int) and options["points_per_side"] > 3:
        options["points_per_side"] = 3
    image = testing.synthetic_image(*size)
    out = _expect_result_or_clear_error(lambda: mask_generator(image, **options))
    if out is None:
        return
    assert len(out["masks"]) == len(out["records"]) == len(out["scores"])
    for record in out["records"]:
        assert set(record) >= {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"}


# ---------------------------------------------------------------------------------------------- tracking sessions

FRAMES = testing.synthetic_frames(5, 48, 64)

session_steps = st.lists(
    st.one_of(
        st.tuples(st.just("points"), st.integers(-1, 6), st.integers(-1, 3), points_strategy, labels_strategy),
        st.tuples(st.just("box"), st.integers(-1, 6), st.integers(-1, 3), boxes_strategy),
        st.tuples(st.just("mask"), st.integers(0, 5), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("propagate"), st.sampled_from(["forward", "backward", "both", "sideways"]),
                  st.one_of(st.none(), st.integers(-1, 6)), st.one_of(st.none(), st.integers(-1, 4)), st.integers(0, 6)),
        st.tuples(st.just("next")),
        st.tuples(st.just("remove"), st.integers(0, 3)),
        st.tuples(st.just("reset")),
        st.tuples(st.just("close")),
    ),
    min_size=1,
    max_size=6,
)


def _check_result(result, rle=False):
    assert set(result) == {"frame_idx", "object_ids", "masks", "scores"}
    assert 0 <= result["frame_idx"] < len(FRAMES)
    assert len(result["masks"]) == len(result["object_ids"]) == len(result["scores"])
    if not rle:
        assert all(m.shape == (1, 48, 64) for m in result["masks"])


@settings(max_examples=300, **FUZZ)
@given(steps=session_steps)
def test_sessions_in_any_call_order(tracker, steps):
    session = tracker.session(FRAMES)
    iterators = []
    for step in steps:
        kind = step[0]
        if kind == "points":
            _, frame, obj, points, labels = step
            one_object_points = points[0] if isinstance(points, list) and points and isinstance(points[0], list) else points
            one_object_labels = labels[0] if isinstance(labels, list) and labels and isinstance(labels[0], list) else labels
            out = _expect_result_or_clear_error(lambda: session.add_points(frame, obj, one_object_points, one_object_labels))
        elif kind == "box":
            _, frame, obj, boxes = step
            box = boxes[0] if isinstance(boxes, list) and boxes else boxes
            out = _expect_result_or_clear_error(lambda: session.add_box(frame, obj, box))
        elif kind == "mask":
            _, frame, obj, seed = step
            mask = np.random.default_rng(seed).random((48, 64)) > 0.7
            out = _expect_result_or_clear_error(lambda: session.add_mask(frame, obj, mask))
        elif kind == "propagate":
            _, direction, start, limit, take = step
            it = _expect_result_or_clear_error(lambda: session.propagate(direction=direction, start_frame=start, max_frames=limit))
            if it is not None:
                iterators.append(it)
                for _ in range(take):
                    result = _expect_result_or_clear_error(lambda: next(it, None))
                    if result is None:
                        break
                    _check_result(result)
            continue
        elif kind == "next":
            for it in iterators:
                result = _expect_result_or_clear_error(lambda: next(it, None))
                if result is not None:
                    _check_result(result)
            continue
        elif kind == "remove":
            _expect_result_or_clear_error(lambda: session.remove_object(step[1]))
            continue
        elif kind == "reset":
            _expect_result_or_clear_error(session.reset)
            continue
        else:
            session.close()
            continue
        if out is not None:
            _check_result(out)
    session.close()


# ---------------------------------------------------------------------------------------------- command line

cli_tokens = st.lists(
    st.sampled_from([
        "--points-per-side", "2", "3", "0", "-1", "--pred-iou-thresh", "0", "2", "512/1500", "1/0", "--crop-n-layers",
        "--crop-overlap-ratio", "--device", "cpu", "bogus", "--dtype", "float16", "--fps", "--point", "1,2", "1,2,1",
        "x", "--box", "1,2,30,40", "--obj", "--frame", "--no-progress", "--out", "OUT", "FILE", "IMAGE", "VIDEO",
        "--min-mask-region-area", "--stability-score-thresh", "0.5", "--use-m2m", "--direction", "both", "--max-frames",
    ]),
    max_size=8,
)


@settings(max_examples=400, **FUZZ)
@given(command=st.sampled_from(["generate-masks", "track", "convert", "bogus"]), tokens=cli_tokens)
def test_command_line(tiny_image_model_dir, tiny_video_model_dir, tmp_path_factory, command, tokens, capsys):
    folder = tmp_path_factory.mktemp("cli")
    image = folder / "image.png"
    from PIL import Image

    Image.fromarray(testing.synthetic_image(48, 64)).save(image)
    video = testing.synthetic_video(folder / "video.mp4", num_frames=2, height=32, width=48)
    a_file = folder / "file.txt"
    a_file.write_text("not an image")
    out = folder / "out"
    names = {"OUT": str(out), "FILE": str(a_file), "IMAGE": str(image), "VIDEO": str(video)}
    argv = [command, *(names.get(t, t) for t in tokens)]
    model = tiny_video_model_dir if command == "track" else tiny_image_model_dir
    if command in ("generate-masks", "track"):
        argv += ["--model", model, "--no-progress"]
        if "--points-per-side" not in tokens:
            argv += ["--points-per-side", "2"] if command == "generate-masks" else []
    try:
        status = cli.main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    captured = capsys.readouterr()
    assert status in (0, 1, 2), status
    assert "Traceback" not in captured.err
    if status != 0:
        assert captured.err.strip()
    if out.exists():  # never a partial file: every file written is complete
        assert not list(out.rglob("*.partial"))
        for path in out.rglob("*.json"):
            json.loads(path.read_text())


def test_enough_generated_cases():
    """The fixed-seed fuzz suite runs at least 2,000 cases in all."""
    total = sum(
        test._hypothesis_internal_use_settings.max_examples
        for test in (test_prompted_calls, test_automatic_options, test_sessions_in_any_call_order, test_command_line)
    )
    assert total >= 2000, total
