"""Memory stays bounded, and dropping what the model can no longer read changes no result.

The models here attend to 3 mask memories and 4 object pointers, so a 12-frame video pushes memories out
of the windows many times over. Every result of a pruned session is compared bit for bit with a session
that keeps everything, and with transformers' own (unbounded) session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import pipeline

from sam2_pipelines import testing

from sam2_pipelines.io import video as video_io

H, W = 48, 64
NUM_MASKMEM, MAX_POINTERS = 3, 4
WINDOW = max(NUM_MASKMEM, MAX_POINTERS)  # tracked frames held: what the next step reads, and the latest frame's window
ROOT = Path(__file__).resolve().parents[2]


def small_window_tracker(directory: Path, kind: str):
    path = testing.save_tiny_video_model(directory, kind, num_maskmem=NUM_MASKMEM, max_object_pointers=MAX_POINTERS, visible_bias=2.0, size=128)
    return pipeline("video-object-tracking", model=str(path))


@pytest.fixture(scope="module")
def small_window_sam2_tracker(tmp_path_factory):
    return small_window_tracker(tmp_path_factory.mktemp("small-window-sam2"), "video")


@pytest.fixture(scope="module")
def small_window_edgetam_tracker(tmp_path_factory):
    return small_window_tracker(tmp_path_factory.mktemp("small-window-edgetam"), "edgetam-video")


@pytest.fixture(scope="module")
def clip12(tmp_path_factory):
    return str(testing.synthetic_video(tmp_path_factory.mktemp("clip12") / "clip.mp4", num_frames=12, height=H, width=W))


@pytest.fixture(scope="module")
def clip8(tmp_path_factory):
    return str(testing.synthetic_video(tmp_path_factory.mktemp("clip8") / "clip.mp4", num_frames=8, height=H, width=W))


def bounded_propagate(session, pass_count: int = 1, **options):
    """Propagate and check, after every frame, that held tracked outputs stay within the windows."""
    results = []
    for result in session.propagate(**options):
        held = session.memory_stats()
        if session.prune_memory:
            objects = len(session.object_ids)
            pinned = held["pinned_outputs"]  # outputs of cleared prompts
            assert held["tracked_outputs"] <= objects * WINDOW * pass_count + pinned, held
            assert held["vision_features"] <= 1
        results.append(result)
    return results


def count_replays(session) -> int:
    """How many times the session recomputed dropped outputs so far."""
    return session.memory_stats()["replays"]


def interactive_scenario(tracker, video, prune_memory: bool, extended: bool = True, two_objects: bool = True) -> list:
    """Prompts on several frames, a correction after propagation, both directions, a new object, resuming."""
    session = tracker.session(video, prune_memory=prune_memory)
    last = session.num_frames - 1
    results = [session.add_points(0, 1, [[20, 24]], [1])]
    if two_objects:
        results.append(session.add_box(2, 2, [30, 10, 60, 40]))
    results += bounded_propagate(session)
    results.append(session.refine(last - 3, 1, [[30, 20]], [0]))  # a tracked frame: a correction
    assert bool(count_replays(session)) == prune_memory  # its memories were dropped (recomputed) or kept
    results.append(session.refine(last - 3, 1, [[34, 22]], [1]))  # decoded with the first correction's logits
    results += bounded_propagate(session, pass_count=2, direction="both", start_frame=last - 5)
    if extended:
        mask = np.zeros((H, W), bool)
        mask[5:25, 40:60] = True
        results.append(session.add_mask(10, 3, mask))
        results += bounded_propagate(session, max_frames=4)
        results += bounded_propagate(session, pass_count=2, start_frame=4, direction="both", max_frames=3)  # resumes where the last call stopped
    objects = len(session.object_ids)
    if prune_memory:
        assert session.memory_stats()["peak_tracked_outputs"] <= objects * (2 * WINDOW + 1)  # + the frame being tracked
        assert session.memory_stats()["decoded_frames"] <= video_io.DECODED_FRAMES_KEPT
    return results, session.memory_stats()["tracked_outputs"]


def assert_identical(pruned: list, kept: list) -> None:
    assert len(pruned) == len(kept)
    for a, b in zip(pruned, kept):
        assert a["frame_idx"] == b["frame_idx"] and a["object_ids"] == b["object_ids"]
        assert np.array_equal(a["masks"], b["masks"]), a["frame_idx"]
        assert np.array_equal(a["scores"], b["scores"]), (a["frame_idx"], a["scores"], b["scores"])


def test_pruning_changes_no_result_sam2(small_window_sam2_tracker, clip12):
    pruned, pruned_held = interactive_scenario(small_window_sam2_tracker, clip12, prune_memory=True)
    kept, kept_held = interactive_scenario(small_window_sam2_tracker, clip12, prune_memory=False)
    assert kept_held > pruned_held  # the comparison run really kept more
    expected = [0, 2] + list(range(12)) + [8, 8] + list(range(6, 12)) + list(range(5, -1, -1))
    expected += [10] + [0, 1, 2, 3] + [4, 5, 6] + [3, 2, 1]
    assert [r["frame_idx"] for r in pruned] == expected
    assert any(r["masks"].any() for r in pruned) and len({r["scores"].tobytes() for r in pruned}) > 10
    assert_identical(pruned, kept)


def test_pruning_changes_no_result_edgetam(small_window_edgetam_tracker, clip8):
    pruned, pruned_held = interactive_scenario(small_window_edgetam_tracker, clip8, prune_memory=True, extended=False, two_objects=False)
    kept, kept_held = interactive_scenario(small_window_edgetam_tracker, clip8, prune_memory=False, extended=False, two_objects=False)
    assert kept_held > pruned_held
    assert_identical(pruned, kept)


@pytest.mark.parametrize("prune_memory", [True, False])
def test_correction_where_propagation_stopped_needs_no_replay(small_window_sam2_tracker, clip12, prune_memory):
    """Stopping at a bad frame and correcting it there reads only what the session still holds."""
    session = small_window_sam2_tracker.session(clip12, prune_memory=prune_memory)
    session.add_points(0, 1, [[20, 24]], [1])
    for result in session.propagate():
        if result["frame_idx"] == 7:
            break
    corrected = session.add_points(7, 1, [[40, 30]], [0])
    assert count_replays(session) == 0
    reference = small_window_sam2_tracker.session(clip12, prune_memory=False)
    reference.add_points(0, 1, [[20, 24]], [1])
    list(reference.propagate())  # tracked to the end: frame 7's outputs come from the same steps
    assert_identical([corrected], [reference.add_points(7, 1, [[40, 30]], [0])])


def transformers_reference(tracker, frames, points: list) -> list:
    """transformers' own session: every frame preprocessed up front, every output kept."""
    processor, model = tracker.processor, tracker.model
    session = processor.init_video_session(video=list(frames), inference_device="cpu")
    ids = list(range(1, len(points) + 1))
    processor.add_inputs_to_inference_session(
        inference_session=session, frame_idx=0, obj_ids=ids, input_points=[[[p] for p in points]], input_labels=[[[1] for _ in points]]
    )
    results = []
    with torch.inference_mode():
        model(inference_session=session, frame_idx=0)
        for out in model.propagate_in_video_iterator(session):
            logits = F.interpolate(out.pred_masks.float(), size=(H, W), mode="bilinear", align_corners=False)
            scores = torch.sigmoid(out.object_score_logits.float().reshape(-1))
            results.append({"frame_idx": out.frame_idx, "masks": (logits > 0).numpy(), "scores": scores.numpy()})
    return results


@pytest.mark.parametrize("name", ["sam2", "edgetam"])
def test_bounded_session_matches_transformers_session(request, name, clip12):
    tracker = request.getfixturevalue(f"small_window_{name}_tracker")
    frames = list(video_io.open_video(clip12))[: 9 if name == "sam2" else 6]
    points = [[20, 24], [45, 25]] if name == "sam2" else [[20, 24]]
    prompts = [{"frame": 0, "obj_id": i + 1, "points": [p], "labels": [1]} for i, p in enumerate(points)]
    # transformers' session preprocesses with its own (bilinear) video processor: compare on the same pixels
    ours = tracker(frames, prompts=prompts, frame_resize="bilinear")
    reference = transformers_reference(tracker, frames, points)
    assert [r["frame_idx"] for r in ours] == [r["frame_idx"] for r in reference] == list(range(len(frames)))
    for a, b in zip(ours, reference):
        assert np.array_equal(a["masks"], b["masks"]), a["frame_idx"]
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=0, atol=1e-6)


def test_streaming_memory_is_bounded(small_window_sam2_tracker, clip12):
    session = small_window_sam2_tracker.session()
    for index, frame in enumerate(video_io.open_video(clip12)):
        prompts = [{"obj_id": 1, "points": [[20, 24]], "labels": [1]}] if index == 0 else None
        if index == 4:
            prompts = [{"obj_id": 2, "box": [30, 10, 60, 40]}]
        result = session.push_frame(frame, prompts=prompts)
        held = session.memory_stats()
        assert held["tracked_outputs"] <= len(result["object_ids"]) * MAX_POINTERS
        assert held["frames"] == 1 and held["vision_features"] <= 1
    assert session.memory_stats()["prompted_outputs"] == 2 and session.num_frames == 12


@pytest.mark.slow
def test_benchmark_peak_memory_is_flat_in_video_length():
    """The benchmark script itself, on 30 vs 300 frames: the longer run's peak RSS is within 15%."""
    command = [sys.executable, str(ROOT / "benchmarks" / "video_memory_benchmark.py"), "--short", "30", "--long", "300", "--size", "128"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    ratio_line = [line for line in completed.stdout.splitlines() if "ratio" in line][0]
    ratio = float(ratio_line.split("=")[1].split()[0])
    assert ratio <= 1.15, completed.stdout


def partial_repropagation(tracker, video, prune_memory: bool) -> tuple[list, int]:
    """Meta's predictor keeps every tracked output between calls: a propagation started mid-video, and a
    correction on a frame only an earlier call tracked, read those outputs (recomputed when dropped)."""
    session = tracker.session(video, prune_memory=prune_memory)
    results = [session.add_points(0, 1, [[20, 24]], [1])]
    results += bounded_propagate(session)
    results += bounded_propagate(session, start_frame=8, max_frames=3)  # reads frames 0-7 of the first call
    results.append(session.add_points(2, 1, [[30, 20]], [0]))  # frame 2: tracked by the first call only
    results += bounded_propagate(session, start_frame=5, direction="backward", max_frames=3)
    results += bounded_propagate(session)
    return results, count_replays(session)


def test_partial_repropagation_reads_earlier_calls(small_window_sam2_tracker, clip12):
    pruned, replays = partial_repropagation(small_window_sam2_tracker, clip12, prune_memory=True)
    kept, kept_replays = partial_repropagation(small_window_sam2_tracker, clip12, prune_memory=False)
    assert replays and not kept_replays  # the pruned session recomputed what it had dropped
    assert_identical(pruned, kept)
    fresh = small_window_sam2_tracker.session(clip12)
    fresh.add_points(0, 1, [[20, 24]], [1])
    alone = list(fresh.propagate(start_frame=8, max_frames=3))  # no earlier call: frames 0-7 are not memories
    assert not all(np.array_equal(a["scores"], b["scores"]) for a, b in zip(alone, pruned[13:16]))


def cleared_prompts(tracker, video, prune_memory: bool) -> list:
    """Meta's ``clear_all_prompts_in_frame``: a cleared conditioning frame's output stays readable as a tracked
    output until the frame is re-tracked; the frame counts as untracked (a new prompt there starts afresh)."""
    session = tracker.session(video, prune_memory=prune_memory)
    results = [session.add_points(0, 1, [[20, 24]], [1]), session.add_points(6, 1, [[40, 30]], [1])]
    results += bounded_propagate(session)
    session.clear_prompts(6, 1)
    assert session.prompted_frames == {1: [0]}
    results += bounded_propagate(session, start_frame=9, max_frames=3)  # reads frame 6's cleared output (kept) and frames 7-8 (recomputed)
    results.append(session.add_points(6, 1, [[30, 20]], [1]))  # untracked again: from the click alone
    session.clear_prompts(6, 1)  # a pending prompt: forgotten with its result
    results += bounded_propagate(session)
    return results


def test_cleared_prompts_read_like_meta(small_window_sam2_tracker, clip12):
    pruned = cleared_prompts(small_window_sam2_tracker, clip12, prune_memory=True)
    kept = cleared_prompts(small_window_sam2_tracker, clip12, prune_memory=False)
    assert_identical(pruned, kept)
    session = small_window_sam2_tracker.session(clip12)
    session.add_points(0, 1, [[20, 24]], [1])
    session.clear_prompts(0, 1)
    with pytest.raises(ValueError, match="no prompts left"):
        session.propagate()
    with pytest.raises(ValueError, match="unknown object id 5"):
        session.clear_prompts(0, 5)
