"""The README's main job (``./run.sh example``): sample image + sample video -> visible outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_pipelines import example
from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.io.video import open_video

ROOT = Path(__file__).resolve().parents[2]


def run_example(*args, env=None):
    environment = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {}))
    return subprocess.run([sys.executable, "-m", "sam2_pipelines.example", *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=900)


def test_given_model_unreachable_prints_one_paragraph(tmp_path):
    # No network and an empty cache: a --model given explicitly cannot be fetched, and nothing is substituted.
    result = run_example("--model", "facebook/sam2.1-hiera-tiny", "--out", tmp_path / "out",
                         env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("error: Could not load the model 'facebook/sam2.1-hiera-tiny'")
    assert "\n" not in message
    assert "--model" in message and "save_pretrained" in message and ".pt" in message
    assert not (tmp_path / "out" / "image").exists()


@pytest.mark.slow
def test_default_model_unreachable_runs_on_random_weights(tmp_path):
    """Without --model and without the Hub, the whole example still runs, on a random full-size model, and says so."""
    out = tmp_path / "out"
    result = run_example("--out", out, "--points-per-side", "4", "--device", "cpu", "--no-progress",
                         env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")})
    assert result.returncode == 0, result.stderr
    assert "cannot be reached" in result.stderr and "meaningless" in result.stdout and "--model" in result.stdout
    assert (out / "image-random-weights" / "sample_image.json").is_file()
    assert (out / "image-random-weights" / "sample_image_overlay.png").is_file()
    assert (out / "video-random-weights" / "tracks.json").is_file()
    assert len(list((out / "video-random-weights" / "masks").glob("*.png"))) == example.VIDEO_FRAMES
    assert not (out / "image").exists() and not (out / "video").exists()


def test_bad_arguments_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--out", str(tmp_path), "--frobnicate"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --frobnicate" in capsys.readouterr().err


@pytest.mark.slow
def test_example_writes_visible_outputs(tiny_video_model_dir, tmp_path):
    out = tmp_path / "outputs"
    # One save_pretrained directory of a video model serves both tasks.
    result = run_example("--model", tiny_video_model_dir, "--out", out, "--points-per-side", "4", "--device", "cpu", "--no-progress")
    assert result.returncode == 0, result.stderr

    image = np.asarray(Image.open(out / "sample_image.png"))
    assert image.shape == (*example.IMAGE_SIZE, 3)
    overlay = np.asarray(Image.open(out / "image" / "sample_image_overlay.png"))
    assert overlay.shape == image.shape
    document = json.loads((out / "image" / "sample_image.json").read_text())
    covered = np.zeros(example.IMAGE_SIZE, bool)
    for annotation in document["annotations"]:
        mask = decode_rle(annotation["segmentation"])
        assert mask.shape == example.IMAGE_SIZE and annotation["area"] == int(mask.sum())
        covered |= mask
    assert np.array_equal(overlay[~covered], image[~covered])  # only masked pixels are tinted

    frames = open_video(str(out / "sample_video.mp4"))
    assert len(frames) == example.VIDEO_FRAMES
    pngs = sorted((out / "video" / "masks").glob("*.png"))
    assert len(pngs) == example.VIDEO_FRAMES
    labels = [np.asarray(Image.open(p)) for p in pngs]
    assert all(set(np.unique(l)) <= {0, 1} for l in labels)
    assert sum(int((l == 1).sum()) for l in labels) > 0  # the clicked square is tracked
    tracks = json.loads((out / "video" / "tracks.json").read_text())
    assert [f["frame_idx"] for f in tracks["frames"]] == list(range(example.VIDEO_FRAMES))
    assert all(f["object_ids"] == [1] for f in tracks["frames"])
    assert tracks["prompts"] == [{"frame": 0, "obj_id": 1, "points": [[30.0, 120.0]], "labels": [1]}]
    rendered = open_video(str(out / "video" / "overlay.mp4"))
    assert len(rendered) == example.VIDEO_FRAMES and (rendered.height, rendered.width) == example.VIDEO_SIZE
