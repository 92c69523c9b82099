"""SAM 3 tracker video models (``Sam3TrackerVideoModel``) in ``video-object-tracking``: tracked masks equal those
of transformers' own SAM 3 tracker video API on the same weights and frames, with pruned (flat) memory, in
sessions with corrections and in streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import pipeline

from sam2_pipelines import testing

NUM_FRAMES, H, W = 12, 96, 128


@pytest.fixture(scope="module")
def sam3_tracker(tiny_sam3_tracker_video_model_dir):
    tracker = pipeline("video-object-tracking", model=tiny_sam3_tracker_video_model_dir)
    assert type(tracker.model).__name__ == "Sam3TrackerVideoModel"
    return tracker


@pytest.fixture(scope="module")
def frames():
    return testing.synthetic_frames(NUM_FRAMES, H, W)


def transformers_tracks(tracker, frames, prompts) -> dict:
    """``{frame: (objects, H, W) bool}`` from transformers' API: ``init_video_session``, inputs per object, a
    forward on each prompted frame, then ``propagate_in_video_iterator``."""
    processor, model = tracker.processor, tracker.model
    session = processor.init_video_session(video=list(frames), inference_device="cpu")
    with torch.no_grad():
        for prompt in prompts:
            inputs = {"input_points": [[prompt["points"]]], "input_labels": [[prompt["labels"]]]} if "points" in prompt else {"input_boxes": [[prompt["box"]]]}
            processor.add_inputs_to_inference_session(inference_session=session, frame_idx=prompt["frame"], obj_ids=prompt["obj_id"], **inputs)
            model(inference_session=session, frame_idx=prompt["frame"])
        tracks = {}
        for output in model.propagate_in_video_iterator(session):
            masks = processor.post_process_masks([output.pred_masks], original_sizes=[[H, W]], binarize=True)[0]
            tracks[output.frame_idx] = masks[:, 0].numpy()
    return tracks


PROMPTS = [
    {"frame": 0, "obj_id": 1, "points": [[30.0, 40.0], [100.0, 20.0]], "labels": [1, 0]},
    {"frame": 0, "obj_id": 2, "box": [60.0, 30.0, 120.0, 90.0]},
]


def test_tracks_equal_transformers_sam3_tracker_video(sam3_tracker, frames):
    theirs = transformers_tracks(sam3_tracker, frames, PROMPTS)
    session = sam3_tracker.session(list(frames), frame_resize="bilinear")  # transformers' frame preprocessing
    for prompt in PROMPTS:
        if "points" in prompt:
            session.add_points(prompt["frame"], prompt["obj_id"], prompt["points"], prompt["labels"])
        else:
            session.add_box(prompt["frame"], prompt["obj_id"], prompt["box"])
    ours = {r["frame_idx"]: r for r in session.propagate()}
    assert sorted(ours) == sorted(theirs) == list(range(NUM_FRAMES))
    coverage = []
    for frame, masks in theirs.items():
        assert ours[frame]["object_ids"] == [1, 2]
        np.testing.assert_array_equal(ours[frame]["masks"][:, 0], masks)
        coverage += [float(m.mean()) for m in masks]
    assert any(0.02 < c < 0.98 for c in coverage)  # the comparison can fail
    # pruned memory: no more tracked outputs than the model can read, however long the video
    stats = session.memory_stats()
    window = max(sam3_tracker.model.config.num_maskmem, sam3_tracker.model.config.max_object_pointers_in_encoder)
    assert stats["peak_tracked_outputs"] <= 2 * window


def test_pruned_session_correction_and_streaming_equal_a_full_session(sam3_tracker, frames):
    """Memory pruning changes nothing; a correction re-tracks; streaming gives the session's masks."""
    def run(prune_memory):
        session = sam3_tracker.session(list(frames), prune_memory=prune_memory)
        session.add_points(0, 1, [[30.0, 40.0]], [1])
        first = {r["frame_idx"]: r["masks"] for r in session.propagate()}
        session.add_points(6, 1, [[90.0, 50.0]], [0])
        second = {r["frame_idx"]: r["masks"] for r in session.propagate(start_frame=6)}
        return first, second

    pruned, full = run(True), run(False)
    for a, b in zip(pruned, full):
        assert sorted(a) == sorted(b)
        for frame in a:
            np.testing.assert_array_equal(a[frame], b[frame])
    assert any(not np.array_equal(pruned[1][f], pruned[0][f]) for f in pruned[1])  # the correction changed masks

    stream = sam3_tracker.session()
    streamed = [stream.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[30.0, 40.0]], "labels": [1]}])["masks"]]
    streamed += [stream.push_frame(frame)["masks"] for frame in frames[1:]]
    for frame, masks in enumerate(streamed):
        np.testing.assert_array_equal(masks, pruned[0][frame])
