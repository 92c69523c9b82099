"""Every scenario of the SAM 2 video documentation ("Video Segmentation and Tracking", "Streaming Video
Inference") run through this package's API, with the counts the documentation states.

The documentation's clip is 180 frames of 480x854; here a 10-frame 48x86 mp4 stands in (coordinates are
scaled by 1/10, the refinement frame 50 of 180 becomes frame 5 of 10). Checks keep the documentation's
statements: "Segmentation shape: [1, 1, H, W]", "Tracked object through <all> frames", "Tracked 2 objects
through <all> frames", "Generated masks for 2 objects", per-frame masks while streaming the first 10 frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2_pipelines import testing

H, W, FRAMES = 48, 86, 10


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """Stand-in for bedroom.mp4."""
    return str(testing.synthetic_video(tmp_path_factory.mktemp("seed") / "bedroom.mp4", num_frames=FRAMES, height=H, width=W))


def test_basic_video_tracking(tracker, video):
    session = tracker.session(video)
    first = session.add_points(0, 1, [[21, 35]], [1])
    assert first["masks"].shape == (1, 1, H, W)  # "Segmentation shape: torch.Size([1, 1, 480, 854])"
    video_segments = {r["frame_idx"]: r["masks"] for r in session.propagate()}
    assert len(video_segments) == FRAMES  # "Tracked object through 180 frames"
    assert sorted(video_segments) == list(range(FRAMES))
    assert np.array_equal(video_segments[0], first["masks"])


def multi_object_session(tracker, video):
    session = tracker.session(video)
    session.add_points(0, 1, [[21, 35]], [1])
    session.reset()  # "Reset for new tracking session"
    for obj_id, point in zip([2, 3], [[20, 30], [40, 15]]):
        session.add_points(0, obj_id, [point], [1])
    return session


def test_multi_object_video_tracking(tracker, video):
    session = multi_object_session(tracker, video)
    video_segments = {
        r["frame_idx"]: {obj_id: r["masks"][i] for i, obj_id in enumerate(r["object_ids"])} for r in session.propagate()
    }
    assert session.object_ids == [2, 3]  # "Tracked 2 objects through 180 frames"
    assert len(video_segments) == FRAMES and all(sorted(masks) == [2, 3] for masks in video_segments.values())
    assert all(mask.shape == (1, H, W) for masks in video_segments.values() for mask in masks.values())


def test_refining_video_segmentation(tracker, video):
    session = multi_object_session(tracker, video)
    before = list(session.propagate())
    refined = session.refine(5, 2, [[22, 28]], [1])  # "Add refinement click on a later frame", object 2
    after = list(session.propagate())  # "Re-propagate with the additional information"
    assert [r["frame_idx"] for r in after] == list(range(FRAMES))
    assert session.prompted_frames == {2: [0, 5], 3: [0]}
    assert np.array_equal(after[5]["masks"][0], refined["masks"][0])  # the refinement holds after re-propagation
    assert not np.array_equal(after[5]["scores"][0], before[5]["scores"][0])
    assert np.array_equal(after[5]["scores"][1], before[5]["scores"][1])  # object 3 is untouched


def test_streaming_video_inference(tracker, video):
    from sam2_pipelines.io.video import open_video

    frames = open_video(video)
    session = tracker.session()  # "Initialize session for streaming"
    shapes = []
    for frame_idx in range(10):  # "Process first 10 frames"
        prompts = [{"obj_id": 1, "points": [[21, 35], [25, 22]], "labels": [1, 1]}] if frame_idx == 0 else None
        output = session.push_frame(frames[frame_idx], prompts=prompts)
        assert output["frame_idx"] == frame_idx
        shapes.append(output["masks"].shape)
    assert shapes == [(1, 1, H, W)] * 10  # "Frame i: mask shape ..."
    # the same through the one-shot call, with an iterator as the camera
    streamed = tracker(iter(frames), prompts=[{"frame": 0, "obj_id": 1, "points": [[21, 35], [25, 22]], "labels": [1, 1]}], max_frames=10)
    assert [r["masks"].shape for r in streamed] == shapes


def test_video_batch_processing_for_multiple_objects(tracker, video):
    prompts = [
        {"frame": 0, "obj_id": 2, "points": [[20, 30], [23, 25], [27, 17]], "labels": [1, 1, 0]},  # 2 positive, 1 negative
        {"frame": 0, "obj_id": 3, "points": [[40, 15]], "labels": [1]},
    ]
    results = tracker(video, prompts=prompts)
    assert results[0]["masks"].shape[0] == 2  # "Generated masks for 2 objects"
    video_segments = {r["frame_idx"]: dict(zip(r["object_ids"], r["masks"])) for r in results}
    assert len(video_segments) == FRAMES and all(list(masks) == [2, 3] for masks in video_segments.values())  # "Tracked 2 objects through 180 frames"
    single = tracker(video, prompts=[{**prompts[0], "points": prompts[0]["points"][:1], "labels": [1]}], max_frames=1)
    assert not np.array_equal(single[0]["scores"][0], results[0]["scores"][0])  # the extra clicks are used
