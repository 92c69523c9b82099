"""Video options users of Meta's predictor expect: mask threshold and logits, half precision, a compiled model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import pipeline

PROMPTS = [{"frame": 0, "obj_id": 1, "points": [[60, 40]], "labels": [1]}, {"frame": 0, "obj_id": 2, "points": [[20, 70]], "labels": [1]}]

#: Stated tolerances of half-precision autocast (relative L2 error vs float32; docs/video_tracking.md). Masks of
#: random weights (all a test can use offline) are not comparable: their logits are tiny cancellations that any
#: rounding flips, so the tolerance is stated, and tested, on the tracker's stages.
TOLERANCE = {torch.float16: {"image features": 5e-3, "memory attention": 5e-4}, torch.bfloat16: {"image features": 3e-2, "memory attention": 3e-3}}


def iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_logits_and_mask_threshold(tracker, frames):
    plain = tracker(frames, prompts=PROMPTS)
    with_logits = tracker(frames, prompts=PROMPTS, return_logits=True)
    raised = tracker(frames, prompts=PROMPTS, return_logits=True, mask_threshold=2.5)
    assert "logits" not in plain[0]
    for a, b, c in zip(plain, with_logits, raised):
        assert b["logits"].dtype == np.float32 and b["logits"].shape == b["masks"].shape
        assert np.array_equal(a["masks"], b["masks"]) and np.array_equal(b["masks"], b["logits"] > 0)
        assert np.array_equal(c["masks"], c["logits"] > 2.5) and np.array_equal(c["logits"], b["logits"])
    assert sum(r["masks"].sum() for r in raised) < sum(r["masks"].sum() for r in plain)  # the threshold matters
    session = tracker.session(frames, return_logits=True)
    first = session.add_points(0, 1, [[60, 40]], [1])
    assert np.array_equal(first["masks"], first["logits"] > 0)


def test_bad_options_are_refused_before_work(tracker, frames):
    with pytest.raises(ValueError, match="RLE results do not hold"):
        tracker(frames, prompts=PROMPTS, return_logits=True, output="rle")
    with pytest.raises(ValueError, match="mask_threshold must be a finite number"):
        tracker(frames, prompts=PROMPTS, mask_threshold=float("nan"))
    with pytest.raises(ValueError, match="return_logits must be True or False"):
        tracker.session(frames, return_logits="yes")
    with pytest.raises(ValueError, match="autocast must be None, torch.bfloat16"):
        tracker(frames, prompts=PROMPTS, autocast="half")
    with pytest.raises(ValueError, match="compile must be True or False"):
        pipeline("video-object-tracking", model=tracker.model, processor=tracker.processor, compile="yes")
    rle = tracker(frames, prompts=PROMPTS, output="rle", mask_threshold=1)
    json.dumps(rle)


def relative_error(reference: torch.Tensor, value: torch.Tensor) -> float:
    return float((reference - value.float()).norm() / reference.norm())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_in_half_precision_within_the_stated_tolerance(tracker, frames, dtype):
    from sam2_pipelines.kernels import fast_memory

    reference = tracker(frames, prompts=PROMPTS)
    calls = []
    hook = tracker.model.memory_encoder.register_forward_hook(lambda module, args, out: calls.append(out[0].dtype))
    try:
        half = tracker(frames, prompts=PROMPTS, autocast=str(dtype).split(".")[1])
    finally:
        hook.remove()
    assert calls and set(calls) == {dtype}  # the model really ran in half precision
    assert [r["object_ids"] for r in half] == [r["object_ids"] for r in reference]
    assert all(r["masks"].dtype == bool and r["masks"].shape == (2, 1, 96, 128) and r["scores"].dtype == np.float32 for r in half)

    model = tracker.model
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, 128, 128, generator=generator)
    tokens, width = int(np.prod(model.config.memory_attention_rope_feat_sizes)), model.config.memory_attention_hidden_size
    features, position = torch.randn(2, tokens, width, generator=generator)
    memory, memory_position = torch.randn(2, 3 * tokens + 8, 1, 64, generator=generator)

    def stages():
        encoded = model.get_image_features(pixels, return_dict=True).fpn_hidden_states
        attended = fast_memory.condition(model, fast_memory.FrameContext(features, position), memory, memory_position, 8)
        return encoded, attended

    with torch.inference_mode():
        full_encoded, full_attended = stages()
        with torch.autocast("cpu", dtype=dtype):
            half_encoded, half_attended = stages()
    assert max(relative_error(a, b) for a, b in zip(full_encoded, half_encoded)) <= TOLERANCE[dtype]["image features"]
    assert relative_error(full_attended, half_attended) <= TOLERANCE[dtype]["memory attention"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_model_gives_the_same_masks(tiny_video_model_dir, frames):
    reference = pipeline("video-object-tracking", model=tiny_video_model_dir)(frames, prompts=PROMPTS)
    tracker = pipeline("video-object-tracking", model=tiny_video_model_dir, compile=True)
    state = {k: v.clone() for k, v in tracker.model.state_dict().items()}
    compiled = tracker(frames, prompts=PROMPTS)
    assert all(hasattr(getattr(tracker.model, name), "_compiled_call_impl") for name in ("vision_encoder", "mask_decoder", "memory_encoder"))
    assert tracker.model.vision_encoder._compiled_call_impl is not None
    assert list(tracker.model.state_dict()) == list(state)  # parameter names unchanged
    for a, b in zip(compiled, reference):
        for k in range(len(b["object_ids"])):
            assert iou(a["masks"][k], b["masks"][k]) >= 0.99
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-3)
