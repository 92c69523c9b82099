"""Gradio demo of sam2-pipelines (Hugging Face Spaces layout): automatic masks, click-to-segment, video tracking.

Start it with a model directory (or Hub id, or Meta ``.pt``)::

    python -m sam2_pipelines.demo.app --model DIR [--video-model DIR] [--host 127.0.0.1] [--port 7860]

or set ``SAM2_DEMO_MODEL`` (and optionally ``SAM2_DEMO_VIDEO_MODEL``) and run ``python app.py`` on Spaces.
The default model is ``facebook/sam2.1-hiera-tiny``. Models load lazily on first use. The app never
contacts the network by itself: analytics are off and no share link is created.

Tabs:

* **Automatic masks**: upload an image, choose the grid and thresholds, get the overlay and a COCO RLE JSON.
* **Click to segment**: upload an image, click positive / negative points or two box corners; the mask
  of the object is recomputed after every click.
* **Video tracking**: upload a video, pick a frame, click objects (one id per object), propagate through
  the video and download the overlay mp4.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"
MODES = ("Positive point", "Negative point", "Box (two corners)")


class DemoModels:
    """The two pipelines of the demo, loaded on first use.

    Args:
        model: Hub id, ``save_pretrained`` directory or Meta ``.pt`` for the image pipeline.
        video_model: the same for the tracking pipeline (defaults to ``model``).
        device: torch device (defaults to cuda when available).
    """

    def __init__(self, model: str = DEFAULT_MODEL, video_model: str | None = None, device: str | None = None):
        self.model = model
        self.video_model = video_model or model
        self.device = device
        self._generator = None  # loaded on first use, held by this instance only
        self._tracker = None

    def generator(self):
        """The ``mask-generation`` pipeline."""
        if self._generator is None:
            from ..cli import load_pipeline

            self._generator = load_pipeline("mask-generation", self.model, self.device)
        return self._generator

    def tracker(self):
        """The ``video-object-tracking`` pipeline."""
        if self._tracker is None:
            from ..cli import load_pipeline

            self._tracker = load_pipeline("video-object-tracking", self.video_model, self.device)
        return self._tracker


def _require_image(image):
    import gradio as gr

    if image is None:
        raise gr.Error("Upload an image first.")
    return np.asarray(image, dtype=np.uint8)[..., :3]


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image)


def automatic_masks(models: DemoModels, image, points_per_side: int, pred_iou_thresh: float, stability_score_thresh: float):
    """Tab 1: automatic masks. Returns ``(overlay, path of the COCO RLE JSON, summary text)``."""
    from ..cli import _json_ready
    from ..visualize import overlay_records

    image = _require_image(image)
    output = models.generator()(
        _pil(image),
        points_per_side=int(points_per_side),
        pred_iou_thresh=float(pred_iou_thresh),
        stability_score_thresh=float(stability_score_thresh),
        output_mode="coco_rle",
    )
    records = output["records"]
    path = Path(tempfile.mkdtemp(prefix="sam2-masks-")) / "masks.json"
    path.write_text(json.dumps({"height": image.shape[0], "width": image.shape[1], "annotations": _json_ready(records)}))
    return overlay_records(image, records), str(path), f"{len(records)} masks"


def segment_overlay(models: DemoModels, image, prompts: dict) -> np.ndarray:
    """Tab 2: the image with the mask of the prompted object and the prompt markers.

    ``prompts`` is ``{"points": [[x, y], ...], "labels": [1|0, ...], "box": [x0, y0, x1, y1] | None}``;
    with no complete prompt the image is returned with the markers only. The mask shown is the
    best-scoring of the multimask outputs.
    """
    from ..visualize import draw_prompts, overlay_masks

    image = _require_image(image)
    points, labels, box = prompts.get("points") or [], prompts.get("labels") or [], prompts.get("box")
    canvas = image
    if points or box:
        kwargs = {}
        if points:
            kwargs.update(points=[points], labels=[labels])
        if box:
            kwargs.update(boxes=[box])
        output = models.generator()(_pil(image), multimask_output=True, **kwargs)
        masks, scores = np.asarray(output["masks"]), np.asarray(output["scores"])
        best = int(np.argmax(scores[0]))
        canvas = overlay_masks(image, [masks[0, best]], obj_ids=[1])
    radius = max(3, min(image.shape[:2]) // 100)
    canvas = draw_prompts(canvas, points, labels, [box] if box else [], radius=radius)
    if prompts.get("corner") is not None:  # first corner of a box in progress
        canvas = draw_prompts(canvas, [prompts["corner"]], [1], radius=radius)
    return canvas


def add_click(prompts: dict | None, mode: str, x: float, y: float) -> dict:
    """Add a click at pixel ``(x, y)`` to the prompts of tab 2 (a new dict; the input is not modified).

    Positive / negative clicks add points; in box mode the first click stores a corner and the second
    completes the box (replacing any previous box).
    """
    if mode not in MODES:
        raise ValueError(f"unknown click mode {mode!r}; accepted: {', '.join(MODES)}")
    prompts = {"points": [], "labels": [], "box": None, "corner": None, **(prompts or {})}
    prompts = {key: (list(value) if isinstance(value, list) else value) for key, value in prompts.items()}
    if mode == MODES[2]:
        if prompts["corner"] is None:
            prompts["corner"] = [x, y]
        else:
            (x0, y0), (x1, y1) = prompts["corner"], (x, y)
            prompts["box"] = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
            prompts["corner"] = None
    else:
        prompts["points"].append([x, y])
        prompts["labels"].append(1 if mode == MODES[0] else 0)
    return prompts


# ---------------------------------------------------------------- video tab


def video_frame(path: str, index: int) -> np.ndarray:
    """Frame ``index`` of the video at ``path`` as an RGB uint8 array."""
    from ..video_io import open_video

    video = open_video(path)
    if not 0 <= index < len(video):
        raise ValueError(f"frame {index} is out of range: the video has {len(video)} frames")
    return np.asarray(video[index], dtype=np.uint8)


def video_prompts(clicks: list) -> list[dict]:
    """Tracker prompts from the clicks of tab 3: ``[{"frame", "obj_id", "points", "labels"}]`` grouped by (frame, object)."""
    groups: dict[tuple[int, int], dict] = {}
    for click in clicks:
        group = groups.setdefault((click["frame"], click["obj_id"]), {"frame": click["frame"], "obj_id": click["obj_id"], "points": [], "labels": []})
        group["points"].append(click["point"])
        group["labels"].append(click["label"])
    return list(groups.values())


def preview_frame(models: DemoModels, path: str, index: int, clicks: list) -> np.ndarray:
    """Frame ``index`` with the masks of the objects clicked on it (tracked over that frame only) and the clicks."""
    from ..visualize import draw_prompts, overlay_frame

    frame = video_frame(path, index)
    here = [c for c in clicks if c["frame"] == index]
    if not here:
        return frame
    results = models.tracker()(path, prompts=video_prompts(here), start_frame=index, max_frames=1)
    result = next(r for r in results if int(r["frame_idx"]) == index)
    canvas = overlay_frame(frame, result)
    return draw_prompts(canvas, [c["point"] for c in here], [c["label"] for c in here])


def propagate(models: DemoModels, path: str, clicks: list, direction: str = "both") -> str:
    """Track every clicked object through the video; returns the path of the overlay mp4."""
    import gradio as gr

    from ..video_io import open_video, write_overlay_video

    if not clicks:
        raise gr.Error("Click at least one object on a frame first.")
    results = models.tracker()(path, prompts=video_prompts(clicks), direction=direction)
    out = Path(tempfile.mkdtemp(prefix="sam2-track-")) / "overlay.mp4"
    write_overlay_video(open_video(path), results, out)
    return str(out)


# ---------------------------------------------------------------- layout


def build_demo(models: DemoModels):
    """The ``gradio.Blocks`` app over ``models`` (a :class:`DemoModels`)."""
    import gradio as gr

    with gr.Blocks(title="SAM 2 pipelines", analytics_enabled=False) as demo:
        gr.Markdown(f"# SAM 2 pipelines\nImage model: `{models.model}` · video model: `{models.video_model}`")
        with gr.Tab("Automatic masks", id="auto"):
            with gr.Row():
                auto_input = gr.Image(type="numpy", label="Image", sources=["upload"], elem_id="auto-input")
                auto_output = gr.Image(type="numpy", label="Masks", format="png", interactive=False, elem_id="auto-output")
            with gr.Row():
                points_per_side = gr.Slider(4, 64, value=32, step=1, label="points per side")
                pred_iou = gr.Slider(0.0, 1.0, value=0.8, step=0.01, label="pred_iou_thresh")
                stability = gr.Slider(0.0, 1.0, value=0.95, step=0.01, label="stability_score_thresh")
            auto_button = gr.Button("Generate masks", variant="primary", elem_id="auto-run")
            auto_summary = gr.Textbox(label="Result", interactive=False, elem_id="auto-summary")
            auto_file = gr.File(label="COCO RLE JSON", elem_id="auto-json")
            auto_button.click(
                lambda *a: automatic_masks(models, *a),
                [auto_input, points_per_side, pred_iou, stability],
                [auto_output, auto_file, auto_summary],
            )

        with gr.Tab("Click to segment", id="segment"):
            seg_prompts = gr.State({})
            mode = gr.Radio(list(MODES), value=MODES[0], label="Click adds", elem_id="segment-mode")
            with gr.Row():
                seg_input = gr.Image(type="numpy", label="Image (click on it)", sources=["upload"], elem_id="segment-input")
                seg_output = gr.Image(type="numpy", label="Mask", format="png", interactive=False, elem_id="segment-output")
            seg_json = gr.Textbox(label="Prompts", interactive=False, elem_id="segment-prompts")
            seg_clear = gr.Button("Clear prompts", elem_id="segment-clear")

            def on_segment_click(image, prompts, mode_value, evt: gr.SelectData):
                x, y = (float(v) for v in evt.index)
                prompts = add_click(prompts, mode_value, x, y)
                return prompts, segment_overlay(models, image, prompts), json.dumps(prompts)

            seg_input.select(on_segment_click, [seg_input, seg_prompts, mode], [seg_prompts, seg_output, seg_json])
            seg_clear.click(lambda: ({}, None, ""), None, [seg_prompts, seg_output, seg_json])
            seg_input.upload(lambda: ({}, None, ""), None, [seg_prompts, seg_output, seg_json])

        with gr.Tab("Video tracking", id="video"):
            clicks = gr.State([])
            video_path = gr.State(None)
            with gr.Row():
                video_input = gr.Video(label="Video", sources=["upload"], elem_id="video-input")
                frame_view = gr.Image(type="numpy", label="Frame (click on objects)", format="png", interactive=False, elem_id="video-frame")
            with gr.Row():
                frame_index = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="video-frame-index")
                obj_id = gr.Number(value=1, precision=0, minimum=1, label="object id", elem_id="video-obj")
                video_mode = gr.Radio(list(MODES[:2]), value=MODES[0], label="Click adds", elem_id="video-mode")
            direction = gr.Radio(["forward", "backward", "both"], value="both", label="propagate")
            with gr.Row():
                track_button = gr.Button("Propagate", variant="primary", elem_id="video-run")
                video_clear = gr.Button("Clear clicks", elem_id="video-clear")
            video_clicks = gr.Textbox(label="Clicks", interactive=False, elem_id="video-clicks")
            video_output = gr.Video(label="Overlay", interactive=False, elem_id="video-output")
            video_file = gr.File(label="Download overlay mp4", elem_id="video-file")

            def on_video(path):
                if not path:
                    return None, None, gr.update(maximum=1, value=0), [], ""
                from ..video_io import open_video

                count = len(open_video(path))
                return path, video_frame(path, 0), gr.update(maximum=max(count - 1, 1), value=0), [], ""

            def on_frame(path, index, clicks_value):
                return None if not path else preview_frame(models, path, int(index), clicks_value)

            def on_frame_click(path, index, clicks_value, obj, mode_value, evt: gr.SelectData):
                if not path:
                    raise gr.Error("Upload a video first.")
                x, y = (float(v) for v in evt.index)
                click = {"frame": int(index), "obj_id": int(obj), "point": [x, y], "label": 1 if mode_value == MODES[0] else 0}
                clicks_value = [*clicks_value, click]
                return clicks_value, preview_frame(models, path, int(index), clicks_value), json.dumps(clicks_value)

            def on_propagate(path, clicks_value, direction_value):
                if not path:
                    raise gr.Error("Upload a video first.")
                out = propagate(models, path, clicks_value, direction_value)
                return out, out

            video_input.change(on_video, [video_input], [video_path, frame_view, frame_index, clicks, video_clicks])
            frame_index.release(on_frame, [video_path, frame_index, clicks], [frame_view])
            frame_view.select(on_frame_click, [video_path, frame_index, clicks, obj_id, video_mode], [clicks, frame_view, video_clicks])
            track_button.click(on_propagate, [video_path, clicks, direction], [video_output, video_file])
            video_clear.click(lambda p, i: ([], on_frame(p, i, []), ""), [video_path, frame_index], [clicks, frame_view, video_clicks])
    return demo


def theme():
    """A theme with system fonts only, so the page loads no web fonts (nothing is fetched from the network)."""
    import gradio as gr

    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (``--model``, ``--video-model``, ``--device``, ``--host``, ``--port``) and serve the app."""
    parser = argparse.ArgumentParser(prog="sam2_pipelines.demo.app", description="Gradio demo of sam2-pipelines.")
    parser.add_argument("--model", default=os.environ.get("SAM2_DEMO_MODEL", DEFAULT_MODEL), help="image model (env SAM2_DEMO_MODEL)")
    parser.add_argument("--video-model", default=os.environ.get("SAM2_DEMO_VIDEO_MODEL"), help="video model (env SAM2_DEMO_VIDEO_MODEL; default: --model)")
    parser.add_argument("--device", default=os.environ.get("SAM2_DEMO_DEVICE"), help="torch device (default: cuda if available)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="port to listen on")
    args = parser.parse_args(argv)
    demo = build_demo(DemoModels(args.model, args.video_model, args.device))
    demo.queue().launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, theme=theme(), footer_links=[])


if __name__ == "__main__":
    main()
