"""Gradio demo of sam2-pipelines (Hugging Face Spaces layout): automatic masks, click-to-segment, video tracking.

Start it with a model directory (or Hub id, or Meta ``.pt``)::

    python -m sam2_pipelines.demo.app --model DIR [--video-model DIR] [--host 127.0.0.1] [--port 7860]

or set ``SAM2_DEMO_MODEL`` (and optionally ``SAM2_DEMO_VIDEO_MODEL``) and run ``python app.py`` on Spaces.
The default model is ``facebook/sam2.1-hiera-tiny``. Models load lazily on first use. The app never
contacts the network by itself: analytics are off and no share link is created.

Tabs:

* **Automatic masks**: upload an image, choose the grid and thresholds, get the overlay and a COCO RLE JSON.
* **Click to segment**: upload an image, click positive / negative points or two box corners; the image
  is encoded once and every click runs the mask decoder only.
* **Video tracking**: upload a video (one tracking session per visitor: :mod:`sam2_pipelines.demo.video_tab`),
  pick a frame, click objects (one id per object; a click segments that frame only), propagate; a correction
  click after propagation refines the frame and the next propagation re-tracks from there; remove objects;
  export COCO RLE JSON or DAVIS PNGs (zip). With SAM 3's text video model (``Sam3VideoModel``) the clicks give way to a text box: every
  instance of the concepts typed is tracked, each object listed with its concept.

Each visitor (browser tab) has their own prompts, video session and output folder
(:mod:`sam2_pipelines.demo.visitors`); what a visitor leaves is closed and deleted when Gradio reports them gone.
Every error reaches the visitor as a ``gr.Error`` with its message (:mod:`sam2_pipelines.demo.errors`).

The sample photo and video (``media/``) are offered as examples when the app runs from a source checkout.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import json
from pathlib import Path

import numpy as np

from sam2_pipelines.demo.errors import shown_errors
from sam2_pipelines.demo.video_tab import POINT_MODES, visitor_of
from sam2_pipelines.models.loading import DEFAULT_MODEL

MODES = (*POINT_MODES, "Box (two corners)")
#: The visitor of direct calls (scripts, tests); the app passes each browser tab's Gradio session.
LOCAL = "local"
#: Gradio's own cache (uploads, and copies of the files the demo gives): every hour, files older than a day are deleted.
DELETE_CACHE = (3600, 86400)


class DemoModels:
    """The two pipelines of the demo (loaded on first use) and what it keeps between clicks.

    Args:
        model: Hub id, ``save_pretrained`` directory or Meta ``.pt`` for the image pipeline.
        video_model: the same for the tracking pipeline (defaults to ``model``).
        device: torch device (defaults to cuda when available).
        video_sessions: tracking sessions held for every visitor together (each visitor keeps their latest).

    ``images`` holds one image session per uploaded image, shared by every visitor since it holds the image and
    its encoding only (:class:`~sam2_pipelines.demo.state.ImageSessions`); ``visitors`` holds each visitor's
    tracking session and output folder (:class:`~sam2_pipelines.demo.visitors.Visitors`); ``encoder_passes``
    counts the image encoder's runs.
    """

    def __init__(self, model: str = DEFAULT_MODEL, video_model: str | None = None, device: str | None = None, video_sessions: int | None = None):
        from sam2_pipelines.demo.state import ImageSessions
        from sam2_pipelines.demo.visitors import KEEP_VIDEOS, Visitors

        self.model = model
        self.video_model = video_model or model
        self.device = device
        self._generator = None  # loaded on first use, held by this instance only
        self._tracker = None
        self.encoder_passes = 0
        self.images = ImageSessions(self.generator)
        self.visitors = Visitors(self.tracker, KEEP_VIDEOS if video_sessions is None else video_sessions)

    def generator(self):
        """The ``mask-generation`` pipeline."""
        if self._generator is None:
            from sam2_pipelines.launch import load_pipeline

            generator = load_pipeline("mask-generation", self.model, self.device)
            encoder = getattr(generator.model, "vision_encoder", None)
            if encoder is not None:
                encoder.register_forward_hook(self._count_encoder_pass)
            self._generator = generator
        return self._generator

    def _count_encoder_pass(self, *_):
        self.encoder_passes += 1

    def tracks_text(self) -> bool:
        """Whether the video model is SAM 3's text video model (loading it now); False when it cannot be loaded."""
        from sam2_pipelines.video.text_session import is_text_video_model

        try:
            return is_text_video_model(self.tracker().model)
        except Exception:  # the video tab reports it
            return False

    def tracker(self):
        """The ``video-object-tracking`` pipeline."""
        if self._tracker is None:
            from sam2_pipelines.launch import load_pipeline

            self._tracker = load_pipeline("video-object-tracking", self.video_model, self.device)
        return self._tracker

    def finds_text(self) -> bool:
        """Whether the image model is SAM 3's text model (loading it now); False when it cannot be loaded."""
        from sam2_pipelines.image.text import is_text_model

        try:
            return is_text_model(self.generator().model)
        except Exception:  # the image tabs report it on first use
            return False

    def video_problem(self) -> str | None:
        """Why the video model cannot track (loading it now), or ``None`` when it can."""
        try:
            self.tracker()
        except Exception as error:  # shown in the video tab; the image tabs keep working
            return str(error)
        return None


def _require_image(image):
    import gradio as gr

    if image is None:
        raise gr.Error("Upload an image first.")
    return np.asarray(image, dtype=np.uint8)[..., :3]


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image)


@shown_errors
def automatic_masks(models: DemoModels, image, points_per_side: int, pred_iou_thresh: float, stability_score_thresh: float, visitor: str = LOCAL):
    """Tab 1: automatic masks. Returns ``(overlay, path of the COCO RLE JSON, summary text)``; the JSON goes to
    the visitor's folder, replacing their previous one.

    Runs on the image's session: an image already clicked on (or generated before) is not encoded again.
    """
    image = _require_image(image)
    output = models.images.get(image).generate(
        points_per_side=int(points_per_side),
        pred_iou_thresh=float(pred_iou_thresh),
        stability_score_thresh=float(stability_score_thresh),
        output_mode="coco_rle",
    )
    records = output["records"]
    return _shown_records(image, records, models.visitors.output(visitor, "auto", "masks.json"), f"{len(records)} masks")


def _shown_records(image: np.ndarray, records: list, path: Path, summary: str):
    """Write the records to ``path`` as COCO RLE JSON; ``(overlay, str(path), summary)``: what the image tabs show."""
    from sam2_pipelines.io.exports import json_ready
    from sam2_pipelines.io.visualize import overlay_records

    path.write_text(json.dumps({"height": image.shape[0], "width": image.shape[1], "annotations": json_ready(records)}))
    return overlay_records(image, records), str(path), summary


@shown_errors
def text_instances(models: DemoModels, image, text: str, score_threshold: float, visitor: str = LOCAL):
    """Tab "Find by text": every instance of the comma-separated concepts in ``text`` (SAM 3's ``Sam3Model``).

    Returns ``(overlay, path of the COCO RLE JSON, summary text)``, as :func:`automatic_masks`.
    """
    import gradio as gr

    image = _require_image(image)
    concepts = [concept.strip() for concept in (text or "").split(",") if concept.strip()]
    if not concepts:
        raise gr.Error("Type what to find, e.g. 'red car' (several concepts: separate them with commas).")
    output = models.generator()(image, text=concepts, score_threshold=float(score_threshold), output_mode="coco_rle")
    records = output["records"]
    counts = ", ".join(f"{concept}: {sum(r['concept'] == concept for r in records)}" for concept in concepts)
    return _shown_records(image, records, models.visitors.output(visitor, "text", "instances.json"), f"{len(records)} instances ({counts})")


@shown_errors
def segment_overlay(models: DemoModels, image, prompts: dict) -> np.ndarray:
    """Tab 2: the image with the mask of the prompted object and the prompt markers.

    ``prompts`` is ``{"points": [[x, y], ...], "labels": [1|0, ...], "box": [x0, y0, x1, y1] | None}``;
    with no complete prompt the image is returned with the markers only. The mask shown is the
    best-scoring of the multimask outputs. The image is encoded once (its image session, shared by whoever
    uploads the same picture); each click costs one decoder pass. The prompts are the visitor's own (their
    page's state).
    """
    from sam2_pipelines.io.visualize import draw_prompts, overlay_masks

    image = _require_image(image)
    points, labels, box = prompts.get("points") or [], prompts.get("labels") or [], prompts.get("box")
    canvas = image
    if points or box:
        kwargs = {}
        if points:
            kwargs.update(points=[points], labels=[labels])
        if box:
            kwargs.update(boxes=[box])
        output = models.images.get(image).predict(multimask_output=True, **kwargs)
        masks, scores = np.asarray(output["masks"]), np.asarray(output["scores"])
        best = int(np.argmax(scores[0]))
        canvas = overlay_masks(image, [masks[0, best]], obj_ids=[1])
    radius = max(3, min(image.shape[:2]) // 100)
    canvas = draw_prompts(canvas, points, labels, [box] if box else [], radius=radius)
    if prompts.get("corner") is not None:  # first corner of a box in progress
        canvas = draw_prompts(canvas, [prompts["corner"]], [1], radius=radius)
    return canvas


def encoder_status(models: DemoModels) -> str:
    """The line under the click tab: how often the image encoder ran in this app."""
    return f"image encoder passes: {models.encoder_passes}"


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


def _media_examples(*names: str) -> list[list[str]]:
    """The sample media of a source checkout (``media/``), as ``gr.Examples`` rows; none when not installed."""
    folder = Path(__file__).resolve().parents[2] / "media"
    return [[str(folder / name)] for name in names if (folder / name).is_file()]


# ---------------------------------------------------------------- layout


def build_demo(models: DemoModels):
    """The ``gradio.Blocks`` app over ``models`` (a :class:`DemoModels`).

    The video model is loaded now: an image-only model (or one that cannot be found) turns the video tab
    into a message saying why, before anyone uploads a video. When Gradio reports a visitor gone (the tab closed
    or reloaded: ``unload``), their video session is closed and their output folder deleted.
    """
    import gradio as gr

    from sam2_pipelines.demo.video_tab import video_tab

    video_problem = models.video_problem()
    finds_text = models.finds_text()
    with gr.Blocks(title="SAM 2 pipelines", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"# SAM 2 pipelines\nImage model: `{models.model}` · video model: `{models.video_model}`")
        # each image tab the image model cannot serve is one message saying which model it needs
        if finds_text:
            _text_tab(models)
            tab, tab_id, message = "Automatic masks and clicks", "auto", (
                f"`{models.model}` is SAM 3's text model: it finds what a text names (tab *Find by text*). For automatic "
                "masks and clicks start the demo with a SAM 2 model or SAM 3's tracker."
            )
        else:
            _click_and_automatic_tabs(models)
            tab, tab_id, message = "Find by text", "text", (
                f"**Finding objects by text needs SAM 3's text model** (`Sam3Model`); `{models.model}` is not one. "
                "Start the demo with `--model` pointing at a SAM 3 checkpoint saved from `Sam3Model`."
            )
        with gr.Tab(tab, id=tab_id):
            gr.Markdown(message, elem_id=f"{tab_id}-problem")
        with gr.Tab("Video tracking", id="video"):
            if video_problem is not None:
                gr.Markdown(f"**Video tracking is not available with `{models.video_model}`.** {video_problem}", elem_id="video-problem")
            else:
                video_tab(models, _media_examples("bedroom.mp4"))

        def on_leave(request: gr.Request):
            models.visitors.leave(visitor_of(request))

        demo.unload(on_leave)
    return demo


def _image_in_out(prefix: str, input_label: str, output_label: str):
    """A row with an image upload (``<prefix>-input``) and the picture it gives (``<prefix>-output``)."""
    import gradio as gr

    with gr.Row():
        shown_input = gr.Image(type="numpy", label=input_label, sources=["upload"], elem_id=f"{prefix}-input")
        shown_output = gr.Image(type="numpy", label=output_label, format="png", interactive=False, elem_id=f"{prefix}-output")
    return shown_input, shown_output


def _text_tab(models: DemoModels) -> None:
    """Tab "Find by text" (SAM 3's text model): concepts in, every instance out."""
    import gradio as gr

    with gr.Tab("Find by text", id="text"):
        text_input, text_output = _image_in_out("text", "Image", "Instances")
        with gr.Row():
            concepts = gr.Textbox(label="Find (comma-separated concepts)", placeholder="red car, person", elem_id="text-concepts")
            score = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="score threshold", elem_id="text-score")
        text_button = gr.Button("Find", variant="primary", elem_id="text-run")
        text_summary = gr.Textbox(label="Result", interactive=False, elem_id="text-summary")
        text_file = gr.File(label="COCO RLE JSON", elem_id="text-json")
        gr.Examples(_media_examples("truck.jpg", "groceries.jpg"), inputs=[text_input], cache_examples=False)

        def on_find(image, text, threshold, request: gr.Request):
            return text_instances(models, image, text, threshold, visitor=visitor_of(request))

        text_button.click(on_find, [text_input, concepts, score], [text_output, text_file, text_summary])


def _click_and_automatic_tabs(models: DemoModels) -> None:
    """Tabs "Automatic masks" and "Click to segment" (SAM 2-style image models)."""
    import gradio as gr

    with gr.Tab("Automatic masks", id="auto"):
        auto_input, auto_output = _image_in_out("auto", "Image", "Masks")
        with gr.Row():
            points_per_side = gr.Slider(4, 64, value=32, step=1, label="points per side")
            pred_iou = gr.Slider(0.0, 1.0, value=0.8, step=0.01, label="pred_iou_thresh")
            stability = gr.Slider(0.0, 1.0, value=0.95, step=0.01, label="stability_score_thresh")
        auto_button = gr.Button("Generate masks", variant="primary", elem_id="auto-run")
        auto_summary = gr.Textbox(label="Result", interactive=False, elem_id="auto-summary")
        auto_file = gr.File(label="COCO RLE JSON", elem_id="auto-json")
        gr.Examples(_media_examples("truck.jpg", "groceries.jpg"), inputs=[auto_input], cache_examples=False)

        def on_auto(image, points, iou, stable, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
            return automatic_masks(models, image, points, iou, stable, visitor=visitor_of(request))

        auto_button.click(on_auto, [auto_input, points_per_side, pred_iou, stability], [auto_output, auto_file, auto_summary])

    with gr.Tab("Click to segment", id="segment"):
        seg_prompts = gr.State({})
        mode = gr.Radio(list(MODES), value=MODES[0], label="Click adds", elem_id="segment-mode")
        seg_input, seg_output = _image_in_out("segment", "Image (click on it)", "Mask")
        seg_json = gr.Textbox(label="Prompts", interactive=False, elem_id="segment-prompts")
        seg_status = gr.Textbox(label="Work done", value=encoder_status(models), interactive=False, elem_id="segment-status")
        seg_clear = gr.Button("Clear prompts", elem_id="segment-clear")
        gr.Examples(_media_examples("truck.jpg", "groceries.jpg"), inputs=[seg_input], cache_examples=False)

        @shown_errors
        def on_segment_click(image, prompts, mode_value, evt: gr.SelectData):
            x, y = (float(v) for v in evt.index)
            prompts = add_click(prompts, mode_value, x, y)
            return prompts, segment_overlay(models, image, prompts), json.dumps(prompts), encoder_status(models)

        seg_input.select(on_segment_click, [seg_input, seg_prompts, mode], [seg_prompts, seg_output, seg_json, seg_status])
        seg_clear.click(lambda: ({}, None, ""), None, [seg_prompts, seg_output, seg_json])
        seg_input.change(lambda: ({}, None, ""), None, [seg_prompts, seg_output, seg_json])


def theme():
    """A theme with system fonts only, so the page loads no web fonts (nothing is fetched from the network)."""
    import gradio as gr

    fonts = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=fonts, font_mono=["ui-monospace", "monospace"])


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (``--model``, ``--video-model``, ``--device``, ``--video-sessions``, ``--host``, ``--port``)
    and serve the app."""
    from sam2_pipelines.demo.visitors import KEEP_VIDEOS

    parser = argparse.ArgumentParser(prog="sam2_pipelines.demo.app", description="Gradio demo of sam2-pipelines.")
    parser.add_argument("--model", default=os.environ.get("SAM2_DEMO_MODEL", DEFAULT_MODEL), help="image model (env SAM2_DEMO_MODEL)")
    parser.add_argument("--video-model", default=os.environ.get("SAM2_DEMO_VIDEO_MODEL"), help="video model (env SAM2_DEMO_VIDEO_MODEL; default: --model)")
    parser.add_argument("--device", default=os.environ.get("SAM2_DEMO_DEVICE"), help="torch device (default: cuda if available)")
    parser.add_argument(
        "--video-sessions", type=int, default=int(os.environ.get("SAM2_DEMO_VIDEO_SESSIONS", KEEP_VIDEOS)),
        help=f"tracking sessions held for all visitors together; beyond it the least recently used visitor's expires (env SAM2_DEMO_VIDEO_SESSIONS; default {KEEP_VIDEOS})",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="address to listen on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="port to listen on")
    args = parser.parse_args(argv)
    if args.video_sessions < 1:
        parser.error(f"--video-sessions must be at least 1, got {args.video_sessions}")
    demo = build_demo(DemoModels(args.model, args.video_model, args.device, args.video_sessions))
    demo.queue().launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, theme=theme(), footer_links=[])


if __name__ == "__main__":
    main()
