"""Lazy frame sources (PyAV, folders, in-memory frames, streams) and the result writers."""

from __future__ import annotations

import json

import functools
import http.server
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_pipelines import testing

from sam2_pipelines.io import video as video_io
from sam2_pipelines.core.masks import encode_rle
from sam2_pipelines.io.visualize import color_for, palette


@pytest.fixture
def long_video(tmp_path):
    """A 30-frame clip with a keyframe every 5 frames, so random access has to seek."""
    frames = testing.synthetic_frames(30, 48, 64)
    path = tmp_path / "long.mp4"
    video_io.encode_h264(frames, path, 12, options={"crf": "10", "g": "5", "bf": "2"})
    return path, frames


def test_video_file_is_decoded_lazily_in_any_order(long_video):
    path, frames = long_video
    source = video_io.open_video(path)
    assert isinstance(source, video_io.VideoFileSource)
    assert (len(source), source.height, source.width) == (30, 48, 64)
    assert source.fps == pytest.approx(12)
    sequential = [source[i].copy() for i in range(30)]
    assert 0 < source.cached_frames <= source.cache_size
    # decoded frames are close to what was encoded (lossy codec) and in presentation order
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(sequential, frames)]
    assert max(errors) < 12
    assert np.argmin([np.abs(sequential[17].astype(int) - f).mean() for f in frames]) == 17
    backwards = {i: source[i].copy() for i in range(29, -1, -1)}
    jumps = {i: source[i].copy() for i in (13, 2, 27, 0, 14, -1)}
    assert all(np.array_equal(backwards[i], sequential[i]) for i in range(30))
    assert all(np.array_equal(frame, sequential[i]) for i, frame in jumps.items())
    assert [f.shape for f in source][0] == (48, 64, 3)
    with pytest.raises(IndexError):
        source[30]
    source.close()


def test_folder_of_frames_in_natural_order(tmp_path):
    frames = testing.synthetic_frames(11, 32, 40)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i}.png")  # 10.png sorts after 9.png
    (tmp_path / "notes.txt").write_text("not a frame")
    source = video_io.open_video(tmp_path)
    assert isinstance(source, video_io.FolderSource) and len(source) == 11
    assert [p.name for p in source.paths][-3:] == ["8.png", "9.png", "10.png"]
    assert np.array_equal(source[10], frames[10]) and np.array_equal(source[2], frames[2])
    jpgs = tmp_path / "jpg"
    jpgs.mkdir()
    for i, frame in enumerate(frames[:3]):
        Image.fromarray(frame).save(jpgs / f"{i:05d}.JPG")
    assert len(video_io.open_video(jpgs)) == 3


def test_in_memory_frames_of_every_kind():
    frames = testing.synthetic_frames(4, 16, 24)
    as_pil = [Image.fromarray(f) for f in frames]
    channels_first = torch.from_numpy(frames).permute(0, 3, 1, 2)
    sources = [frames, list(frames), as_pil, torch.from_numpy(frames), channels_first, [torch.from_numpy(f) for f in frames]]
    for source in sources:
        opened = video_io.open_video(source)
        assert (len(opened), opened.height, opened.width) == (4, 16, 24)
        assert all(np.array_equal(opened[i], frames[i]) for i in range(4))
    grey = video_io.to_rgb_frame(frames[0][..., 0])
    assert grey.shape == (16, 24, 3) and np.array_equal(grey[..., 2], frames[0][..., 0])
    rgba = np.concatenate([frames[0], np.full((16, 24, 1), 255, np.uint8)], axis=-1)
    assert np.array_equal(video_io.to_rgb_frame(rgba), frames[0])
    source = video_io.open_video(frames)
    assert video_io.open_video(source) is source  # a source is used as it is, not wrapped or re-read


def test_streams_are_read_with_iter_frames():
    frames = testing.synthetic_frames(3, 16, 24)
    generator = (f for f in frames)
    assert video_io.is_stream(generator) and not video_io.is_stream(list(frames)) and not video_io.is_stream(frames)
    with pytest.raises(ValueError, match="iter_frames"):
        video_io.open_video(f for f in frames)
    read = list(video_io.iter_frames(generator))
    assert len(read) == 3 and all(np.array_equal(a, b) for a, b in zip(read, frames))
    with pytest.raises(ValueError, match="size"):
        list(video_io.iter_frames(iter([frames[0], frames[0][:8]])))


def test_video_over_http(long_video):
    path, _ = long_video
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = video_io.open_video(f"http://127.0.0.1:{server.server_port}/{path.name}")
        local = video_io.open_video(path)
        assert len(source) == 30
        assert np.array_equal(source[21], local[21]) and np.array_equal(source[3], local[3])
        source.close()
    finally:
        server.shutdown()


def _stored_frames(path):
    """The frames as the file stores them (PyAV, no rotation applied) and the display rotation PyAV reads."""
    import av

    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
        return np.stack([f.to_ndarray(format="rgb24") for f in decoded]), {f.rotation for f in decoded}


@pytest.mark.parametrize("rotation, mirror", [
    (0, (False, False)), (90, (False, False)), (180, (False, False)), (-90, (False, False)), (270, (False, False)),
    (0, (True, False)), (0, (False, True)), (90, (False, True)), (-90, (True, False)),
])
def test_display_rotation_is_applied_as_players_do(tmp_path, rotation, mirror):
    """A container rotation of ``rotation`` degrees (counter-clockwise, PyAV's reading of the display matrix), then a
    mirroring (horizontal, vertical), shows the frames turned and mirrored that way: a phone's portrait clip
    (-90, "rotate 90" clockwise) turns a quarter clockwise."""
    path = testing.synthetic_video(tmp_path / "phone.mp4", num_frames=4, height=48, width=64, rotation=rotation, mirror=mirror)
    stored, read_back = _stored_frames(path)
    assert len(read_back) == 1, read_back
    if not any(mirror):
        assert (next(iter(read_back)) - rotation) % 360 == 0, f"PyAV reads {read_back} back"
    expected = np.rot90(stored, rotation // 90, axes=(1, 2))
    expected = expected[:, :, ::-1] if mirror[0] else expected
    expected = expected[:, ::-1] if mirror[1] else expected
    source = video_io.open_video(path)
    assert (source.height, source.width) == expected.shape[1:3] == ((48, 64) if rotation % 180 == 0 else (64, 48))
    for i in (3, 0, 2):
        assert np.array_equal(source[i], expected[i]) and source[i].flags.c_contiguous
    if rotation == -90 and not any(mirror):  # clockwise: the stored top-left corner is shown at the top right
        assert np.array_equal(source[0][0, -1], stored[0][0, 0]) and np.array_equal(source[0][-1, -1], stored[0][0, -1])
        assert source.rotation == -90


def test_a_rotation_that_is_not_a_quarter_turn_is_refused(tmp_path):
    path = testing.synthetic_video(tmp_path / "tilted.mp4", num_frames=2, height=48, width=64, rotation=45)
    with pytest.raises(ValueError, match=r"display rotation of 45 degrees; only multiples of 90 degrees .* re-encode"):
        video_io.open_video(path)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: _write(d / "empty.mp4", b""), "empty"),
        (lambda d: _write(d / "junk.mp4", b"\x00garbage" * 500), "could not"),
        (lambda d: (d / "frames").mkdir() or d / "frames", "no frames"),
    ],
    ids=["missing", "empty-file", "corrupt", "empty-folder"],
)
def test_bad_video_files_raise_value_error(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        video_io.open_video(make(tmp_path))


def test_truncated_video_raises_value_error(tmp_path, video_path):
    data = open(video_path, "rb").read()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError):
        source = video_io.open_video(truncated)
        [source[i] for i in range(len(source))]


@pytest.mark.parametrize(
    "frames, message",
    [
        ([], "no frames"),
        (np.zeros((0, 8, 8, 3), np.uint8), "no frames"),
        (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 3), np.uint8), "shape"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 6, 3), np.uint8)], "same size"),
        ([np.zeros((8, 8, 5), np.uint8)], "shape"),
        (["/no/such/frame.png"], "does not exist"),
        ([42], "PIL image"),
    ],
    ids=["empty-list", "empty-array", "float", "single-frame", "mixed-sizes", "channels", "missing-path", "number"],
)
def test_bad_in_memory_frames_raise_value_error(frames, message):
    with pytest.raises(ValueError, match=message):
        source = video_io.open_video(frames)
        [source[i] for i in range(len(source))]


def _results():
    masks = np.zeros((2, 1, 20, 30), bool)
    masks[0, 0, 2:10, 3:12] = True
    masks[1, 0, 8:18, 10:25] = True  # overlaps object 7 where rows 8-9, cols 10-11
    return [
        {"frame_idx": 0, "object_ids": [7, 2], "masks": masks, "scores": np.array([0.9, 0.4], np.float32)},
        {"frame_idx": 1, "object_ids": [7, 2], "masks": [encode_rle(m[0]) for m in masks[::-1]], "scores": np.array([0.1, 0.8], np.float32)},
    ]


def test_palette_pngs_round_trip(tmp_path):
    results = _results()
    paths = video_io.write_palette_pngs(results, tmp_path / "masks")
    assert [p.name for p in paths] == ["00000.png", "00001.png"]
    first = Image.open(paths[0])
    assert first.mode == "P"
    assert np.array_equal(np.array(first.getpalette()[:48]).reshape(16, 3), palette(16))
    labels = np.array(first)
    masks = results[0]["masks"][:, 0]
    assert np.array_equal(labels == 2, masks[1] & ~masks[0])  # overlap goes to the higher score (7)
    assert np.array_equal(labels == 7, masks[0])
    assert set(np.unique(labels)) == {0, 2, 7}
    second = np.array(Image.open(paths[1]))  # RLE input, object 2's mask is now the first one, scores swapped
    assert np.array_equal(second == 2, masks[0]) and np.array_equal(second == 7, masks[1] & ~masks[0])
    per_object = video_io.write_palette_pngs(results, tmp_path / "objects", per_object=True)
    assert sorted(p.relative_to(tmp_path / "objects").as_posix() for p in per_object) == ["2/00000.png", "2/00001.png", "7/00000.png", "7/00001.png"]
    assert np.array_equal(np.array(Image.open(tmp_path / "objects" / "2" / "00000.png")) == 2, masks[1])
    # ids outside 1..255: a list of results gets pixel values 1, 2, ... and a mapping file
    wide = [{**results[0], "object_ids": [7, 300]}]
    written = video_io.write_palette_pngs(wide, tmp_path / "wide")
    mapping = json.loads((tmp_path / "wide" / "object_ids.json").read_text())["pixel_value_to_object_id"]
    assert mapping == {"1": 7, "2": 300} and written[0].name == "object_ids.json"
    labels = np.array(Image.open(tmp_path / "wide" / "00000.png"))
    assert np.array_equal(labels == 1, masks[0]) and set(np.unique(labels)) == {0, 1, 2}
    # a frame without objects (all removed) before frames with masks: a blank PNG of their size
    empty = [{"frame_idx": 0, "object_ids": [], "masks": [], "scores": []}, {**results[1], "frame_idx": 1}]
    blank, second = video_io.write_palette_pngs(empty, tmp_path / "empty")
    assert np.array(Image.open(blank)).shape == masks.shape[1:] and not np.array(Image.open(blank)).any()
    assert np.array(Image.open(second)).any()
    # an iterator cannot be looked ahead: such ids are an error before the frame is written
    with pytest.raises(ValueError, match="1..255"):
        video_io.write_palette_pngs(iter(wide), tmp_path / "bad")
    assert not list((tmp_path / "bad").glob("*.png"))


def test_overlay_video_is_a_real_mp4(tmp_path):
    frames = np.full((3, 20, 30, 3), 128, np.uint8)
    results = _results()
    path = video_io.write_overlay_video(list(frames), results, tmp_path / "out" / "overlay.mp4", fps=5)
    decoded = video_io.open_video(path)
    assert (len(decoded), decoded.height, decoded.width) == (3, 20, 30)
    assert decoded.fps == pytest.approx(5)
    only_seven = results[0]["masks"][0, 0] & ~results[0]["masks"][1, 0]
    inside = np.median(decoded[0][only_seven].astype(int), axis=0)  # object 7's colour blended in (median skips its label)
    expected = (128 * 0.5 + color_for(7).astype(float) * 0.5).astype(int)
    assert np.abs(inside - expected).max() < 20
    assert np.abs(decoded[0][15:, :5].astype(int) - 128).max() < 8  # background untouched
    assert np.abs(decoded[2][5, 6].astype(int) - 128).max() < 8  # frame without a result is unchanged
    odd = video_io.write_overlay_video(np.full((2, 21, 31, 3), 90, np.uint8), [], tmp_path / "odd.mp4")
    reread = video_io.open_video(odd)
    assert (reread.height, reread.width, reread.fps) == (22, 32, video_io.DEFAULT_FPS)


def _threads() -> int:
    """Native threads of this process (a decoder's threads included, which Python's threading does not list)."""
    for line in open("/proc/self/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads in /proc/self/status")


def test_closing_a_video_ends_its_decoder_threads_now(tmp_path):
    """close() frees the decoder (its threads end) at once, not when the garbage collector runs; iter_frames and
    write_overlay_video close the videos they open."""
    import gc

    path = testing.synthetic_video(tmp_path / "clip.mp4")
    video_io.write_overlay_video(path, [], tmp_path / "warm-up.mp4")  # what a first decode and encode start once
    gc.disable()  # what is freed must be freed by close()
    try:
        before = _threads()
        source = video_io.open_video(path)
        assert source[5].shape == (96, 128, 3) and _threads() > before, "the decoder started no thread: nothing to see end"
        source.close()
        source.close()  # twice is fine
        assert _threads() == before
        for index in range(3):
            video_io.write_overlay_video(path, [], tmp_path / f"{index}.mp4")
            assert len(list(video_io.iter_frames(str(path)))) == 8
        assert _threads() == before
    finally:
        gc.enable()
