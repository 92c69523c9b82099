"""Frame preprocessing of tracking sessions (``frame_resize``): Meta's bicubic loader or transformers' processor.

``"bicubic"`` pixels are checked against an independent PIL + numpy computation written the way Meta's
``_load_img_as_tensor`` / ``load_video_frames_from_jpg_images`` compute them (the parity suite checks them
against Meta's own function); ``"bilinear"`` pixels against transformers' ``Sam2VideoVideoProcessor``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_pipelines import TrackingSession, cli, testing
from sam2_pipelines.video import frame_feed
from sam2_pipelines.video.frame_pixels import FRAME_RESIZES, frame_pixels

H, W = 96, 128


def meta_style_pixels(frame: np.ndarray, size: int, mean, std) -> torch.Tensor:
    """Meta's frame loader re-written with PIL + numpy: bicubic resize, ``/ 255.0`` in float64, float32 normalisation."""
    resized = np.array(Image.fromarray(frame).convert("RGB").resize((size, size)))  # PIL's default filter: bicubic
    scaled = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
    normalised = (scaled - np.asarray(mean, dtype=np.float32)[:, None, None]) / np.asarray(std, dtype=np.float32)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(normalised))


def processor_pixels(tracker, frame: np.ndarray) -> torch.Tensor:
    """transformers' own preprocessing of one frame (what ``init_video_session`` stores)."""
    return tracker.processor.video_processor(videos=frame[None], return_tensors="pt").pixel_values_videos[0, 0]


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return testing.synthetic_frames(3, H, W)


def test_bicubic_pixels_equal_an_independent_pil_computation(tracker, clip):
    video_processor = tracker.processor.video_processor
    size = tracker.processor.target_size
    assert (video_processor.size["height"], video_processor.size["width"]) == (size, size) and size != 1024
    session = tracker.session(list(clip))  # the default
    for index, frame in enumerate(clip):
        expected = meta_style_pixels(frame, size, video_processor.image_mean, video_processor.image_std)
        assert expected.shape == (3, size, size)
        ours = session.pixel_values(index)
        assert ours.dtype == torch.float32 and torch.equal(ours, expected), index
        assert torch.equal(frame_pixels(frame, tracker.processor, "bicubic"), expected)


def test_bilinear_pixels_equal_transformers_processor(tracker, clip):
    session = tracker.session(list(clip), frame_resize="bilinear")
    for index, frame in enumerate(clip):
        expected = processor_pixels(tracker, frame)
        assert torch.equal(session.pixel_values(index), expected), index
    # the two filters really differ, so the option matters
    bicubic = frame_pixels(clip[0], tracker.processor, "bicubic")
    assert (bicubic - processor_pixels(tracker, clip[0])).abs().max() > 0.05


def test_streaming_session_uses_frame_resize(tracker, clip):
    for frame_resize in FRAME_RESIZES:
        session = tracker.session(frame_resize=frame_resize)
        session.push_frame(clip[0])
        assert torch.equal(session.pixel_values(0), frame_pixels(clip[0], tracker.processor, frame_resize))


def test_pipeline_default_applies_to_sessions(tiny_video_model_dir, clip):
    from transformers import pipeline

    bilinear = pipeline("video-object-tracking", model=tiny_video_model_dir, frame_resize="bilinear")
    assert torch.equal(bilinear.session(list(clip)).pixel_values(1), processor_pixels(bilinear, clip[1]))
    explicit = bilinear.session(list(clip), frame_resize="bicubic").pixel_values(1)
    assert torch.equal(explicit, frame_pixels(clip[1], bilinear.processor, "bicubic"))


def test_call_option_changes_the_pixels(tracker, clip, monkeypatch):
    """``tracker(video, frame_resize=...)`` reaches the session (file / list input and stream input)."""
    seen = []

    def spy(frame, processor, frame_resize):
        seen.append(frame_resize)
        return frame_pixels(frame, processor, frame_resize)

    monkeypatch.setattr(frame_feed, "frame_pixels", spy)
    prompts = [{"frame": 0, "obj_id": 1, "points": [[20, 30]], "labels": [1]}]
    for frame_resize in FRAME_RESIZES:
        seen.clear()
        results = tracker(list(clip), prompts=prompts, frame_resize=frame_resize)
        assert len(results) == 3 and seen and set(seen) == {frame_resize}
        seen.clear()
        results = tracker(iter(list(clip)), prompts=prompts, frame_resize=frame_resize)
        assert len(results) == 3 and seen and set(seen) == {frame_resize}
    seen.clear()
    tracker(list(clip), prompts=prompts)
    assert set(seen) == {"bicubic"}


@pytest.mark.parametrize("bad", ["nearest", "BICUBIC", None, 3])
def test_invalid_frame_resize_is_an_error(tracker, tiny_video_model_dir, clip, bad):
    from transformers import pipeline

    prompts = [{"frame": 0, "obj_id": 1, "points": [[20, 30]], "labels": [1]}]
    with pytest.raises(ValueError, match="frame_resize must be one of 'bicubic', 'bilinear'"):
        tracker(list(clip), prompts=prompts, frame_resize=bad)
    with pytest.raises(ValueError, match="frame_resize must be one of 'bicubic', 'bilinear'"):
        tracker(list(clip), prompts=prompts, frame_resize=bad, stream=True)
    with pytest.raises(ValueError, match="frame_resize must be one of"):
        TrackingSession(tracker.model, tracker.processor, list(clip), frame_resize=bad)
    if bad is not None:  # None means "the pipeline's default" for tracker.session
        with pytest.raises(ValueError, match="frame_resize must be one of"):
            tracker.session(list(clip), frame_resize=bad)
        with pytest.raises(ValueError, match="frame_resize must be one of"):
            pipeline("video-object-tracking", model=tiny_video_model_dir, frame_resize=bad)
    with pytest.raises(ValueError, match="frame_resize must be one of"):
        frame_pixels(clip[0], tracker.processor, bad)


def test_cli_flag_accepts_the_same_values():
    parser = cli.build_parser()
    base = ["track", "v.mp4", "--point", "1,2", "--out", "o"]
    assert parser.parse_args(base).frame_resize is None  # the tracker's own default (bicubic for click trackers)
    for value in FRAME_RESIZES:
        assert parser.parse_args([*base, "--frame-resize", value]).frame_resize == value
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--frame-resize", "nearest"])
