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
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_pipelines import testing
from sam2_pipelines.demo.app import MODES, DemoModels, add_click, automatic_masks, build_demo, segment_overlay, text_instances
from sam2_pipelines.core.masks import decode_rle
from sam2_pipelines.core.masks import decode_rle as _decode_rle
from sam2_pipelines.io.visualize import color_for

ROOT = Path(__file__).resolve().parents[2]
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


def test_package_description_is_the_readme_without_the_spaces_card():
    """pyproject's long description is README.md's introduction, without the Spaces YAML block (package
    indexes would show it as text)."""
    import re

    path = re.search(r'^readme = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    description = (ROOT / path).read_text()
    assert not description.startswith("---") and "sdk:" not in description
    body = (ROOT / "README.md").read_text().split("---\n", 2)[2]
    introduction = body[: body.index("Documentation: [docs/index.md]")].strip()
    assert description.startswith(introduction)  # kept in step with the README


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


def test_segment_overlay_marks_the_prompted_object(tiny_image_model_dir, image):
    models = DemoModels(tiny_image_model_dir)
    plain = segment_overlay(models, image, {})
    assert plain.shape == image.shape and np.array_equal(plain, image)  # no prompt: the image itself
    shown = segment_overlay(models, image, add_click(None, MODES[0], 48, 48))
    output = models.generator()(Image.fromarray(image), points=[[[48, 48]]], labels=[[1]], multimask_output=True)
    best = np.asarray(output["masks"])[0, int(np.argmax(np.asarray(output["scores"])[0]))]
    assert best.shape == image.shape[:2] and best.any()  # the tiny model's mask for this click is not empty
    assert not np.array_equal(shown[best], image[best])


def test_an_image_is_encoded_once_for_every_click_and_automatic_run(tiny_image_model_dir, image):
    models = DemoModels(tiny_image_model_dir)
    prompts = None
    for mode, x, y in ((MODES[0], 48, 48), (MODES[1], 100, 90), (MODES[2], 10, 10), (MODES[2], 80, 70)):
        prompts = add_click(prompts, mode, x, y)
        shown = segment_overlay(models, image, prompts)
    automatic_masks(models, image, 4, 0.0, 0.0)
    assert models.encoder_passes == 1
    # ... with the pipeline call's results (which encodes the image itself).
    output = models.generator()(Image.fromarray(image), points=[prompts["points"]], labels=[prompts["labels"]], boxes=[prompts["box"]], multimask_output=True)
    assert models.encoder_passes == 2
    best = np.asarray(output["masks"])[0, int(np.argmax(np.asarray(output["scores"])[0]))]
    assert np.array_equal(shown, segment_overlay(models, image, prompts))
    from sam2_pipelines.io.visualize import draw_prompts, overlay_masks

    expected = draw_prompts(overlay_masks(image, [best], obj_ids=[1]), prompts["points"], prompts["labels"], [prompts["box"]], radius=3)
    assert np.array_equal(shown, expected)
    segment_overlay(models, image[::-1].copy(), prompts)  # another picture: encoded once more
    segment_overlay(models, image[::-1].copy(), prompts)
    assert models.encoder_passes == 3


def _session_results(tracker, video, steps) -> dict:
    """Per-frame results (RLE) of a plain TrackingSession running ``steps``: the reference for the demo's."""
    from sam2_pipelines.demo.state import rle_result

    results = {}
    with tracker.session(str(video)) as session:
        for step in steps:
            if step[0] == "click":
                _, frame, obj_id, point, label = step
                session.add_points(frame, obj_id, [point], [label])
            elif step[0] == "propagate":
                for r in session.propagate(direction="both", start_frame=step[1], output="rle"):
                    results[int(r["frame_idx"])] = rle_result(r["frame_idx"], r["object_ids"], r["masks"], r["scores"])
            else:
                session.remove_object(step[1])
    return results


def test_video_work_clicks_propagates_corrects_removes_and_exports(tiny_video_model_dir, tmp_path):
    from sam2_pipelines.core.masks import decode_rle

    video = testing.synthetic_video(tmp_path / "clip.mp4")
    models = DemoModels(tiny_video_model_dir)
    work = models.visitors.open_video("visitor", str(video))
    assert work.num_frames == 8 and work.object_ids == []
    with pytest.raises(ValueError, match="click at least one object"):
        work.propagate()
    shown = work.click(0, 1, 13, 48)  # a click segments the clicked frame only
    assert sorted(work.results) == [0] and work.changed == {0} and not np.array_equal(shown, work.frame(0))
    first, count = work.propagate("both")
    assert (first, count) == (0, 8) and sorted(work.results) == list(range(8)) and not work.changed
    reference = _session_results(models.tracker(), video, [("click", 0, 1, [13, 48], 1), ("propagate", None)])
    assert work.results == reference

    # A correction after propagation refines that frame; the next propagation re-tracks from there.
    before = work.results[5]
    work.click(5, 1, 60, 48, positive=False)
    assert work.changed == {5} and work.results[5] != before
    first, count = work.propagate("both")
    assert (first, count) == (5, 8)
    steps = [("click", 0, 1, [13, 48], 1), ("propagate", None), ("click", 5, 1, [60, 48], 0), ("propagate", 5)]
    assert work.results == _session_results(models.tracker(), video, steps)

    # A second object, then removing the first: its masks and clicks go everywhere.
    work.click(2, 2, 100, 20)
    assert work.object_ids == [1, 2] and work.results[2]["object_ids"] == [1, 2]
    work.remove(1)
    assert work.object_ids == [2] and {c["obj_id"] for c in work.clicks} == {2}
    assert all(1 not in r["object_ids"] for r in work.results.values())
    with pytest.raises(ValueError, match="there is no object 1"):
        work.remove(1)

    document = json.loads(work.export_coco(tmp_path / "masks.json").read_text())
    assert [f["frame_idx"] for f in document["frames"]] == list(range(8))
    assert document["frames"][2]["object_ids"] == [2]
    with zipfile.ZipFile(work.export_davis(tmp_path / "davis.zip")) as archive:
        assert sorted(archive.namelist()) == [f"{i:05d}.png" for i in range(8)]
        labels = np.asarray(Image.open(io.BytesIO(archive.read("00002.png"))))
    assert np.array_equal(labels == 2, decode_rle(work.results[2]["masks"][0]))


def test_video_tab_refuses_an_image_only_model_at_start(tiny_image_model_dir):
    import gradio as gr

    demo = build_demo(DemoModels(tiny_image_model_dir))
    blocks = list(demo.blocks.values())
    problem = [b for b in blocks if getattr(b, "elem_id", None) == "video-problem"]
    assert len(problem) == 1 and "image-only checkpoint" in problem[0].value
    assert not [b for b in blocks if isinstance(b, gr.Video)]  # no upload that could only fail later
    assert [b for b in blocks if getattr(b, "elem_id", None) == "segment-input"]  # the image tabs stay


def test_find_by_text_with_a_sam3_text_model(tiny_sam3_model_dir, tiny_video_model_dir, image):
    """A SAM 3 text model gets the "Find by text" tab (its instances equal the pipeline's) and a message in place of
    the automatic and click tabs; a SAM 2 model gets a message in the text tab."""
    import gradio as gr

    models = DemoModels(tiny_sam3_model_dir, video_model=tiny_video_model_dir)
    shown, json_path, summary = text_instances(models, image, "red car, dog", 0.25)
    expected = models.generator()(image, text=["red car", "dog"], score_threshold=0.25, output_mode="coco_rle")["records"]
    annotations = json.loads(Path(json_path).read_text())["annotations"]
    assert 0 < len(annotations) == len(expected) and summary.startswith(f"{len(expected)} instances (red car: ")
    for annotation, record in zip(annotations, expected):
        assert annotation["concept"] == record["concept"]
        assert np.array_equal(_decode_rle(annotation["segmentation"]), _decode_rle(record["segmentation"]))
    assert shown.shape == image.shape and not np.array_equal(shown, image)
    with pytest.raises(gr.Error, match="Type what to find"):
        text_instances(models, image, " , ", 0.5)

    ids = {getattr(b, "elem_id", None): b for b in build_demo(models).blocks.values()}
    assert {"text-input", "text-concepts", "text-run", "auto-problem", "video-input"} <= set(ids)
    assert "segment-input" not in ids and "SAM 3's text model" in ids["auto-problem"].value
    ids = {getattr(b, "elem_id", None): b for b in build_demo(DemoModels(tiny_video_model_dir)).blocks.values()}
    assert "text-input" not in ids and "needs SAM 3's text model" in ids["text-problem"].value and "segment-input" in ids


def test_video_work_tracks_text_with_a_sam3_video_model(tiny_sam3_model_dir, tiny_sam3_video_model_dir, tmp_path):
    """With SAM 3's text video model the video tab tracks typed concepts (results equal the pipeline's), lists each
    object with its concept, and refuses clicks."""
    import gradio as gr

    from sam2_pipelines.demo.video_tab import track_text, video_summary

    video = str(testing.synthetic_video(tmp_path / "clip.mp4"))
    models = DemoModels(tiny_sam3_model_dir, video_model=tiny_sam3_video_model_dir)
    work = models.visitors.open_video("visitor", video)
    assert work.tracks_text and work.object_ids == []
    with pytest.raises(ValueError, match="tracks what a text names"):
        work.click(0, 1, 10, 10)
    with pytest.raises(gr.Error, match="Type what to track"):
        track_text(work, " ,")
    status = track_text(work, "red car, dog")
    expected = models.tracker()(video, prompts=[{"frame": 0, "text": ["red car", "dog"]}], output="rle")
    assert sorted(work.results) == list(range(8)) and status.startswith("tracked 8 frames: ")
    for result in expected:
        shown = work.results[result["frame_idx"]]
        assert shown["object_ids"] == result["object_ids"] and shown["masks"] == result["masks"]
    found = {i: c for r in expected for i, c in zip(r["object_ids"], r["concepts"])}
    assert found and work.concepts == found
    ids, _ = video_summary(work)
    assert ids == ", ".join(f"{i} ({c})" for i, c in sorted(found.items()))
    first = min(found)
    work.remove(first)
    assert first not in work.object_ids and all(first not in r["object_ids"] for r in work.results.values())
    document = json.loads(work.export_coco(tmp_path / "masks.json").read_text())
    assert str(first) not in document["concepts"] and len(document["frames"]) == 8

    ids = {getattr(b, "elem_id", None) for b in build_demo(models).blocks.values()}
    assert {"video-input", "video-concepts", "video-run"} <= ids and "video-mode" not in ids and "video-direction" not in ids


def test_examples_offer_the_sample_media(tiny_image_model_dir, tiny_video_model_dir):
    import gradio as gr

    demo = build_demo(DemoModels(tiny_image_model_dir, tiny_video_model_dir))
    examples = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
    shown = {Path(str(row[0])).name for b in examples for row in b.raw_samples}
    assert {"truck.jpg", "groceries.jpg", "bedroom.mp4"} <= shown


# ---------------------------------------------------------------- the real app in a browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(model: str, video_model: str, log: Path):
    """Start the demo app on a free port with these models; yield its URL once it answers, then stop it.

    The app's temporary folder (``TMPDIR``) is ``tmp`` next to ``log``, where tests can count what it leaves."""
    port = _free_port()
    temp = log.parent / "tmp"
    temp.mkdir(exist_ok=True)
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TMPDIR=str(temp), GRADIO_HEARTBEAT_INTERVAL="2",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    command = [sys.executable, "-m", "sam2_pipelines.demo.app", "--model", model, "--video-model", video_model,
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
def browser():
    """Headless Chromium (Debian's chromium, driven by Playwright), shared by the module's pages."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is required at {CHROMIUM} (./run.sh test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _browse(browser, url: str):
    """A page of ``browser`` on ``url``, closed afterwards."""
    page = browser.new_page()
    page.set_default_timeout(120_000)
    page.goto(url, wait_until="domcontentloaded")
    yield page
    page.close()


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory) -> Path:
    """The app's log and its temporary folder (``tmp``)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def app_url(tiny_image_model_dir, tiny_video_model_dir, app_folder):
    yield from _serve(tiny_image_model_dir, tiny_video_model_dir, app_folder / "app.log")


@pytest.fixture(scope="module")
def page(browser, app_url):
    yield from _browse(browser, app_url)


@pytest.fixture(scope="module")
def text_page(browser, tiny_sam3_model_dir, tiny_sam3_video_model_dir, tmp_path_factory):
    """A page of the app started with SAM 3's text models (image and video)."""
    for url in _serve(tiny_sam3_model_dir, tiny_sam3_video_model_dir, tmp_path_factory.mktemp("text-demo") / "app.log"):
        yield from _browse(browser, url)


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


#: Image encoder passes of the app before the click test (it runs first in this module, on a fresh app).
ENCODED_BEFORE = 0


def _image_file(tmp_path):
    """The synthetic test image and a PNG of it to upload."""
    image = testing.synthetic_image()
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    return image, path


@pytest.mark.slow
def test_browser_click_to_segment_shows_the_mask(page, tiny_image_model_dir, tmp_path):
    image, path = _image_file(tmp_path)
    page.get_by_role("tab", name="Click to segment").click()
    assert page.locator("#segment-status textarea").input_value() == f"image encoder passes: {ENCODED_BEFORE}"
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
    # Two clicks, one image: the app's image encoder ran once.
    status = page.locator("#segment-status textarea").input_value()
    assert status == f"image encoder passes: {ENCODED_BEFORE + 1}"


@pytest.mark.slow
def test_browser_automatic_masks(page, tiny_image_model_dir, tmp_path):
    image, path = _image_file(tmp_path)
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
    assert count > 0 and not np.array_equal(output, image)  # with both thresholds at 0 some mask is kept and drawn


def _text(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea").input_value()


def _wait_text(page, elem_id: str, predicate_js: str) -> str:
    """Wait until the textbox ``elem_id``'s value satisfies ``predicate_js`` (a JS expression over ``v``)."""
    page.wait_for_function(f"() => {{ const t = document.querySelector('#{elem_id} textarea'); const v = t ? t.value : ''; return {predicate_js}; }}")
    return _text(page, elem_id)


def _click_frame(page, x_fraction: float, y_fraction: float) -> str:
    """Click the video tab's frame at a fraction of its size; wait for the new frame image."""
    frame = page.locator("#video-frame img")
    src = frame.get_attribute("src")
    box = frame.bounding_box()
    frame.click(position={"x": box["width"] * x_fraction, "y": box["height"] * y_fraction})
    return _wait_src_change(page, "#video-frame img", src)


def _download(page, tmp_path, name: str, previous: str | None = None) -> Path:
    page.wait_for_function(
        "(prev) => { const a = document.querySelector('#video-file a'); return a && a.href && a.href !== prev; }", arg=previous or ""
    )
    href = page.locator("#video-file a").first.get_attribute("href")
    response = page.request.get(href)
    assert response.ok, response.status
    path = tmp_path / name
    path.write_bytes(response.body())
    return path


@pytest.mark.slow
def test_browser_video_tracking(page, tiny_video_model_dir, tmp_path):
    """Click, propagate, correct and re-propagate, add and remove objects, export: the page's outputs equal a
    TrackingSession doing the same steps here, on the same model directory."""
    from sam2_pipelines.core.masks import decode_rle
    from sam2_pipelines.io.video import open_video
    from sam2_pipelines.io.visualize import overlay_frame

    video = testing.synthetic_video(tmp_path / "clip.mp4")
    page.get_by_role("tab", name="Video tracking").click()
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    page.locator("#video-frame img").wait_for(state="visible")
    _wait_text(page, "video-status", "v.startsWith('8 frames')")

    # The square starts at the left edge, vertically centred: a click segments frame 0 only.
    _click_frame(page, 0.1, 0.5)
    assert _wait_text(page, "video-objects", "v === '1'") == "1"
    clicks = json.loads(_text(page, "video-clicks"))
    assert [(c["frame"], c["obj_id"], c["label"]) for c in clicks] == [(0, 1, 1)]
    (x, y) = clicks[0]["point"]

    page.locator("#video-run").click()
    assert _wait_text(page, "video-status", "v.startsWith('tracked')") == "tracked 8 frames from frame 0 (both)"
    page.locator("#video-export-coco").click()
    exported = json.loads(_download(page, tmp_path, "first.json").read_text())
    steps = [("click", 0, 1, [x, y], 1), ("propagate", None)]
    expected = _session_results(DemoModels(tiny_video_model_dir).tracker(), video, steps)
    assert [f["frame_idx"] for f in exported["frames"]] == list(range(8))
    for frame in exported["frames"]:
        want = expected[frame["frame_idx"]]
        assert frame["object_ids"] == want["object_ids"] == [1]
        assert [decode_rle(m).tolist() for m in frame["masks"]] == [decode_rle(m).tolist() for m in want["masks"]]
    assert any(decode_rle(f["masks"][0]).any() for f in exported["frames"]), "the tiny model tracked nothing"

    # The overlay video shows those masks.
    overlay_link = page.locator("#video-output video")
    overlay_link.wait_for(state="attached")
    response = page.request.get(overlay_link.get_attribute("src"))
    assert response.ok
    (tmp_path / "overlay.mp4").write_bytes(response.body())
    overlay = [np.asarray(f, dtype=np.float32) for f in open_video(str(tmp_path / "overlay.mp4"))]
    original = [np.asarray(f) for f in open_video(str(video))]
    assert len(overlay) == len(original) == 8
    for index, result in expected.items():
        if decode_rle(result["masks"][0]).any():
            shown = overlay_frame(original[index], result).astype(np.float32)
            assert np.abs(overlay[index] - shown).mean() < np.abs(overlay[index] - original[index]).mean()

    # A correction on frame 5 (a negative click) refines that frame; Propagate re-tracks from there.
    src = page.locator("#video-frame img").get_attribute("src")
    index_box = page.get_by_role("spinbutton", name="number input for frame")
    index_box.fill("5")
    index_box.press("Enter")
    _wait_src_change(page, "#video-frame img", src)
    page.locator("#video-mode").get_by_label(MODES[1]).check()
    _click_frame(page, 0.9, 0.1)
    _wait_text(page, "video-status", "v === 'object 1 segmented on frame 5; Propagate to track it'")
    clicks = json.loads(_text(page, "video-clicks"))
    assert [(c["frame"], c["obj_id"], c["label"]) for c in clicks] == [(0, 1, 1), (5, 1, 0)]
    steps += [("click", 5, 1, clicks[1]["point"], 0), ("propagate", 5)]
    page.locator("#video-run").click()
    _wait_text(page, "video-status", "v === 'tracked 8 frames from frame 5 (both)'")
    previous = page.locator("#video-file a").first.get_attribute("href")
    page.locator("#video-export-coco").click()
    exported = json.loads(_download(page, tmp_path, "corrected.json", previous).read_text())
    expected = _session_results(DemoModels(tiny_video_model_dir).tracker(), video, steps)
    from sam2_pipelines.io.exports import json_ready

    assert exported["frames"] == [json.loads(json.dumps(json_ready(expected[i]))) for i in range(8)]

    # A second object on frame 2, then removing object 1: the object list follows, the export holds object 2 only.
    page.locator("#video-mode").get_by_label(MODES[0]).check()
    page.locator("#video-obj input").fill("2")
    page.locator("#video-obj input").press("Tab")
    index_box.fill("2")
    index_box.press("Enter")
    page.wait_for_timeout(300)
    _click_frame(page, 0.7, 0.2)
    assert _wait_text(page, "video-objects", "v === '1, 2'") == "1, 2"
    page.locator("#video-obj input").fill("1")
    page.locator("#video-obj input").press("Tab")
    page.locator("#video-remove").click()
    assert _wait_text(page, "video-objects", "v === '2'") == "2"
    previous = page.locator("#video-file a").first.get_attribute("href")
    page.locator("#video-export-davis").click()
    with zipfile.ZipFile(_download(page, tmp_path, "davis.zip", previous)) as archive:
        assert sorted(archive.namelist()) == [f"{i:05d}.png" for i in range(8)]
        pictures = {name: np.asarray(Image.open(io.BytesIO(archive.read(name)))) for name in archive.namelist()}
    assert all(set(np.unique(p)) <= {0, 2} for p in pictures.values())
    assert not any(p.any() for name, p in pictures.items() if name != "00002.png")  # object 2 is not propagated yet


@pytest.mark.slow
def test_browser_text_prompts_on_an_image_and_a_video(text_page, tiny_sam3_model_dir, tiny_sam3_video_model_dir, tmp_path):
    """SAM 3's text models in the browser: Find by text shows the instances of typed concepts; the video tab tracks
    typed concepts and exports what the pipeline computes here."""
    from sam2_pipelines.demo.app import text_instances

    page = text_page
    image, path = _image_file(tmp_path)
    page.get_by_role("tab", name="Find by text").click()
    page.locator("#text-input input[type=file]").set_input_files(str(path))
    page.locator("#text-input img").wait_for(state="visible")
    page.locator("#text-concepts textarea").fill("red car, dog")
    field = page.get_by_role("spinbutton", name="number input for score threshold")
    field.fill("0.25")
    field.press("Tab")
    page.locator("#text-run").click()
    _wait_src_change(page, "#text-output img", None)
    expected, _, expected_summary = text_instances(DemoModels(tiny_sam3_model_dir), image, "red car, dog", 0.25)
    assert _wait_text(page, "text-summary", "v.length > 0") == expected_summary
    assert_same_picture(_fetch_png(page, page.locator("#text-output img")), expected)

    video = testing.synthetic_video(tmp_path / "clip.mp4")
    page.get_by_role("tab", name="Video tracking").click()
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    page.locator("#video-frame img").wait_for(state="visible")
    _wait_text(page, "video-status", "v === '8 frames; type what to track'")
    page.locator("#video-concepts textarea").fill("red car")
    page.locator("#video-run").click()
    status = _wait_text(page, "video-status", "v.startsWith('tracked')")
    from transformers import pipeline

    expected = pipeline("video-object-tracking", model=tiny_sam3_video_model_dir)(str(video), prompts=[{"frame": 0, "text": "red car"}], output="rle")
    found = {i: c for r in expected for i, c in zip(r["object_ids"], r["concepts"])}
    assert status == f"tracked 8 frames: {len(found)} instances of red car" and found
    assert _text(page, "video-objects") == ", ".join(f"{i} ({c})" for i, c in sorted(found.items()))
    page.locator("#video-export-coco").click()
    exported = json.loads(_download(page, tmp_path, "text.json").read_text())
    assert exported["concepts"] == {str(i): c for i, c in sorted(found.items())}
    for frame, want in zip(exported["frames"], expected, strict=True):
        assert frame["frame_idx"] == want["frame_idx"] and frame["object_ids"] == want["object_ids"]
        assert [_decode_rle(m).tolist() for m in frame["masks"]] == [_decode_rle(m).tolist() for m in want["masks"]]


def _visitor(browser, url: str, video: Path):
    """A new visitor (a browser context of its own: its own Gradio session) who uploads ``video`` in the video tab."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Video tracking").click()
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    page.locator("#video-frame img").wait_for(state="visible")
    _wait_text(page, "video-status", "v.startsWith('8 frames')")
    return context, page


@pytest.mark.slow
def test_browser_visitors_have_their_own_sessions(browser, app_url, app_folder, tiny_video_model_dir, tmp_path):
    """Two visitors upload the same video (one path on the server) and click different places: each export holds
    that visitor's click and mask only. Three more visitors upload: the demo keeps 4 video sessions, so the first
    visitor, the least recently used, reads that their session expired, and the second still works. Visitors who
    close their tab have their files deleted."""
    from sam2_pipelines.demo.state import rle_result
    from sam2_pipelines.demo.visitors import FOLDER_PREFIX, expired_by_others

    video = testing.synthetic_video(tmp_path / "clip.mp4")
    temp = app_folder / "tmp"
    before = sorted(p.name for p in temp.glob(FOLDER_PREFIX + "*"))  # other tests' visitor, still on its page
    contexts = []
    try:
        for _ in range(2):
            contexts.append(_visitor(browser, app_url, video))
        (_, a), (_, b) = contexts
        _click_frame(a, 0.1, 0.5)
        _click_frame(b, 0.7, 0.2)
        tracker = DemoModels(tiny_video_model_dir).tracker()
        exported = {}
        for name, page in (("a", a), ("b", b)):
            _wait_text(page, "video-objects", "v === '1'")
            page.locator("#video-export-coco").click()
            exported[name] = json.loads(_download(page, tmp_path, f"{name}.json").read_text())
            clicks = json.loads(_text(page, "video-clicks"))
            assert exported[name]["clicks"] == clicks and len(clicks) == 1
            with tracker.session(str(video)) as session:  # the visitor's click alone, on a plain session
                result = session.add_points(0, 1, [clicks[0]["point"]], [1])
            want = rle_result(0, result["object_ids"], result["masks"], result["scores"])
            (frame,) = exported[name]["frames"]
            assert frame["object_ids"] == [1] and decode_rle(frame["masks"][0]).tolist() == decode_rle(want["masks"][0]).tolist()
        assert exported["a"]["clicks"] != exported["b"]["clicks"] and exported["a"]["frames"] != exported["b"]["frames"]
        assert len(list(temp.glob(FOLDER_PREFIX + "*"))) == len(before) + 2  # one output folder per visitor

        for _ in range(3):  # three more visitors: five for four sessions
            contexts.append(_visitor(browser, app_url, video))
        frame = a.locator("#video-frame img")
        box = frame.bounding_box()
        frame.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
        a.get_by_text(expired_by_others(4)).first.wait_for(state="visible")
        assert json.loads(_text(a, "video-clicks")) == exported["a"]["clicks"]  # nothing of another visitor's shown
        _click_frame(b, 0.3, 0.3)
        assert len(json.loads(_wait_text(b, "video-clicks", "JSON.parse(v || '[]').length === 2"))) == 2

        # A file that is not a video: the visitor reads why, not a bare "Error".
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video")
        (_, c) = contexts[2]
        c.locator("#video-input button[aria-label='Clear']").first.click()
        c.locator("#video-input input[type=file]").set_input_files(str(notes))
        c.get_by_text("as a video").first.wait_for(state="visible")
    finally:
        for context, _ in contexts:
            context.close()
    # Gradio reports the closed tabs gone: their video sessions are closed and their folders deleted.
    deadline = time.monotonic() + 60
    while sorted(p.name for p in temp.glob(FOLDER_PREFIX + "*")) != before:
        assert time.monotonic() < deadline, f"left behind: {sorted(p.name for p in temp.glob(FOLDER_PREFIX + '*'))} (before: {before})"
        time.sleep(0.5)
