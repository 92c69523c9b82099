"""Values that were silently misread or failed deep inside the model: each is refused up front with a message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

from sam2_pipelines import testing
from sam2_pipelines.io.video import write_overlay_video


def test_integer_mask_prompts_are_not_read_as_logits(mask_generator, image):
    size = mask_generator.image_model.mask_size
    binary = np.zeros((1, size, size), dtype=np.uint8)
    binary[0, 10:20, 10:20] = 1
    with pytest.raises(ValueError, match="float mask logits"):
        mask_generator(image, masks=binary)
    logits = np.where(binary, 10.0, -10.0).astype(np.float32)
    assert mask_generator(image, masks=logits)["masks"].shape[0] == 1


def test_overflowing_mask_logits_are_refused(mask_generator, image):
    size = mask_generator.image_model.mask_size
    with pytest.raises(ValueError, match="overflow"):
        mask_generator(image, masks=np.full((1, size, size), 1e30, dtype=np.float32))


def test_nan_in_point_grids_is_refused(mask_generator, image):
    grid = np.array([[0.5, 0.5], [np.nan, 0.2]])
    with pytest.raises(ValueError, match="point_grids"):
        mask_generator(image, points_per_side=None, point_grids=[grid])


@pytest.mark.parametrize("fps", [0, -5, float("nan"), float("inf"), True])
def test_overlay_video_fps_must_be_positive(video_path, fps, tmp_path):
    result = {"frame_idx": 0, "object_ids": [], "masks": np.zeros((0, 1, 96, 128), bool), "scores": np.zeros(0, np.float32)}
    with pytest.raises(ValueError, match="fps must be None"):
        write_overlay_video(video_path, [result], tmp_path / "o.mp4", fps=fps)
    assert not (tmp_path / "o.mp4").exists()


def test_a_path_image_takes_prompt_keywords(mask_generator, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(testing.synthetic_image()).save(path)
    by_path = mask_generator(Path(path), points=[[[40, 50]]], labels=[[1]])
    by_array = mask_generator(testing.synthetic_image(), points=[[[40, 50]]], labels=[[1]])
    assert np.array_equal(by_path["masks"], by_array["masks"])


@pytest.fixture(scope="module")
def segmenter(tiny_sam3_model_dir):
    return pipeline("mask-generation", model=tiny_sam3_model_dir)


def test_boolean_exemplar_labels_are_refused(segmenter, image):
    with pytest.raises(ValueError, match="not booleans"):
        segmenter(image, text="car", exemplars=[[10, 10, 50, 50]], exemplar_labels=[True])


def _count_vision_passes(model):
    calls = []
    handle = model.vision_encoder.register_forward_pre_hook(lambda *args: calls.append(1))
    return calls, handle


def test_text_longer_than_the_text_encoder_is_refused_before_the_image_is_encoded(segmenter, image):
    long = " ".join(["red car"] * 20)
    calls, handle = _count_vision_passes(segmenter.model)
    try:
        with pytest.raises(ValueError, match="at most 32 tokens"):
            segmenter(image, text=["car", long])
        with pytest.raises(ValueError, match="at most 32 tokens"):
            segmenter(Path("no-need-to-read.png"), text=long)
    finally:
        handle.remove()
    assert calls == []
    assert segmenter(image, text=" ".join(["red car"] * 5))["records"] is not None  # 12 tokens: fine


def test_text_too_long_for_video_tracking_is_refused_before_any_frame(tiny_sam3_video_model_dir):
    tracker = pipeline("video-object-tracking", model=tiny_sam3_video_model_dir)
    frames = list(testing.synthetic_frames(4))
    long = " ".join(["red car"] * 20)
    calls, handle = _count_vision_passes(tracker.model.detector_model if hasattr(tracker.model, "detector_model") else tracker.model)
    try:
        with pytest.raises(ValueError, match="at most 32 tokens"):
            tracker(frames, prompts=[{"frame": 0, "text": "car"}, {"frame": 2, "text": long}])
        with pytest.raises(ValueError, match="at most 32 tokens"):
            tracker(iter(frames), prompts=[{"frame": 2, "text": long}])
        with tracker.session(frames) as session:
            with pytest.raises(ValueError, match="at most 32 tokens"):
                session.add_text(long, frame=1)
            assert not session.concepts
    finally:
        handle.remove()
    assert calls == []
