"""The Gradio demo: prompt bookkeeping, and the real app driven in headless Chromium through Playwright.

The browser tests start ``python -m sam2_pipelines.demo.app`` on 127.0.0.1 with the tiny checkpoints,
upload media, click on them, and compare what the page shows with what the app's functions compute
from the same model directories.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_pipelines import testing
from sam2_pipelines.demo.app import MODES, DemoModels, add_click, segment_overlay, video_prompts
from sam2_pipelines.visualize import color_for

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def read_pins(path: Path) -> dict:
    """``{package: version}`` of the ``name==version`` lines of a requirements / constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_repository_is_a_space():
    """README's Spaces block names the root app.py and the tested gradio; requirements.txt pins tested versions."""
    header = (ROOT / "README.md").read_text().split("---\n")
    assert header[0] == "", "README.md must start with the Spaces YAML block"
    config = dict(line.split(": ", 1) for line in header[1].strip().splitlines())
    assert config["sdk"] == "gradio" and (ROOT / config["app_file"]).is_file()
    tested = read_pins(ROOT / "constraints.txt")
    assert config["sdk_version"] == tested["gradio"]
    required = read_pins(ROOT / "requirements.txt")
    assert {"torch", "transformers", "gradio", "av", "pycocotools"} <= set(required)
    assert {name: tested.get(name) for name in required} == required  # every pin is the tested version


def test_add_click_points_and_box():
    prompts = add_click(None, MODES[0], 10, 20)
    prompts = add_click(prompts, MODES[1], 30, 40)
    assert prompts["points"] == [[10, 20], [30, 40]] and prompts["labels"] == [1, 0]
    half = add_click(prompts, MODES[2], 50, 60)
    assert half["box"] is None and half["corner"] == [50, 60]
    full = add_click(half, MODES[2], 5, 70)
    assert full["box"] == [5, 60, 50, 70] and full["corner"] is None
    assert prompts["points"] == [[10, 20], [30, 40]]  # inputs are not modified
    with pytest.raises(ValueError, match="unknown click mode"):
        add_click(None, "Lasso", 1, 1)


def test_video_prompts_group_by_frame_and_object():
    clicks = [
        {"frame": 0, "obj_id": 1, "point": [1, 2], "label": 1},
        {"frame": 0, "obj_id": 2, "point": [3, 4], "label": 1},
        {"frame": 0, "obj_id": 1, "point": [5, 6], "label": 0},
        {"frame": 3, "obj_id": 1, "point": [7, 8], "label": 1},
    ]
    assert video_prompts(clicks) == [
        {"frame": 0, "obj_id": 1, "points": [[1, 2], [5, 6]], "labels": [1, 0]},
        {"frame": 0, "obj_id": 2, "points": [[3, 4]], "labels": [1]},
        {"frame": 3, "obj_id": 1, "points": [[7, 8]], "labels": [1]},
    ]


def test_segment_overlay_marks_the_prompted_object(tiny_image_model_dir, image):
    models = DemoModels(tiny_image_model_dir)
    plain = segment_overlay(models, image, {})
    assert plain.shape == image.shape and np.array_equal(plain, image)  # no prompt: the image itself
    shown = segment_overlay(models, image, add_click(None, MODES[0], 48, 48))
    output = models.generator()(Image.fromarray(image), points=[[[48, 48]]], labels=[[1]], multimask_output=True)
    best = np.asarray(output["masks"])[0, int(np.argmax(np.asarray(output["scores"])[0]))]
    assert best.shape == image.shape[:2]
    if best.any():
        assert not np.array_equal(shown[best], image[best])


# ---------------------------------------------------------------- the real app in a browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tiny_image_model_dir, tiny_tracking_model_dir, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("demo") / "app.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    command = [sys.executable, "-m", "sam2_pipelines.demo.app", "--model", tiny_image_model_dir, "--video-model", tiny_tracking_model_dir,
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo exited with status {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not answer on {url} within 180 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def page(app_url):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is required at {CHROMIUM} (./run.sh test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(app_url, wait_until="domcontentloaded")
        yield page
        browser.close()


def assert_same_picture(shown, expected):
    """The page shows the expected picture; the app's process may flip a few mask-border pixels (float
    rounding with another thread count), so up to 1% of the pixels may differ."""
    assert shown.shape == expected.shape
    assert np.any(shown != expected, axis=-1).mean() < 0.01


def _fetch_png(page, locator) -> np.ndarray:
    response = page.request.get(locator.get_attribute("src"))
    assert response.ok, response.status
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))


def _wait_src_change(page, selector: str, previous: str | None) -> str:
    page.wait_for_function(
        "([sel, prev]) => { const img = document.querySelector(sel); return img && img.src && img.src !== prev; }",
        arg=[selector, previous or ""],
    )
    return page.locator(selector).get_attribute("src")


@pytest.mark.slow
def test_browser_click_to_segment_shows_the_mask(page, tiny_image_model_dir, tmp_path):
    image = testing.synthetic_image()
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    page.get_by_role("tab", name="Click to segment").click()
    page.locator("#segment-input input[type=file]").set_input_files(str(path))
    shown = page.locator("#segment-input img")
    shown.wait_for(state="visible")
    box = shown.bounding_box()
    # Click on the red disc (centre at 30% of the width, 40% of the height of the synthetic image).
    shown.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.4})
    src = _wait_src_change(page, "#segment-output img", None)
    output = _fetch_png(page, page.locator("#segment-output img"))
    prompts = json.loads(page.locator("#segment-prompts textarea").input_value())
    assert prompts["labels"] == [1] and len(prompts["points"]) == 1
    x, y = prompts["points"][0]
    assert abs(x - 0.3 * image.shape[1]) <= 3 and abs(y - 0.4 * image.shape[0]) <= 3  # browser click -> image pixel

    # What the page shows is the app's overlay for that click, computed here from the same model directory.
    models = DemoModels(tiny_image_model_dir)
    expected = segment_overlay(models, image, prompts)
    assert output.shape == image.shape
    assert_same_picture(output, expected)
    # ... and it is a mask overlay: masked pixels are blended with object 1's colour.
    result = models.generator()(Image.fromarray(image), points=[prompts["points"]], labels=[prompts["labels"]], multimask_output=True)
    mask = np.asarray(result["masks"])[0, int(np.argmax(np.asarray(result["scores"])[0]))]
    assert mask.any(), "the tiny model produced an empty mask for the click"
    blended = (image.astype(np.float32) * 0.5 + color_for(1).astype(np.float32) * 0.5).astype(np.uint8)
    tinted = np.all(np.abs(output.astype(int) - blended.astype(int)) <= 1, axis=-1) | np.all(output == color_for(1), axis=-1)
    assert tinted[mask].mean() > 0.9

    # A negative click refines the prompts and re-renders.
    page.get_by_label(MODES[1]).check()
    shown.click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.7})
    _wait_src_change(page, "#segment-output img", src)
    prompts = json.loads(page.locator("#segment-prompts textarea").input_value())
    assert prompts["labels"] == [1, 0]
    assert_same_picture(_fetch_png(page, page.locator("#segment-output img")), segment_overlay(models, image, prompts))


@pytest.mark.slow
def test_browser_automatic_masks(page, tiny_image_model_dir, tmp_path):
    image = testing.synthetic_image()
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    page.get_by_role("tab", name="Automatic masks").click()
    page.locator("#auto-input input[type=file]").set_input_files(str(path))
    page.locator("#auto-input img").wait_for(state="visible")
    for name, value in (("points per side", "4"), ("pred_iou_thresh", "0"), ("stability_score_thresh", "0")):
        field = page.get_by_role("spinbutton", name=f"number input for {name}")
        field.fill(value)
        field.press("Tab")
    page.locator("#auto-run").click()
    _wait_src_change(page, "#auto-output img", None)
    output = _fetch_png(page, page.locator("#auto-output img"))
    summary = page.locator("#auto-summary textarea").input_value()
    count = int(summary.split()[0])
    from sam2_pipelines.demo.app import automatic_masks

    expected, json_path, expected_summary = automatic_masks(DemoModels(tiny_image_model_dir), image, 4, 0.0, 0.0)
    assert summary == expected_summary and count == len(json.loads(Path(json_path).read_text())["annotations"])
    assert_same_picture(output, expected)
    if count:
        assert not np.array_equal(output, image)


@pytest.mark.slow
def test_browser_video_tracking(page, tiny_tracking_model_dir, tmp_path):
    from sam2_pipelines.video_io import open_video

    video = testing.synthetic_video(tmp_path / "clip.mp4")
    page.get_by_role("tab", name="Video tracking").click()
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    frame = page.locator("#video-frame img")
    frame.wait_for(state="visible")
    src = frame.get_attribute("src")
    box = frame.bounding_box()
    # The square starts at the left edge, vertically centred.
    frame.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.5})
    _wait_src_change(page, "#video-frame img", src)
    clicks = json.loads(page.locator("#video-clicks textarea").input_value())
    assert [(c["frame"], c["obj_id"], c["label"]) for c in clicks] == [(0, 1, 1)]
    page.locator("#video-run").click()
    link = page.locator("#video-file a").first
    link.wait_for(state="attached")
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    out = tmp_path / "overlay.mp4"
    out.write_bytes(response.body())
    overlay = [np.asarray(f, dtype=np.float32) for f in open_video(str(out))]
    original = [np.asarray(f) for f in open_video(str(video))]
    assert len(overlay) == len(original)

    # The overlay is the tracking of the clicked object, recomputed here from the same model directory:
    # frames that carry a mask are much closer to the expected overlay than to the plain frames.
    from sam2_pipelines.visualize import overlay_frame

    models = DemoModels(tiny_tracking_model_dir, tiny_tracking_model_dir)
    results = models.tracker()(str(video), prompts=video_prompts(clicks), direction="both")
    checked = 0
    for result in results:
        index = int(result["frame_idx"])
        if not np.asarray(result["masks"]).any():
            continue
        expected = overlay_frame(original[index], result).astype(np.float32)
        assert np.abs(overlay[index] - expected).mean() < np.abs(overlay[index] - original[index]).mean()
        checked += 1
    assert checked > 0, "the tiny model tracked nothing"
