"""The demo's video tab: its layout and its handlers, each visitor on their own video session.

Every handler takes the visitor's id (Gradio's ``session_hash``, from ``gr.Request``: :func:`visitor_of`) and
works on that visitor's :class:`~sam2_pipelines.demo.state.VideoWork` only (``models.visitors``, a
:class:`~sam2_pipelines.demo.visitors.Visitors`); files it gives go to the visitor's folder, replacing their
previous file of the same kind. Every error reaches the visitor as a ``gr.Error`` with its message
(:func:`~sam2_pipelines.demo.errors.shown_errors`): a file that is not a video, an expired session, a frame out
of range.
"""

import json
from pathlib import Path

from sam2_pipelines.demo.errors import shown_errors

#: What a click on a frame adds.
POINT_MODES = ("Positive point", "Negative point")


def visitor_of(request) -> str:
    """The visitor's id: the Gradio session of ``request`` (a ``gr.Request``)."""
    import gradio as gr

    visitor = getattr(request, "session_hash", None)
    if not visitor:
        raise gr.Error("The demo keeps each visitor's work in their browser session, and this request has none (no Gradio session hash).")
    return visitor


def video_summary(work) -> tuple[str, str]:
    """``(object ids text, clicks JSON)`` of a :class:`~sam2_pipelines.demo.state.VideoWork` for the video tab
    (with a text tracker each id is followed by its concept)."""
    names = [f"{i} ({work.concepts[i]})" if i in work.concepts else str(i) for i in work.object_ids]
    return (", ".join(names) if names else "none yet"), json.dumps(work.clicks)


@shown_errors
def track_text(work, text: str) -> str:
    """Video tab with a text tracker: track every instance of the comma-separated concepts in ``text``; the status line."""
    import gradio as gr

    concepts = [concept.strip() for concept in (text or "").split(",") if concept.strip()]
    if not concepts:
        raise gr.Error("Type what to track, e.g. 'person' (several concepts: separate them with commas).")
    count = work.track_text(concepts)
    return f"tracked {count} frames: {len(work.object_ids)} instances of {', '.join(concepts)}"


@shown_errors
def upload_video(models, visitor: str, path):
    """A video uploaded (or cleared): ``(frame 0, frame slider update, objects, clicks JSON, status)``."""
    import gradio as gr

    if not path:
        models.visitors.close_video(visitor)
        return None, gr.update(maximum=1, value=0), "", "", ""
    work = models.visitors.open_video(visitor, path)
    ids, clicks = video_summary(work)
    status = f"{work.num_frames} frames; " + ("type what to track" if work.tracks_text else "click an object on any frame")
    return work.view(0), gr.update(maximum=max(work.num_frames - 1, 1), value=0), ids, clicks, status


@shown_errors
def show_frame(models, visitor: str, index):
    """Frame ``index`` with its masks and clicks (nothing before an upload)."""
    work = models.visitors.video(visitor, required=False)
    return None if work is None else work.view(int(index))


@shown_errors
def click_frame(models, visitor: str, index, obj, mode: str, x: float, y: float):
    """A click at pixel ``(x, y)`` of frame ``index`` on object ``obj``: ``(frame view, objects, clicks JSON, status)``."""
    work = models.visitors.video(visitor)
    view = work.click(int(index), int(obj), float(x), float(y), positive=mode == POINT_MODES[0])
    ids, clicks = video_summary(work)
    return view, ids, clicks, f"object {int(obj)} segmented on frame {int(index)}; Propagate to track it"


@shown_errors
def propagate(models, visitor: str, direction: str, index):
    """Propagate: ``(overlay video path, frame view, status)``."""
    work = models.visitors.video(visitor)
    first, count = work.propagate(direction)
    out = work.write_overlay(models.visitors.output(visitor, "overlay", "overlay.mp4"))
    return str(out), work.view(int(index)), f"tracked {count} frames from frame {first} ({direction})"


@shown_errors
def track_concepts(models, visitor: str, typed: str, index):
    """Text tracker: ``(overlay video path, frame view, objects, status)``."""
    work = models.visitors.video(visitor)
    status = track_text(work, typed)
    out = work.write_overlay(models.visitors.output(visitor, "overlay", "overlay.mp4"))
    return str(out), work.view(int(index)), video_summary(work)[0], status


@shown_errors
def remove_object(models, visitor: str, obj, index):
    """Remove object ``obj``: ``(frame view, objects, clicks JSON, status)``."""
    work = models.visitors.video(visitor)
    work.remove(int(obj))
    ids, clicks = video_summary(work)
    return work.view(int(index)), ids, clicks, f"object {int(obj)} removed"


@shown_errors
def export(models, visitor: str, kind: str) -> str:
    """The visitor's masks as COCO RLE JSON (``kind="coco"``) or a DAVIS PNG zip (``"davis"``): the file's path."""
    import gradio as gr

    work = models.visitors.video(visitor)
    if not work.results:
        raise gr.Error("Nothing to export yet: " + ("track a text first." if work.tracks_text else "click an object first."))
    stem = Path(work.path).stem
    if kind == "coco":
        return str(work.export_coco(models.visitors.output(visitor, "export", f"{stem}_masks.json")))
    return str(work.export_davis(models.visitors.output(visitor, "export", f"{stem}_davis.zip")))


def video_tab(models, examples: list) -> None:
    """The video tab's components and events (inside ``build_demo``'s layout): clicks and Propagate, or with SAM 3's
    text video model a text box and Track text. ``examples``: sample videos (``gr.Examples`` rows)."""
    import gradio as gr

    text = models.tracks_text()
    with gr.Row():
        video_input = gr.Video(label="Video", sources=["upload"], elem_id="video-input")
        label = "Frame" if text else "Frame (click on objects)"
        frame_view = gr.Image(type="numpy", label=label, format="png", interactive=False, elem_id="video-frame")
    with gr.Row():
        frame_index = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="video-frame-index")
        obj_id = gr.Number(value=0 if text else 1, precision=0, minimum=0 if text else 1, label="object id", elem_id="video-obj")
        if not text:
            video_mode = gr.Radio(list(POINT_MODES), value=POINT_MODES[0], label="Click adds", elem_id="video-mode")
    if text:
        concepts = gr.Textbox(label="Track (comma-separated concepts)", placeholder="person, dog", elem_id="video-concepts")
    else:
        direction = gr.Radio(["forward", "backward", "both"], value="both", label="propagate", elem_id="video-direction")
    with gr.Row():
        track_button = gr.Button("Track text" if text else "Propagate", variant="primary", elem_id="video-run")
        remove_button = gr.Button("Remove object", elem_id="video-remove")
    with gr.Row():
        object_list = gr.Textbox(label="Objects", interactive=False, elem_id="video-objects")
        video_status = gr.Textbox(label="Status", interactive=False, elem_id="video-status")
    video_clicks = gr.Textbox(label="Clicks", interactive=False, elem_id="video-clicks")
    video_output = gr.Video(label="Overlay", interactive=False, elem_id="video-output")
    with gr.Row():
        export_coco = gr.Button("Export COCO RLE JSON", elem_id="video-export-coco")
        export_davis = gr.Button("Export DAVIS PNG zip", elem_id="video-export-davis")
    video_file = gr.File(label="Download", elem_id="video-file")
    gr.Examples(examples, inputs=[video_input], cache_examples=False)

    # The events: each passes the visitor's id (gr.Request) to its handler.
    def on_video(path, request: gr.Request):
        return upload_video(models, visitor_of(request), path)

    def on_frame(index, request: gr.Request):
        return show_frame(models, visitor_of(request), index)

    def on_frame_click(index, obj, mode_value, evt: gr.SelectData, request: gr.Request):
        x, y = (float(v) for v in evt.index)
        return click_frame(models, visitor_of(request), index, obj, mode_value, x, y)

    def on_propagate(direction_value, index, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        return propagate(models, visitor_of(request), direction_value, index)

    def on_track_text(typed, index, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        return track_concepts(models, visitor_of(request), typed, index)

    def on_remove(obj, index, request: gr.Request):
        return remove_object(models, visitor_of(request), obj, index)

    def on_export_coco(request: gr.Request):
        return export(models, visitor_of(request), "coco")

    def on_export_davis(request: gr.Request):
        return export(models, visitor_of(request), "davis")

    video_input.change(on_video, [video_input], [frame_view, frame_index, object_list, video_clicks, video_status])
    frame_index.change(on_frame, [frame_index], [frame_view])
    if text:
        track_button.click(on_track_text, [concepts, frame_index], [video_output, frame_view, object_list, video_status])
    else:
        frame_view.select(on_frame_click, [frame_index, obj_id, video_mode], [frame_view, object_list, video_clicks, video_status])
        track_button.click(on_propagate, [direction, frame_index], [video_output, frame_view, video_status])
    remove_button.click(on_remove, [obj_id, frame_index], [frame_view, object_list, video_clicks, video_status])
    export_coco.click(on_export_coco, None, [video_file])
    export_davis.click(on_export_davis, None, [video_file])
