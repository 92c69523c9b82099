"""video-object-tracking over several videos (datasets, KeyDataset, lists of rows) and ``batch_size``.

``batch_size`` batches the image encoder over upcoming frames; results must equal ``batch_size=1``.
Real tiny checkpoints saved with ``save_pretrained`` and loaded through ``pipeline(...)``.
"""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from PIL import Image
from transformers import pipeline
from transformers.pipelines.pt_utils import KeyDataset

from sam2_pipelines import testing

SIZE = (48, 64)  # frame height, width
CLICKS = [(16, 24), (40, 20), (30, 30)]


def _prompts(seed: int) -> list:
    x, y = CLICKS[seed]
    return [{"frame": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]}]


# tracker (conftest): a 128-pixel tiny Sam2VideoModel whose objects are visible (non-empty masks)


@pytest.fixture(scope="module")
def videos():
    return [testing.synthetic_frames(4, *SIZE, seed=seed) for seed in range(2)]


@pytest.fixture(scope="module")
def clips(videos, tmp_path_factory):
    """The videos as mp4 files."""
    directory = tmp_path_factory.mktemp("clips")
    return [str(testing.write_video(directory / f"clip{seed}.mp4", frames)) for seed, frames in enumerate(videos)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_same_results(actual: list, expected: list):
    """Same frames and objects; per object per frame, identical masks or IoU >= 0.999."""
    assert [r["frame_idx"] for r in actual] == [r["frame_idx"] for r in expected]
    for a, b in zip(actual, expected):
        assert a["object_ids"] == b["object_ids"]
        for mask_a, mask_b in zip(a["masks"], b["masks"]):
            assert np.array_equal(mask_a, mask_b) or _iou(mask_a, mask_b) >= 0.999
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-4)


def _count_encoder_batches(model, monkeypatch) -> list:
    """Record the batch size of every image-encoder call of ``model``."""
    sizes = []
    original = model.get_image_features

    def spy(pixel_values, **kwargs):
        sizes.append(int(pixel_values.shape[0]))
        return original(pixel_values, **kwargs)

    monkeypatch.setattr(model, "get_image_features", spy)
    return sizes


@pytest.fixture(scope="module")
def single_results(tracker, videos):
    """One call per video (``_prompts(seed)`` on video ``seed``): the reference for the dataset runs."""
    results = [tracker(frames, prompts=_prompts(seed)) for seed, frames in enumerate(videos)]
    assert all(any(r["masks"].any() for r in video) for video in results)  # masks are not trivially empty
    return results


# ---------------------------------------------------------------------------------------------- several videos


def test_dataset_rows_with_prompts_equal_single_calls(tracker, videos, clips, single_results):
    tracker = tracker
    dataset = datasets.Dataset.from_dict(
        {
            "video": clips,
            "prompts": [json.dumps(_prompts(0)), json.dumps(_prompts(1))],  # JSON strings, as stored in datasets
            "max_frames": [None, 3],  # a per-row option; None = not set
            "name": ["a", "b"],  # other columns are ignored
        }
    )
    outputs = tracker(dataset, batch_size=2, output="rle")
    assert not isinstance(outputs, list)  # a generator of per-video results
    outputs = list(outputs)
    assert len(outputs) == 2
    for seed, (path, results) in enumerate(zip(clips, outputs)):
        single = tracker(path, prompts=_prompts(seed), output="rle", max_frames=None if seed == 0 else 3)
        assert [r["frame_idx"] for r in results] == [r["frame_idx"] for r in single] == list(range(4 if seed == 0 else 3))
        assert [r["masks"] for r in results] == [r["masks"] for r in single]
    frames_dataset = datasets.Dataset.from_dict(
        {"video": [[Image.fromarray(f) for f in frames] for frames in videos], "prompts": [json.dumps(_prompts(s)) for s in range(2)]},
        features=datasets.Features({"video": datasets.List(datasets.Image()), "prompts": datasets.Value("string")}),
    )
    for results, single in zip(tracker(frames_dataset), single_results):  # rows holding lists of PIL images
        assert_same_results(results, single)


def test_key_dataset_and_rows_with_call_prompts(tracker, videos, clips, single_results):
    tracker = tracker
    outputs = list(tracker(KeyDataset(datasets.Dataset.from_dict({"video": clips}), "video"), prompts=_prompts(0), batch_size=3))
    assert len(outputs) == 2
    assert_same_results(outputs[1], tracker(clips[1], prompts=_prompts(0)))
    # a list of row dicts; row prompts override call prompts; stream=True gives each video's generator
    rows = [{"video": videos[0]}, {"video": list(videos[1]), "prompts": _prompts(1)}]
    streamed = [list(results) for results in tracker(rows, prompts=_prompts(0), stream=True, batch_size=2)]
    assert_same_results(streamed[0], single_results[0])
    assert_same_results(streamed[1], single_results[1])


def test_a_list_of_frames_is_still_one_video(tracker, videos, single_results):
    results = tracker(list(videos[0]), prompts=_prompts(0), batch_size=2)
    assert isinstance(results, list)
    assert_same_results(results, single_results[0])


def test_bad_rows_and_options_are_clear_errors(tracker, videos, clips):
    tracker = tracker
    with pytest.raises(ValueError, match=r'row 1 has no "video"'):
        tracker([{"video": videos[0], "prompts": _prompts(0)}, {"prompts": _prompts(0)}])  # checked at the call
    with pytest.raises(ValueError, match=r"row 0 has no prompts.*JSON string"):
        tracker([{"video": videos[0]}])
    bad_json = {"video": clips, "prompts": [json.dumps(_prompts(0)), "[{oops"], "max_frames": [1, None]}
    with pytest.raises(ValueError, match=r"row 1: prompts are not valid JSON.*accepted"):
        list(tracker(datasets.Dataset.from_dict(bad_json)))
    with pytest.raises(ValueError, match=r"row 1 is a ndarray, not a row dict"):
        tracker([{"video": videos[0], "prompts": _prompts(0)}, videos[1]])
    with pytest.raises(ValueError, match='no "video" column'):
        tracker(datasets.Dataset.from_dict({"clip": ["a.mp4"]}), prompts=_prompts(0))
    with pytest.raises(ValueError, match='no "prompts" column'):
        tracker(datasets.Dataset.from_dict({"video": ["a.mp4"]}))
    with pytest.raises(ValueError, match="row 0 has no prompts"):
        tracker(KeyDataset(datasets.Dataset.from_dict({"video": ["a.mp4"]}), "video"))
    with pytest.raises(ValueError, match=r"row 1: .*prompt on frame 9"):  # a row's own error names the row
        list(tracker([{"video": videos[0], "prompts": _prompts(0), "max_frames": 1}, {"video": videos[1], "prompts": [{**_prompts(1)[0], "frame": 9}]}]))
    with pytest.raises(ValueError, match="direction must be one of"):  # call options checked at the call
        tracker([{"video": videos[0], "prompts": _prompts(0)}], direction="sideways")
    with pytest.raises(ValueError, match=r"row 0: stream apply to the whole call"):
        tracker([{"video": videos[0], "prompts": _prompts(0), "stream": True}])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size must be"):
            tracker(videos[0], prompts=_prompts(0), batch_size=bad)
    with pytest.raises(ValueError, match=r"num_workers=2 is not supported.*map_sharded"):
        tracker(videos[0], prompts=_prompts(0), num_workers=2)
    with pytest.raises(ValueError, match=r"num_workers=2 is not supported.*map_sharded"):
        tracker(KeyDataset(datasets.Dataset.from_dict({"video": ["a.mp4"]}), "video"), prompts=_prompts(0), num_workers=2)
    assert len(tracker(videos[0], prompts=_prompts(0), num_workers=0, max_frames=1)) == 1


def test_pipeline_level_batch_size_and_num_workers(tiny_video_model_dir, videos, monkeypatch):
    tracker = pipeline("video-object-tracking", model=tiny_video_model_dir, batch_size=3)
    sizes = _count_encoder_batches(tracker.model, monkeypatch)
    tracker(videos[0], prompts=_prompts(0), max_frames=3)
    assert sizes[-1] == 3  # frames 1-3 encoded together
    assert tracker.session(videos[0]).batch_size == 3
    assert tracker.session(videos[0], batch_size=2).batch_size == 2
    with pytest.raises(ValueError, match="num_workers=4 is not supported"):
        pipeline("video-object-tracking", model=tiny_video_model_dir, num_workers=4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        pipeline("video-object-tracking", model=tiny_video_model_dir, batch_size=0)


# ---------------------------------------------------------------------------------------------- batch_size


@pytest.mark.parametrize("kind", ["sam2", "edgetam"])
def test_batch_size_equals_batch_size_one(kind, tracker, visible_edgetam_tracker, monkeypatch):
    tracker = tracker if kind == "sam2" else visible_edgetam_tracker
    frames = testing.synthetic_frames(5, *SIZE, seed=1)
    prompts = [  # two objects prompted on different frames: each is tracked on the other's prompted frame
        {"frame": 2, "obj_id": 1, "points": [[20, 24]], "labels": [1]},
        {"frame": 3, "obj_id": 2, "box": [30, 10, 60, 40]},
    ]
    sizes = _count_encoder_batches(tracker.model, monkeypatch)
    for direction in ("forward", "backward", "both"):
        expected = tracker(frames, prompts=prompts, direction=direction)
        assert any(m.any() for r in expected for m in r["masks"])
        sizes.clear()
        batched = tracker(frames, prompts=prompts, direction=direction, batch_size=3)
        assert max(sizes) == 3  # frames were encoded three at a time
        assert_same_results(batched, expected)


def test_session_batch_size_holds_at_most_that_many_features(tracker, monkeypatch):
    frames = testing.synthetic_frames(6, *SIZE, seed=2)
    sizes = _count_encoder_batches(tracker.model, monkeypatch)
    reference = tracker.session(frames)
    reference.add_points(0, 1, [[20, 24]], [1])
    expected = list(reference.propagate())
    session = tracker.session(frames, batch_size=3)
    session.add_points(0, 1, [[20, 24]], [1])
    sizes.clear()
    results = []
    for result in session.propagate(max_frames=4):
        assert session.memory_stats()["vision_features"] <= 3
        results.append(result)
    results += list(session.propagate(start_frame=4))  # resumed propagation
    assert sizes == [3, 2]  # frames 1-3, then 4-5 (frame 0 is prompted: its output is reused)
    assert_same_results(results, expected)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        tracker.session(frames, batch_size=0)
    # streaming keeps batch 1
    stream = tracker.session(batch_size=4)
    sizes.clear()
    stream.push_frame(frames[0], prompts=[{"obj_id": 1, "points": [[20, 24]], "labels": [1]}])
    stream.push_frame(frames[1])
    assert set(sizes) == {1}
