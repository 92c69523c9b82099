"""The shared-work memory attention and tracking step compute the model's own (up to float rounding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import pipeline

from sam2_pipelines.kernels import fast_memory

from sam2_pipelines.kernels import tracking_step

ATOL = 2e-5


@pytest.fixture(scope="module")
def model(tiny_video_model_dir):
    model = pipeline("video-object-tracking", model=tiny_video_model_dir).model
    assert tracking_step.supported(model)
    return model


def _inputs(model, memory_frames: int, pointer_tokens: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    tokens = int(np.prod(model.config.memory_attention_rope_feat_sizes))
    width = model.config.memory_attention_hidden_size
    features = torch.randn(tokens, 1, width, generator=generator)
    position = torch.randn(tokens, 1, width, generator=generator)
    count = memory_frames * tokens + pointer_tokens
    memory = torch.randn(count, 1, 64, generator=generator).to(torch.bfloat16).float()
    memory_position = torch.randn(count, 1, 64, generator=generator)
    return features, position, memory, memory_position


@pytest.mark.parametrize("memory_frames, pointer_tokens", [(1, 0), (3, 8), (7, 64), (0, 16)])
def test_condition_equals_the_module(model, memory_frames, pointer_tokens, monkeypatch):
    monkeypatch.setattr(fast_memory, "QUERY_CHUNK", 100)  # several chunks, the last one partial
    features, position, memory, memory_position = _inputs(model, memory_frames, pointer_tokens, seed=memory_frames)
    with torch.inference_mode():
        expected = model.memory_attention(features, memory, position, memory_position, pointer_tokens)
        got = fast_memory.condition(model, fast_memory.FrameContext(features[:, 0], position[:, 0]), memory, memory_position, pointer_tokens)
    expected = expected.reshape(got.shape)
    assert got.shape == (features.shape[0], features.shape[2])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=1e-5)


def test_shared_frame_work_does_not_depend_on_the_first_object(model):
    features, position, memory_a, position_a = _inputs(model, 3, 8, seed=1)
    _, _, memory_b, position_b = _inputs(model, 2, 4, seed=2)
    with torch.inference_mode():
        alone = fast_memory.condition(model, fast_memory.FrameContext(features[:, 0], position[:, 0]), memory_b, position_b, 4)
        shared = fast_memory.FrameContext(features[:, 0], position[:, 0])
        fast_memory.condition(model, shared, memory_a, position_a, 8)
        after = fast_memory.condition(model, shared, memory_b, position_b, 4)
    assert torch.equal(alone, after)  # bit for bit: replaying one object alone reproduces its step


def test_scratch_buffers_grown_or_reused_change_nothing(model):
    """A context whose workspace another context filled, then grows and reuses (objects of one frame with
    banks of different sizes): results are bit for bit those of a fresh context."""
    features, position, small, small_position = _inputs(model, 1, 4, seed=3)
    next_features, next_position, large, large_position = _inputs(model, 3, 8, seed=4)
    with torch.inference_mode():
        first = fast_memory.FrameContext(features[:, 0], position[:, 0])
        fast_memory.condition(model, first, small, small_position, 4)
        assert first.workspace  # the CPU path used it
        carried = fast_memory.FrameContext(next_features[:, 0], next_position[:, 0], workspace=first.workspace)
        for memory, memory_position, pointers in [(large, large_position, 8), (small, small_position, 4)]:  # grows, then reuses
            got = fast_memory.condition(model, carried, memory, memory_position, pointers)
            fresh = fast_memory.condition(model, fast_memory.FrameContext(next_features[:, 0], next_position[:, 0]), memory, memory_position, pointers)
            assert torch.equal(got, fresh)


@pytest.mark.parametrize("keys", [1000, 1001, 1008])  # padded to a multiple of ALIGN (16) by 8, by 15, not at all
def test_chunked_cpu_attention_equals_sdpa(keys):
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(300, 32, generator=generator), torch.randn(keys, 32, generator=generator), torch.randn(keys, 8, generator=generator))
    expected = torch.softmax(query @ key.t() * 0.3, dim=-1) @ value
    workspace = {}
    torch.testing.assert_close(fast_memory.attend(query, key, value, 0.3, workspace), expected, atol=1e-6, rtol=1e-5)
    assert workspace["scores"].numel() % fast_memory.ALIGN == 0
    assert ("values" in workspace) == (keys % fast_memory.ALIGN != 0)


def _track(tracker, frames, fast: bool, prompts, monkeypatch):
    with monkeypatch.context() as patch:
        if not fast:  # the session then runs transformers' own step (a session decides once, when created)
            patch.setattr(tracking_step, "supported", lambda model: False)
        session = tracker.session(frames)
    for frame, obj_id, point, label in prompts:
        session.add_points(frame, obj_id, [point], [label])
    results = list(session.propagate())
    correction = session.add_points(4, 1, [[40, 30]], [0])
    return results, correction


def test_tracking_with_shared_work_equals_the_model_step(tiny_video_model_dir, frames, monkeypatch):
    tracker = pipeline("video-object-tracking", model=tiny_video_model_dir)
    assert tracking_step.supported(tracker.model)
    prompts = [(0, 1, [60, 40], 1), (0, 2, [20, 70], 1), (2, 3, [100, 30], 1)]
    fast, fast_correction = _track(tracker, frames, True, prompts, monkeypatch)
    slow, slow_correction = _track(tracker, frames, False, prompts, monkeypatch)
    assert [r["object_ids"] for r in fast] == [r["object_ids"] for r in slow]
    assert any(r["masks"].any() for r in fast)
    for a, b in zip(fast + [fast_correction], slow + [slow_correction]):
        differing = (a["masks"] != b["masks"]).mean()
        assert differing < 1e-3, f"frame {a['frame_idx']}: {differing:.2%} of pixels differ"
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-4)


def test_edgetam_keeps_the_model_step(tiny_edgetam_video_model_dir):
    model = pipeline("video-object-tracking", model=tiny_edgetam_video_model_dir).model
    assert not tracking_step.supported(model)
