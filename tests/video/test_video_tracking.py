"""The video-object-tracking pipeline end to end: inputs, options, sessions, streaming and bad input.

Models are tiny random checkpoints loaded with ``pipeline(...)``; videos are real mp4 files written with PyAV.
The object-score head of the main test model is biased towards "visible" so that masks are not blanked out.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from sam2_pipelines import TrackingSession, VideoObjectTrackingPipeline, testing

from sam2_pipelines.io import video as video_io
from sam2_pipelines.core.masks import decode_rle

H, W = 48, 64


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 6-frame 48x64 mp4 and its decoded frames."""
    path = testing.synthetic_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=6, height=H, width=W)
    return str(path), np.stack(list(video_io.open_video(path)))


def click(frame=0, obj_id=1, x=20, y=24, label=1):
    return {"frame": frame, "obj_id": obj_id, "points": [[x, y]], "labels": [label]}


def same(a: list, b: list) -> bool:
    """Identical per-frame results (frame order, ids, masks, scores)."""
    return len(a) == len(b) and all(
        x["frame_idx"] == y["frame_idx"]
        and x["object_ids"] == y["object_ids"]
        and np.array_equal(x["masks"], y["masks"])
        and np.array_equal(x["scores"], y["scores"])
        for x, y in zip(a, b)
    )


def test_results_have_the_documented_layout(tracker, clip):
    path, _ = clip
    results = tracker(path, prompts=[click(obj_id=5), {"frame": 0, "obj_id": 2, "box": [30, 10, 60, 40]}])
    assert isinstance(results, list) and [r["frame_idx"] for r in results] == list(range(6))
    for result in results:
        assert set(result) == {"frame_idx", "object_ids", "masks", "scores"}
        assert result["object_ids"] == [5, 2]
        assert result["masks"].shape == (2, 1, H, W) and result["masks"].dtype == bool
        assert result["scores"].shape == (2,) and result["scores"].dtype == np.float32
        assert np.all((result["scores"] >= 0) & (result["scores"] <= 1))
    assert any(r["masks"].any() for r in results)
    assert not np.array_equal(results[0]["masks"][0], results[0]["masks"][1])


def test_every_kind_of_video_input_gives_the_same_result(tracker, clip, tmp_path):
    path, decoded = clip
    prompts = [click()]
    reference = tracker(path, prompts=prompts, max_frames=3)
    for i, frame in enumerate(decoded):
        Image.fromarray(frame).save(tmp_path / f"frame_{i}.png")
    inputs = {
        "folder": str(tmp_path),
        "pil list": [Image.fromarray(f) for f in decoded],
        "array": decoded,
        "tensor": torch.from_numpy(decoded),
        "frame source": video_io.open_video(path),
    }
    for name, video in inputs.items():
        assert same(tracker(video, prompts=prompts, max_frames=3), reference), name


def test_directions_start_frame_and_max_frames(tracker, clip):
    path, _ = clip
    prompts = [click(frame=2)]

    def order(**options):
        return [r["frame_idx"] for r in tracker(path, prompts=prompts, **options)]

    forward = tracker(path, prompts=prompts)
    assert [r["frame_idx"] for r in forward] == [2, 3, 4, 5]
    assert order(direction="backward") == [2, 1, 0]
    both = tracker(path, prompts=prompts, direction="both")
    assert [r["frame_idx"] for r in both] == [2, 3, 4, 5, 1, 0]
    assert same(both[:4], forward)
    assert order(start_frame=4) == [4, 5]
    assert order(max_frames=2) == [2, 3]
    assert order(direction="both", max_frames=2) == [2, 3, 1, 0]
    # backward starts from the latest prompted frame by default
    two = [click(frame=1), click(frame=3, obj_id=2)]
    assert [r["frame_idx"] for r in tracker(path, prompts=two, direction="backward")] == [3, 2, 1, 0]


def test_rle_output_decodes_to_the_binary_masks(tracker, clip):
    path, _ = clip
    prompts = [click(), click(obj_id=3, x=50, y=30)]
    binary = tracker(path, prompts=prompts, max_frames=2)
    rle = tracker(path, prompts=prompts, max_frames=2, output="rle")
    for b, r in zip(binary, rle):
        assert isinstance(r["masks"], list) and len(r["masks"]) == 2 and r["masks"][0]["size"] == [H, W]
        assert np.array_equal(np.stack([decode_rle(m) for m in r["masks"]])[:, None], b["masks"])
        assert np.array_equal(r["scores"], b["scores"])


def test_stream_returns_a_generator_and_checks_arguments_first(tracker, clip, capsys):
    path, _ = clip
    generator = tracker(path, prompts=[click(frame=4)], stream=True, progress=True)
    assert isinstance(generator, types.GeneratorType)
    assert [r["frame_idx"] for r in generator] == [4, 5]
    assert "tracking" in capsys.readouterr().err
    with pytest.raises(ValueError, match="has 6 frames"):
        tracker(path, prompts=[click(frame=6)], stream=True)


def test_an_iterator_of_frames_is_tracked_as_it_arrives(tracker, clip):
    _, decoded = clip
    prompts = [click(frame=1), click(frame=3, obj_id=2, x=40)]
    results = tracker((f for f in decoded), prompts=prompts)
    assert [r["frame_idx"] for r in results] == list(range(6))
    assert [r["object_ids"] for r in results] == [[], [1], [1], [1, 2], [1, 2], [1, 2]]
    assert results[0]["masks"].shape == (0, 1, H, W) and results[4]["masks"].shape == (2, 1, H, W)
    assert [r["frame_idx"] for r in tracker(iter(decoded), prompts=[click(frame=2)], start_frame=2, max_frames=2)] == [2, 3]
    with pytest.raises(ValueError, match="ended"):
        tracker(iter(decoded[:3]), prompts=[click(frame=4)])
    with pytest.raises(ValueError, match="forward"):
        tracker(iter(decoded), prompts=[click()], direction="both")


BAD_CALLS = {
    "direction": ({"direction": "sideways"}, "direction must be one of"),
    "output": ({"output": "polygons"}, "output must be one of"),
    "unknown kwarg": ({"threshold": 0.5}, "unknown argument"),
    "stream flag": ({"stream": "yes"}, "stream must be True or False"),
    "no prompts": ({"prompts": []}, "at least one prompt"),
    "prompts not a list": ({"prompts": "frame 0"}, "list of prompt dicts"),
    "past the end": ({"prompts": [click(frame=6)]}, "past the end|has 6 frames"),
    "negative frame": ({"prompts": [click(frame=-1)]}, "frame must be >= 0"),
    "mismatched labels": ({"prompts": [{"frame": 0, "obj_id": 1, "points": [[1, 2], [3, 4]], "labels": [1]}]}, "one label per point"),
    "labels only": ({"prompts": [{"frame": 0, "obj_id": 1, "labels": [1]}]}, "labels were given without points"),
    "points only": ({"prompts": [{"frame": 0, "obj_id": 1, "points": [[1, 2]]}]}, "labels are required"),
    "bad label": ({"prompts": [click(label=5)]}, "labels must be integers in"),
    "outside": ({"prompts": [click(x=500)]}, "outside the image"),
    "unknown key": ({"prompts": [{**click(), "confidence": 1}]}, "unknown prompt keys"),
    "no prompt content": ({"prompts": [{"frame": 0, "obj_id": 1}]}, "needs points with labels, a box or a mask"),
    "no obj id": ({"prompts": [{"frame": 0, "points": [[1, 2]], "labels": [1]}]}, "needs 'obj_id'"),
    "float obj id": ({"prompts": [{**click(), "obj_id": 1.5}]}, "obj_id must be an integer"),
    "bad box": ({"prompts": [{"frame": 0, "obj_id": 1, "box": [10, 10, 5, 20]}]}, "x0 <= x1"),
    "mask shape": ({"prompts": [{"frame": 0, "obj_id": 1, "mask": np.ones((10, 10), bool)}]}, r"frame's size \(H, W\) = \(48, 64\)"),
    "mask values": ({"prompts": [{"frame": 0, "obj_id": 1, "mask": np.full((H, W), 0.3)}]}, "must be binary"),
    "mask and points": ({"prompts": [{**click(), "mask": np.ones((H, W), bool)}]}, "cannot be combined"),
    "max_frames": ({"prompts": [click()], "max_frames": 0}, "max_frames must be >= 1"),
    "start_frame": ({"prompts": [click()], "start_frame": 9}, "start_frame 9 is past the end"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_arguments_raise_value_error(tracker, clip, name):
    path, _ = clip
    options, message = BAD_CALLS[name]
    options = {"prompts": [click()], **options}
    with pytest.raises(ValueError, match=message):
        tracker(path, **options)


def test_bad_videos_raise_value_error(tracker, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    for video, message in [(tmp_path / "empty.mp4", "empty"), (tmp_path / "corrupt.mp4", "could not"), (tmp_path / "nope.mp4", "does not exist"), ([], "no frames")]:
        with pytest.raises(ValueError, match=message):
            tracker(str(video) if not isinstance(video, list) else video, prompts=[click()])


def test_unknown_options_at_construction_are_rejected(tiny_video_model_dir):
    with pytest.raises(ValueError, match="unknown argument"):
        pipeline("video-object-tracking", model=tiny_video_model_dir, colour="red")
    defaults = pipeline("video-object-tracking", model=tiny_video_model_dir, output="rle", max_frames=2)
    results = defaults(testing.synthetic_frames(4, H, W), prompts=[click()])
    assert len(results) == 2 and isinstance(results[0]["masks"], list)


def test_session_objects_prompts_and_removal(tracker, clip):
    path, _ = clip
    session = tracker.session(path)
    assert isinstance(session, TrackingSession) and session.num_frames == 6 and session.object_ids == []
    with pytest.raises(ValueError, match="add prompts first"):
        session.propagate()
    first = session.add_points(0, 1, [[20, 24]], [1])
    assert first["object_ids"] == [1] and first["masks"].shape == (1, 1, H, W)
    session.add_box(0, 2, [30, 10, 60, 40])
    given = np.zeros((H, W), bool)
    given[10:30, 5:25] = True
    from_mask = session.add_mask(1, 3, given)
    iou = (from_mask["masks"][0, 0] & given).sum() / (from_mask["masks"][0, 0] | given).sum()
    assert iou > 0.9  # a mask prompt is the object's mask on its frame
    assert session.object_ids == [1, 2, 3] and session.prompted_frames == {1: [0], 2: [0], 3: [1]}
    before = list(session.propagate(max_frames=4))
    assert [r["object_ids"] for r in before] == [[1, 2, 3]] * 4
    session.remove_object(2)
    assert session.object_ids == [1, 3]
    after = list(session.propagate(max_frames=4))
    for b, a in zip(before, after):  # the other objects' tracks do not change
        assert np.array_equal(a["masks"], b["masks"][[0, 2]]) and np.array_equal(a["scores"], b["scores"][[0, 2]])
    for bad in (lambda: session.remove_object(2), lambda: session.refine(2, 9, [[1, 1]], [1]), lambda: session.add_points(6, 1, [[1, 1]], [1])):
        with pytest.raises(ValueError, match="unknown object id|past the end"):
            bad()
    with pytest.raises(ValueError, match="one label per point"):
        session.add_points(0, 1, [[1, 1], [2, 2]], [1])
    session.reset()
    assert session.object_ids == [] and session.num_frames == 6
    with pytest.raises(ValueError, match="add prompts first"):
        session.propagate()


def test_refining_with_more_clicks(tracker, clip):
    path, _ = clip
    session = tracker.session(path)
    session.add_points(0, 1, [[20, 24]], [1])
    first = list(session.propagate())
    refined = session.refine(3, 1, [[30, 20]], [0])
    assert session.prompted_frames == {1: [0, 3]}
    second = list(session.propagate())
    assert [r["frame_idx"] for r in second] == list(range(6))
    assert np.array_equal(second[3]["masks"], refined["masks"])  # the corrected frame keeps its correction
    assert not np.array_equal(second[3]["scores"], first[3]["scores"])
    assert np.array_equal(second[0]["masks"], first[0]["masks"])  # the first prompted frame is reused
    # clicks on one frame accumulate; replace=True starts over
    accumulated = session.add_points(3, 1, [[10, 40]], [1])
    replaced = session.add_points(3, 1, [[30, 20], [10, 40]], [0, 1], replace=True)
    assert np.array_equal(accumulated["masks"], replaced["masks"]) and np.array_equal(accumulated["scores"], replaced["scores"])
    assert not np.array_equal(accumulated["scores"], refined["scores"])


def test_new_object_mid_video_leaves_the_others_alone(tracker, clip):
    path, _ = clip
    session = tracker.session(path)
    session.add_points(0, 1, [[20, 24]], [1])
    alone = list(session.propagate())
    session.add_box(3, 7, [30, 10, 60, 40])
    together = list(session.propagate())
    assert [r["object_ids"] for r in together] == [[1, 7]] * 6
    for a, t in zip(alone, together):
        assert np.array_equal(t["masks"][:1], a["masks"]) and np.array_equal(t["scores"][:1], a["scores"])


def test_propagation_continues_where_it_stopped(tracker, clip):
    path, _ = clip
    whole = tracker(path, prompts=[click()])
    session = tracker.session(path)
    session.add_points(0, 1, [[20, 24]], [1])
    pieces = list(session.propagate(max_frames=2)) + list(session.propagate(start_frame=2))
    assert same(pieces, whole)


def test_streaming_session(tracker, clip):
    _, decoded = clip
    offline = tracker.session()
    assert offline.streaming and offline.num_frames == 0
    with pytest.raises(ValueError, match="no frame has been pushed"):
        offline.add_points(0, 1, [[1, 1]], [1])
    empty = offline.push_frame(decoded[0])
    assert empty["object_ids"] == [] and empty["masks"].shape == (0, 1, H, W)
    first = offline.push_frame(decoded[1], prompts=[{"obj_id": 1, "points": [[20, 24]], "labels": [1]}])
    assert first["frame_idx"] == 1 and first["object_ids"] == [1]
    offline.push_frame(decoded[2])
    late = offline.add_points(2, 4, [[40, 30]], [1])  # a new object on the latest frame
    assert late["object_ids"] == [4]
    third = offline.push_frame(Image.fromarray(decoded[3]), output="rle")
    assert third["object_ids"] == [1, 4] and len(third["masks"]) == 2 and offline.num_frames == 4
    with pytest.raises(ValueError, match="latest pushed frame"):
        offline.add_points(1, 1, [[1, 1]], [1])
    with pytest.raises(ValueError, match="size"):
        offline.push_frame(decoded[4][:20])
    with pytest.raises(ValueError, match="push_frame"):
        offline.propagate()
    with pytest.raises(ValueError, match="streaming sessions"):
        tracker.session(decoded).push_frame(decoded[0])


def test_edgetam_video_model(visible_edgetam_tracker, clip):
    path, decoded = clip
    tracker = visible_edgetam_tracker
    assert isinstance(tracker, VideoObjectTrackingPipeline) and type(tracker.model).__name__ == "EdgeTamVideoModel"
    results = tracker(path, prompts=[click(), {"frame": 0, "obj_id": 2, "box": [30, 10, 60, 40]}], max_frames=3)
    assert [r["frame_idx"] for r in results] == [0, 1, 2] and results[0]["masks"].shape == (2, 1, H, W)
    session = tracker.session(path)
    session.add_points(0, 1, [[20, 24]], [1])
    list(session.propagate(max_frames=3))
    session.refine(2, 1, [[30, 20]], [0])
    assert [r["frame_idx"] for r in session.propagate(direction="backward")] == [2, 1, 0]
    stream = tracker.session()
    assert stream.push_frame(decoded[0], prompts=[{"obj_id": 1, "points": [[20, 24]], "labels": [1]}])["object_ids"] == [1]
    assert stream.push_frame(decoded[1])["masks"].shape == (1, 1, H, W)


def test_stale_propagate_iterators_raise_a_clear_error(tracker, clip):
    """Any call order is safe: an iterator the session has moved past raises ValueError, never a deep error."""
    session = tracker.session(clip[0])
    session.add_points(0, 1, [[20, 20]], [1])
    clean = [r["masks"] for r in session.propagate()]

    first = session.propagate()
    next(first)
    second = session.propagate()
    assert [r["masks"].sum() for r in second] == [m.sum() for m in clean]  # the newer iterator is exact
    with pytest.raises(ValueError, match="stale"):
        next(first)

    forward, backward = session.propagate(), session.propagate(direction="backward", start_frame=len(clean) - 1)
    next(forward)
    next(backward)
    with pytest.raises(ValueError, match="stale"):
        next(forward)

    it = session.propagate()
    next(it)
    session.reset()
    with pytest.raises(ValueError, match="stale"):
        list(it)

    session.add_points(0, 1, [[20, 20]], [1])
    it = session.propagate()
    next(it)
    session.add_points(2, 1, [[30, 25]], [0])
    with pytest.raises(ValueError, match="stale"):
        next(it)
    assert len(list(session.propagate())) == len(clean)


def test_sessions_close_the_video_they_opened(tracker, tmp_path, monkeypatch):
    path = testing.synthetic_video(tmp_path / "clip.mp4", num_frames=4, height=H, width=W)
    closed = []
    real_close = video_io.VideoFileSource.close
    monkeypatch.setattr(video_io.VideoFileSource, "close", lambda self: (closed.append(1), real_close(self)))
    with tracker.session(str(path)) as session:
        session.add_points(0, 1, [[20, 20]], [1])
        assert len(list(session.propagate())) == 4
    assert closed == [1]
    with pytest.raises(ValueError, match="closed"):
        session.add_points(0, 1, [[20, 20]], [1])
    with pytest.raises(ValueError, match="closed"):
        session.propagate()
    session.close()  # twice is fine
    assert closed == [1]
    given = video_io.open_video(str(path))
    tracker.session(given).close()
    assert given[0].shape == (H, W, 3)  # a source given by the caller stays open
    given.close()


def test_a_single_call_closes_its_session(tracker, clip, monkeypatch):
    closed = []
    original = TrackingSession.close
    monkeypatch.setattr(TrackingSession, "close", lambda self: (closed.append(1), original(self)))
    assert len(tracker(clip[0], prompts=[click()])) == len(clip[1])
    assert closed == [1]
    stream = tracker(clip[0], prompts=[click()], stream=True)
    next(stream)
    stream.close()  # the consumer stops early
    assert closed == [1, 1]
