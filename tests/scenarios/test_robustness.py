"""Reproducers of bad or unusual input: each gets a clear ValueError (or CLI message) or the right result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_pipelines import cli, testing
from sam2_pipelines.core.images import pil_to_rgb, read_image_file
from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.io.video import open_video
from sam2_pipelines.io.visualize import overlay_frame

LOOSE = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
CPU = ["--device", "cpu", "--no-progress"]
AMG = ["--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]


def _rotated_jpeg(path, stored_hw=(120, 160), orientation=6):
    """A JPEG stored as ``stored_hw`` whose EXIF orientation says: rotate 90 degrees to display (phone photos)."""
    stored = Image.fromarray(testing.synthetic_image(*stored_hw))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes(), quality=95)
    return path


# ---------------------------------------------------------------------------------------------- images


def test_exif_orientation_applies_everywhere(mask_generator, tracker, tmp_path):
    path = _rotated_jpeg(tmp_path / "rot.jpg")
    shown = np.asarray(Image.open(path).transpose(Image.Transpose.ROTATE_270))
    assert read_image_file(path).shape == (160, 120, 3)
    assert np.array_equal(read_image_file(path), shown)
    # prompts are validated against the displayed size: y = 150 exists only after rotation
    out = mask_generator(str(path), points=[[[100, 150]]], labels=[[1]])
    assert out["masks"].shape == (1, 3, 160, 120)
    with pytest.raises(ValueError, match="outside"):
        mask_generator(str(path), points=[[[150, 100]]], labels=[[1]])
    records = mask_generator(str(path), **LOOSE)["records"]
    assert records and all(r["segmentation"].shape == (160, 120) for r in records)
    # video frames from a folder of such photos
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        _rotated_jpeg(folder / f"{i:05d}.jpg")
    assert open_video(folder)[0].shape == (160, 120, 3)
    results = tracker(str(folder), prompts=[{"frame": 0, "obj_id": 1, "points": [[100, 150]], "labels": [1]}])
    assert results[0]["masks"].shape == (1, 1, 160, 120)


def test_cli_writes_rotated_photos_consistently(tiny_image_model_dir, tmp_path):
    path = _rotated_jpeg(tmp_path / "rot.jpg")
    assert cli.main(["generate-masks", str(path), "--out", str(tmp_path / "out"), "--model", tiny_image_model_dir, *CPU, *AMG]) == 0
    document = json.loads((tmp_path / "out" / "rot.json").read_text())
    assert (document["image"]["height"], document["image"]["width"]) == (160, 120)
    assert all(decode_rle(a["segmentation"]).shape == (160, 120) for a in document["annotations"])


def test_a_phone_video_is_tracked_as_players_show_it(tracker, tiny_video_model_dir, tmp_path):
    """A portrait phone clip (landscape 128x96 frames, container rotation -90): the session, clicks, masks, palette
    PNGs and overlay.mp4 all take the 96-wide, 128-tall picture players show; tracking the file equals tracking
    the shown frames, so a click read off a player lands where it was made."""
    path = testing.synthetic_video(tmp_path / "phone.mp4", num_frames=4, height=96, width=128, rotation=-90)
    shown = np.stack(list(open_video(path)))
    assert shown.shape == (4, 128, 96, 3)
    session = tracker.session(str(path))
    assert (session.height, session.width) == (128, 96)
    session.close()
    # the square is shown in the bottom half: y = 100 exists only in the displayed picture (stored height 96)
    prompts = [{"frame": 0, "obj_id": 1, "points": [[48, 100]], "labels": [1]}, {"frame": 0, "obj_id": 2, "box": [30, 10, 70, 40]}]
    from_file = tracker(str(path), prompts=prompts)
    from_frames = tracker(shown, prompts=prompts)
    assert [r["frame_idx"] for r in from_file] == [r["frame_idx"] for r in from_frames] == [0, 1, 2, 3]
    for ours, displayed in zip(from_file, from_frames):
        assert ours["masks"].shape == (2, 1, 128, 96) and np.array_equal(ours["masks"], displayed["masks"])
    assert any(r["masks"].any() for r in from_file)
    out = tmp_path / "out"
    argv = ["track", str(path), "--obj", "1", "--point", "48,100", "--obj", "2", "--box", "30,10,70,40", "--out", str(out)]
    assert cli.main([*argv, "--model", tiny_video_model_dir, *CPU]) == 0
    for result in from_file:
        labels = np.asarray(Image.open(out / "masks" / f"{result['frame_idx']:05d}.png"))
        assert labels.shape == (128, 96)
        for obj_id, mask in zip(result["object_ids"], result["masks"]):
            assert np.all(mask[0][labels == obj_id])
    overlay = open_video(out / "overlay.mp4")
    assert (overlay.height, overlay.width, overlay.rotation) == (128, 96, 0)  # turned pixels, no rotation left to apply
    def blocks(frame):  # 16x16-pixel means: the codec's error on the noisy frames averages out
        return np.asarray(frame, dtype=float).reshape(8, 16, 6, 16, 3).mean(axis=(1, 3))

    for result in from_file:  # the shown frames with the masks blended in (a half turn off: 46 or more)
        expected = overlay_frame(shown[result["frame_idx"]], result)
        assert np.abs(blocks(overlay[result["frame_idx"]]) - blocks(expected)).max() < 12


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    rgb = read_image_file(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.rint(values / 257).astype(np.uint8))
    assert (rgb == 255).mean() < 0.05
    with pytest.raises(ValueError, match="floating-point"):
        pil_to_rgb(Image.fromarray(np.zeros((4, 4), dtype=np.float32)))


@pytest.mark.parametrize(
    "content, message",
    [(b"", "the file is empty"), (b"not an image at all", "could not read"), (None, "does not exist")],
)
def test_unreadable_image_files(mask_generator, tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        mask_generator(str(path))


def test_truncated_image(mask_generator, tiny_image_model_dir, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(testing.synthetic_image()).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.png"):
        mask_generator(str(truncated))
    out = tmp_path / "out"
    assert cli.main(["generate-masks", str(truncated), "--out", str(out), "--model", tiny_image_model_dir, *CPU]) == 1
    assert "truncated.png" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("height", [1, 3, 4])
def test_very_short_images_are_read_channels_last(mask_generator, height):
    """A 3-pixel-tall image is not mistaken for a channels-first one."""
    colour = np.array([10, 200, 30], dtype=np.uint8)
    image = np.tile(colour, (height, 160, 1))
    pixels, _ = mask_generator.image_model.pixel_values([image])
    processor = mask_generator.processor.image_processor
    expected = (colour / 255.0 - np.array(processor.image_mean)) / np.array(processor.image_std)
    np.testing.assert_allclose(pixels[0].mean(dim=(1, 2)).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(pixels[0].std(dim=(1, 2)).numpy(), 0, atol=1e-4)


# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(crop_n_layers=4), "crops of no pixels"),
        (dict(crop_n_layers=1, crop_n_points_downscale_factor=100), "no grid point"),
        (dict(pred_iou_thresh=1.5), "pred_iou_thresh must be a number in"),
        (dict(batch_size=0), "batch_size must be >= 1"),
    ],
)
def test_bad_option_combinations(mask_generator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_generator(testing.synthetic_image(), **kwargs)


def test_empty_inputs(mask_generator):
    from transformers.pipelines.pt_utils import KeyDataset

    with pytest.raises(ValueError, match="empty"):
        mask_generator([])
    with pytest.raises(ValueError, match="empty"):
        mask_generator(KeyDataset([], "image"))


def test_a_dataset_with_an_image_column(mask_generator):
    datasets = pytest.importorskip("datasets")
    images = [Image.fromarray(testing.synthetic_image(seed=s)) for s in range(2)]
    dataset = datasets.Dataset.from_dict({"image": images, "caption": ["a", "b"]}).cast_column("image", datasets.Image())
    results = list(mask_generator(dataset, **LOOSE))
    expected = [mask_generator(np.asarray(image), **LOOSE) for image in images]
    assert len(results) == 2
    for got, want in zip(results, expected):
        assert [r["bbox"] for r in got["records"]] == [r["bbox"] for r in want["records"]]
    with pytest.raises(ValueError, match="'image' column"):
        mask_generator(datasets.Dataset.from_dict({"picture": images}))


@pytest.mark.parametrize(
    "prompts, message",
    [
        (dict(points=[[[50, 40]]], labels=[["1"]]), "not text"),
        (dict(points=[[["50", 40]]], labels=[[1]]), "not text"),
        (dict(points=[[[50, 40]]], labels=[[True]]), "got booleans"),
        (dict(masks=np.zeros((1, 64, 64), dtype=bool)), "logits"),
    ],
)
def test_prompts_of_the_wrong_type(mask_generator, prompts, message):
    with pytest.raises(ValueError, match=message):
        mask_generator(testing.synthetic_image(), **prompts)


def test_rle_video_results_are_json(tracker):
    frames = testing.synthetic_frames(3, 48, 64)
    results = tracker(frames, prompts=[{"frame": 0, "obj_id": 1, "points": [[20, 20]], "labels": [1]}], output="rle")
    text = json.dumps(results)
    assert json.loads(text)[0]["object_ids"] == [1]
    assert isinstance(results[0]["scores"][0], float)


# ---------------------------------------------------------------------------------------------- command line


def test_outputs_of_same_named_images_are_never_overwritten(tiny_image_model_dir, tmp_path, capsys):
    for folder, suffix in (("a", ".png"), ("b", ".jpg")):
        (tmp_path / folder).mkdir()
        Image.fromarray(testing.synthetic_image()).save(tmp_path / folder / f"img{suffix}")
    out = tmp_path / "out"
    argv = ["generate-masks", str(tmp_path / "a" / "img.png"), str(tmp_path / "b" / "img.jpg"), "--out", str(out)]
    assert cli.main([*argv, "--model", tiny_image_model_dir, *CPU, *AMG]) == 0
    assert (out / "a" / "img.json").is_file() and (out / "b" / "img.json").is_file()
    # same folder, same stem: refused before any work
    Image.fromarray(testing.synthetic_image()).save(tmp_path / "a" / "img.jpg")
    other = tmp_path / "other"
    argv = ["generate-masks", str(tmp_path / "a" / "img.png"), str(tmp_path / "a" / "img.jpg"), "--out", str(other)]
    assert cli.main([*argv, "--model", tiny_image_model_dir, *CPU]) == 2
    assert "both be written" in capsys.readouterr().err and not other.exists()


@pytest.mark.parametrize(
    "extra, status, message",
    [
        (["--device", "bogus"], 2, "--device must be a torch device"),
        (["--device", "cuda"], 1, "CUDA is not available"),
        (["--crop-overlap-ratio", "512/1500", "--out", "FILE"], 1, None),
    ],
)
def test_cli_devices_and_out(tiny_image_model_dir, tmp_path, capsys, extra, status, message):
    if message and "CUDA" in message and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    image = tmp_path / "a.png"
    Image.fromarray(testing.synthetic_image()).save(image)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    extra = [str(a_file) if e == "FILE" else e for e in extra]
    argv = ["generate-masks", str(image), "--model", tiny_image_model_dir, "--no-progress", *extra]
    if "--out" not in extra:
        argv += ["--out", str(tmp_path / "out")]
    try:
        code = cli.main(argv)
    except SystemExit as exit_info:
        code = exit_info.value.code
    err = capsys.readouterr().err
    if message is None:  # the fraction is accepted; --out pointing at a file is the error
        assert code == 2 and "--out must be a directory" in err
    else:
        assert code == status and message in err


def test_track_object_ids_beyond_the_palette(tiny_video_model_dir, tmp_path):
    video = testing.synthetic_video(tmp_path / "v.mp4", num_frames=3, height=48, width=64)
    out = tmp_path / "tracks"
    argv = ["track", str(video), "--obj", "0", "--point", "20,20", "--obj", "300", "--point", "40,30", "--out", str(out)]
    assert cli.main([*argv, "--model", tiny_video_model_dir, *CPU]) == 0
    mapping = json.loads((out / "masks" / "object_ids.json").read_text())["pixel_value_to_object_id"]
    assert mapping == {"1": 0, "2": 300}
    assert len(list((out / "masks").glob("*.png"))) == 3
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv[:-2], "--fps", "0", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_grid_when_nothing_survives(tiny_image_model_dir):
    """Default thresholds, nothing survives: peak RSS of a 120x120 grid stays within 5% of an 8x8 grid's."""
    import os
    import subprocess
    import sys

    script = (
        "import resource, sys\n"
        "import sam2_pipelines\n"
        "from transformers import pipeline\n"
        "from sam2_pipelines import testing\n"
        "generator = pipeline('mask-generation', model=sys.argv[1])\n"
        "generator(testing.synthetic_image(120, 160), points_per_side=int(sys.argv[2]))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")

    def peak(points_per_side):
        done = subprocess.run([sys.executable, "-c", script, tiny_image_model_dir, str(points_per_side)],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    small, large = peak(8), peak(120)
    assert large < 1.05 * small, (small, large)


def test_data_uris_are_still_images(mask_generator):
    import base64
    import io

    buffer = io.BytesIO()
    Image.fromarray(testing.synthetic_image()).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    out = mask_generator(uri, points=[[[50, 40]]], labels=[[1]])
    ref = mask_generator(testing.synthetic_image(), points=[[[50, 40]]], labels=[[1]])
    assert np.array_equal(out["masks"], ref["masks"])
