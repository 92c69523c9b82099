"""Interactive video object tracking with bounded memory: :class:`TrackingSession`.

A session wraps one video (or a stream of frames) and a ``Sam2VideoModel`` / ``EdgeTamVideoModel``. It
holds the prompts of every object, the model's memories, and as little else as possible:

* frames are read from a lazy :class:`~sam2_pipelines.video_io.FrameSource` and preprocessed when the model
  needs them (transformers' own session preprocesses and keeps every frame up front);
* vision features are cached for the current frame only;
* per-frame outputs of *tracked* frames are dropped as soon as the model can no longer read them: the
  memory encoder's features are read for ``num_maskmem - 1`` frames, object pointers for
  ``max_object_pointers_in_encoder - 1`` frames. Outputs of *prompted* (conditioning) frames are kept.

Semantics follow Meta's ``SAM2VideoPredictor``: a prompt on a frame not yet tracked for that object is an
initial conditioning frame (segmented from its prompts alone); propagation starts from the earliest
prompted frame; prompted frames are reused, other frames are tracked with memory attention. Two choices
make results independent of what was dropped (see ``docs/video_tracking.md``):

* a correction on an already tracked frame becomes a conditioning frame (Meta's
  ``add_all_frames_to_correct_as_cond=True``) and is segmented from its clicks with the memories of the
  object's *other prompted frames*;
* each ``propagate()`` call re-tracks from the prompts, unless it starts exactly where the previous call
  stopped (next frame, same direction): then it continues from that call's memories.
"""

from __future__ import annotations

import inspect
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

from .masks import encode_rle
from .prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    check_int,
    normalize_binary_mask,
    normalize_box,
    normalize_points,
    normalize_video_prompt,
)
from .video_io import FrameSource, open_video, to_rgb_frame

#: Accepted values of ``direction``.
DIRECTIONS = ("forward", "backward", "both")
#: Accepted values of ``output``.
OUTPUTS = ("binary", "rle")


def check_direction(direction) -> str:
    """Return ``direction`` if it is one of :data:`DIRECTIONS`, else raise ValueError."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}; got {direction!r}")
    return direction


def check_output(output) -> str:
    """Return ``output`` if it is one of :data:`OUTPUTS`, else raise ValueError."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}; got {output!r}")
    return output


class _LazyInferenceSession(Sam2VideoInferenceSession):
    """transformers' ``Sam2VideoInferenceSession`` whose frames are loaded on demand instead of stored.

    The model reads frames through ``get_frame`` and the frame count through ``num_frames``; both are
    served by the owning :class:`TrackingSession`. EdgeTAM's session class is identical, so this one
    serves both model families.
    """

    def __init__(self, load_frame, count_frames, **kwargs):
        super().__init__(video=None, **kwargs)
        self._load_frame = load_frame
        self._count_frames = count_frames

    @property
    def num_frames(self) -> int | None:
        return self._count_frames()

    def get_frame(self, frame_idx: int) -> torch.Tensor:
        return self._load_frame(frame_idx).to(self.inference_device, non_blocking=True)

    def add_new_frame(self, pixel_values, frame_idx=None):  # pragma: no cover - guarded API misuse
        raise RuntimeError("frames are pushed through TrackingSession.push_frame")


class TrackingSession:
    """Prompts, propagation and streaming for one video, with memory that stays flat in video length.

    Create it with ``tracker.session(video)`` (a path, URL, folder, list of frames, array, or
    :class:`~sam2_pipelines.video_io.FrameSource`) or ``tracker.session()`` for streaming, then:

    * ``add_points(frame, obj_id, points, labels)``, ``add_box(frame, obj_id, box)``,
      ``add_mask(frame, obj_id, mask)``, ``add_prompt({...})``: prompt an object (new or existing) on any
      frame, before or after propagation; each returns that object's result on that frame;
    * ``propagate(direction=..., start_frame=..., max_frames=..., output=...)``: iterate per-frame results;
    * ``remove_object(obj_id)``, ``reset()``;
    * streaming: ``push_frame(frame, prompts=None)`` appends a frame and returns its result.

    Every result is ``{"frame_idx": int, "object_ids": [ids], "masks": bool (objects, 1, H, W) or list of
    COCO RLE dicts, "scores": float32 (objects,)}`` where a score is the model's probability that the
    object is visible on the frame (sigmoid of its object-score logit).

    Args:
        model: a ``Sam2VideoModel`` or ``EdgeTamVideoModel``.
        processor: its ``Sam2VideoProcessor``.
        video: the video, or ``None`` for a streaming session.
        device: where the model runs (defaults to the model's device).
        prune_memory: drop frames, features and outputs the model can no longer read (default). ``False``
            keeps every tracked output, as transformers does; results are identical either way.
    """

    def __init__(self, model, processor, video=None, *, device=None, prune_memory: bool = True):
        if not isinstance(prune_memory, bool):
            raise ValueError(f"prune_memory must be True or False, got {prune_memory!r}")
        self._model = model
        self._processor = processor
        self._device = torch.device(device) if device is not None else model.device
        self._dtype = model.dtype
        self._prune_memory = prune_memory
        self._streaming = video is None
        self._source: FrameSource | None = None if video is None else open_video(video)
        self._height = None if video is None else self._source.height
        self._width = None if video is None else self._source.width
        self._pushed = 0  # streamed frames so far
        self._latest_pixels = None  # preprocessed latest streamed frame
        self._inline_memory = "run_mem_encoder" in inspect.signature(model._run_single_frame_inference).parameters
        self._state = _LazyInferenceSession(
            self._load_frame,
            self._count_frames,
            video_height=self._height,
            video_width=self._width,
            inference_device=self._device,
            inference_state_device=self._device,
            video_storage_device=self._device,
            dtype=self._dtype,
        )
        self._resume = None  # (next frame, reverse) where the last propagation stopped
        self._peak_held = 0

    # ------------------------------------------------------------------------------------------ properties

    @property
    def object_ids(self) -> list[int]:
        """Ids of the objects in the session, in the order they were first prompted."""
        return list(self._state.obj_ids)

    @property
    def num_frames(self) -> int:
        """Number of frames of the video (streaming: frames pushed so far)."""
        return self._count_frames()

    @property
    def height(self) -> int | None:
        """Frame height in pixels (``None`` for a stream before its first frame)."""
        return self._height

    @property
    def width(self) -> int | None:
        """Frame width in pixels (``None`` for a stream before its first frame)."""
        return self._width

    @property
    def streaming(self) -> bool:
        """True for a session fed frame by frame with :meth:`push_frame`."""
        return self._streaming

    @property
    def prompted_frames(self) -> dict[int, list[int]]:
        """``{obj_id: sorted frames with prompts}`` (the conditioning frames of each object)."""
        return {
            self._state.obj_idx_to_id(i): sorted(self._state.output_dict_per_obj[i]["cond_frame_outputs"])
            for i in range(self._state.get_obj_num())
        }

    def memory_stats(self) -> dict:
        """What the session holds right now: ``{"tracked_outputs", "prompted_outputs", "vision_features", "frames"}``.

        ``tracked_outputs`` counts the per-frame outputs of tracked frames over all objects; with
        ``prune_memory=True`` it never exceeds ``objects * (max(num_maskmem, max_object_pointers) - 1)``
        (plus one window more while propagating in both directions). ``peak_tracked_outputs`` is the
        largest value seen so far.
        """
        outputs = self._state.output_dict_per_obj.values()
        tracked = sum(len(o["non_cond_frame_outputs"]) for o in outputs)
        return {
            "tracked_outputs": tracked,
            "peak_tracked_outputs": self._peak_held,
            "prompted_outputs": sum(len(o["cond_frame_outputs"]) for o in outputs),
            "vision_features": len(self._state.cache._vision_features),
            "frames": 0 if self._latest_pixels is None else 1,
        }

    def __repr__(self) -> str:
        kind = "streaming" if self._streaming else f"{self.num_frames} frames"
        return f"TrackingSession({kind}, size={self._height}x{self._width}, objects={self.object_ids})"

    # ------------------------------------------------------------------------------------------- frames

    def _count_frames(self) -> int:
        return self._pushed if self._streaming else len(self._source)

    def _preprocess(self, frame: np.ndarray) -> torch.Tensor:
        pixels = self._processor.video_processor(videos=frame[None], return_tensors="pt").pixel_values_videos[0, 0]
        return pixels.to(self._device, dtype=self._dtype)

    def _load_frame(self, frame_idx: int) -> torch.Tensor:
        if self._streaming:
            if frame_idx != self._pushed - 1 or self._latest_pixels is None:
                raise RuntimeError(f"streamed frame {frame_idx} is no longer held")
            return self._latest_pixels
        return self._preprocess(self._source[frame_idx])

    def _check_frame(self, frame) -> int:
        frame = check_int(frame, "frame", minimum=0)
        if self._streaming:
            if self._pushed == 0:
                raise ValueError("no frame has been pushed yet: call push_frame(frame) (or push_frame(frame, prompts=...)) first")
            if frame != self._pushed - 1:
                raise ValueError(
                    f"in a streaming session prompts go on the latest pushed frame ({self._pushed - 1}); got frame {frame}"
                )
        elif frame >= self.num_frames:
            raise ValueError(f"frame {frame} is past the end of the video ({self.num_frames} frames: 0..{self.num_frames - 1})")
        return frame

    # ------------------------------------------------------------------------------------------ prompts

    def _known_index(self, obj_id) -> int:
        obj_id = check_int(obj_id, "obj_id")
        if obj_id not in self._state._obj_id_to_idx:
            raise ValueError(f"unknown object id {obj_id}; objects in this session: {self.object_ids}")
        return self._state._obj_id_to_idx[obj_id]

    def _scale(self, xy: np.ndarray) -> torch.Tensor:
        """Pixel ``(x, y)`` coordinates -> the model's input coordinates (``target_size`` square)."""
        size = self._processor.target_size
        scale = np.array([size / self._width, size / self._height], dtype=np.float32)
        return torch.from_numpy(xy.astype(np.float32) * scale)

    def add_points(self, frame: int, obj_id: int, points, labels, *, replace: bool = False) -> dict:
        """Click on object ``obj_id`` (new or existing) on ``frame``.

        Args:
            frame: frame index.
            obj_id: any integer id.
            points: ``[[x, y], ...]`` pixel coordinates of the video.
            labels: one per point, 1 = positive (on the object), 0 = negative.
            replace: by default the clicks are added to the object's earlier clicks (and box) on this
                frame, the usual way of refining; ``True`` starts over with these clicks only.

        Returns:
            The object's result on this frame (see the class docstring).
        """
        frame = self._check_frame(frame)
        if not isinstance(replace, bool):
            raise ValueError(f"replace must be True or False, got {replace!r}")
        xy, lab = normalize_points(points, labels, (self._height, self._width))
        obj_idx = self._state.obj_id_to_idx(check_int(obj_id, "obj_id"))
        coords = self._scale(xy)[None, None]
        labels_t = torch.from_numpy(lab.astype(np.int32))[None, None]
        previous = None if replace else self._state.point_inputs_per_obj[obj_idx].get(frame)
        if previous is not None:
            coords = torch.cat([previous["point_coords"].cpu(), coords], dim=2)
            labels_t = torch.cat([previous["point_labels"].cpu(), labels_t], dim=2)
        return self._set_point_inputs(obj_idx, frame, coords, labels_t)

    def refine(self, frame: int, obj_id: int, points, labels) -> dict:
        """Add correction clicks for an EXISTING object on ``frame`` (as :meth:`add_points`, but an unknown
        ``obj_id`` is an error instead of a new object)."""
        self._known_index(obj_id)
        return self.add_points(frame, obj_id, points, labels)

    def add_box(self, frame: int, obj_id: int, box, points=None, labels=None) -> dict:
        """Prompt object ``obj_id`` on ``frame`` with a box ``[x0, y0, x1, y1]`` (pixels), optionally plus clicks.

        A box replaces the object's earlier prompts on this frame (SAM 2 reads the box corners first,
        then the clicks); add more clicks afterwards with :meth:`add_points`.
        """
        frame = self._check_frame(frame)
        box = normalize_box(box, (self._height, self._width))
        coords = self._scale(box.reshape(2, 2))[None, None]
        labels_t = torch.tensor([[[BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]]], dtype=torch.int32)
        if points is not None or labels is not None:
            xy, lab = normalize_points(points, labels, (self._height, self._width))
            coords = torch.cat([coords, self._scale(xy)[None, None]], dim=2)
            labels_t = torch.cat([labels_t, torch.from_numpy(lab.astype(np.int32))[None, None]], dim=2)
        obj_idx = self._state.obj_id_to_idx(check_int(obj_id, "obj_id"))
        return self._set_point_inputs(obj_idx, frame, coords, labels_t)

    def add_mask(self, frame: int, obj_id: int, mask) -> dict:
        """Prompt object ``obj_id`` on ``frame`` with a binary ``(H, W)`` mask at video resolution.

        A mask replaces the object's earlier prompts on this frame; it is used as the object's mask there.
        """
        frame = self._check_frame(frame)
        mask = normalize_binary_mask(mask, (self._height, self._width))
        obj_idx = self._state.obj_id_to_idx(check_int(obj_id, "obj_id"))
        size = self._model.config.image_size
        mask_t = torch.from_numpy(mask)[None, None].to(self._device, dtype=torch.float32)
        if mask_t.shape[-2:] != (size, size):
            mask_t = F.interpolate(mask_t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            mask_t = (mask_t >= 0.5).float()
        self._state.mask_inputs_per_obj[obj_idx][frame] = mask_t.to(self._dtype)
        self._state.point_inputs_per_obj[obj_idx].pop(frame, None)
        return self._run_prompted_frame(obj_idx, frame)

    def add_prompt(self, prompt: dict) -> dict:
        """Apply one prompt dict (as in ``tracker(video, prompts=[...])``): points+labels, a box (+clicks) or a mask."""
        prompt = normalize_video_prompt(prompt, (self._height, self._width), None if self._streaming else self.num_frames)
        frame, obj_id = prompt["frame"], prompt["obj_id"]
        if prompt["mask"] is not None:
            return self.add_mask(frame, obj_id, prompt["mask"])
        if prompt["box"] is not None:
            return self.add_box(frame, obj_id, prompt["box"], prompt["points"], prompt["labels"])
        return self.add_points(frame, obj_id, prompt["points"], prompt["labels"])

    def _set_point_inputs(self, obj_idx: int, frame: int, coords: torch.Tensor, labels: torch.Tensor) -> dict:
        self._state.point_inputs_per_obj[obj_idx][frame] = {
            "point_coords": coords.to(self._device, dtype=self._dtype),
            "point_labels": labels.to(self._device),
        }
        self._state.mask_inputs_per_obj[obj_idx].pop(frame, None)
        return self._run_prompted_frame(obj_idx, frame)

    def remove_object(self, obj_id: int) -> None:
        """Forget object ``obj_id``: its prompts, memories and results. Other objects are unaffected."""
        removed = self._known_index(obj_id)
        state = self._state
        old_ids = list(state.obj_ids)
        keep = [i for i in range(len(old_ids)) if i != removed]
        containers = (state.point_inputs_per_obj, state.mask_inputs_per_obj, state.output_dict_per_obj, state.frames_tracked_per_obj)
        moved = [[container[i] for i in keep] for container in containers]
        state.reset_tracking_data()
        for new_idx, old_idx in enumerate(keep):
            state.obj_id_to_idx(old_ids[old_idx])
            for container, values in zip(containers, moved):
                container[new_idx] = values[new_idx]

    def reset(self) -> None:
        """Forget every object, prompt and memory (the video stays open)."""
        self._state.reset_inference_session()
        self._resume = None

    # ------------------------------------------------------------------------------------------ inference

    def _infer(self, obj_idx, frame, is_init_cond_frame, point_inputs, mask_inputs, reverse) -> dict:
        """One model step for one object on one frame; returns the output to store (with its memory)."""
        model, state = self._model, self._state
        kwargs = dict(
            inference_session=state,
            frame_idx=frame,
            obj_idx=obj_idx,
            batch_size=1,
            is_init_cond_frame=is_init_cond_frame,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=reverse,
            streaming=self._streaming,
        )
        from_prompts = point_inputs is not None or mask_inputs is not None
        if self._inline_memory:  # EdgeTAM encodes the memory inside the step
            out = dict(model._run_single_frame_inference(**kwargs, run_mem_encoder=True))
        else:
            out = dict(model._run_single_frame_inference(**kwargs))
            high_res_masks = out.pop("high_res_masks")
            vision_feats, _ = model._prepare_vision_features(state, frame, 1)
            out["maskmem_features"], out["maskmem_pos_enc"] = model._encode_new_memory(
                current_vision_feats=vision_feats[-1],
                pred_masks_high_res=high_res_masks,
                object_score_logits=out["object_score_logits"],
                is_mask_from_pts=from_prompts,
            )
        return out

    def _run_prompted_frame(self, obj_idx: int, frame: int) -> dict:
        """Segment one object on a prompted frame and store it as a conditioning frame."""
        state = self._state
        outputs = state.output_dict_per_obj[obj_idx]
        point_inputs = state.point_inputs_per_obj[obj_idx].get(frame)
        mask_inputs = state.mask_inputs_per_obj[obj_idx].get(frame)
        tracked = state.frames_tracked_per_obj[obj_idx]
        other_prompted = {f: o for f, o in outputs["cond_frame_outputs"].items() if f != frame}
        correction = frame in tracked and bool(other_prompted)
        reverse = bool(tracked[frame]["reverse"]) if correction else False
        saved = outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"]
        # a correction sees the memories of the object's other prompted frames only: what is held does not
        # depend on what was pruned, so neither does the result
        outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"] = other_prompted, {}
        try:
            with torch.inference_mode():
                out = self._infer(obj_idx, frame, not correction, point_inputs, mask_inputs, reverse)
        finally:
            outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"] = saved
        outputs["cond_frame_outputs"][frame] = out
        outputs["non_cond_frame_outputs"].pop(frame, None)
        return self._format(frame, [state.obj_idx_to_id(obj_idx)], [out["pred_masks"]], [out["object_score_logits"]], "binary")

    def _track_frame(self, frame: int, reverse: bool, output: str) -> dict:
        """Segment every object on ``frame``: prompted frames are reused, others tracked with memory."""
        state = self._state
        masks, scores = [], []
        with torch.inference_mode():
            for obj_idx in range(state.get_obj_num()):
                outputs = state.output_dict_per_obj[obj_idx]
                out = outputs["cond_frame_outputs"].get(frame)
                if out is None:
                    out = self._infer(obj_idx, frame, False, None, None, reverse)
                    outputs["non_cond_frame_outputs"][frame] = out
                state.frames_tracked_per_obj[obj_idx][frame] = {"reverse": reverse}
                masks.append(out["pred_masks"])
                scores.append(out["object_score_logits"])
            result = self._format(frame, list(state.obj_ids), masks, scores, output)
        if self._prune_memory:
            for outputs in state.output_dict_per_obj.values():
                entry = outputs["non_cond_frame_outputs"].get(frame)
                if entry is not None:
                    entry.pop("pred_masks", None)  # never read again for a tracked frame
        return result

    def _format(self, frame: int, obj_ids: list, masks: list, scores: list, output: str) -> dict:
        if masks:
            logits = torch.cat([m.reshape(1, 1, *m.shape[-2:]) for m in masks], dim=0).float()
            video_res = F.interpolate(logits, size=(self._height, self._width), mode="bilinear", align_corners=False)
            binary = (video_res > 0).cpu().numpy()
            probs = torch.sigmoid(torch.cat([s.reshape(1) for s in scores]).float()).cpu().numpy()
        else:
            binary = np.zeros((0, 1, self._height, self._width), dtype=bool)
            probs = np.zeros((0,), dtype=np.float32)
        result_masks = [encode_rle(m[0]) for m in binary] if output == "rle" else binary
        return {"frame_idx": int(frame), "object_ids": [int(i) for i in obj_ids], "masks": result_masks, "scores": probs.astype(np.float32)}

    # ------------------------------------------------------------------------------------------ memory

    def _pointer_window(self) -> int:
        limit = self._model.config.max_object_pointers_in_encoder
        return limit if self._streaming else min(self.num_frames, limit)

    def _prune(self, readers: list[tuple[int, bool]]) -> None:
        """Drop tracked outputs that none of ``readers`` (``(next frame, reverse)``) will read."""
        state = self._state
        held = sum(len(o["non_cond_frame_outputs"]) for o in state.output_dict_per_obj.values())
        self._peak_held = max(self._peak_held, held)
        if not self._prune_memory:
            return
        memory_span = self._model.num_maskmem - 1
        pointer_span = self._pointer_window() - 1
        keep_memory, keep_pointer = set(), set()
        for frame, reverse in readers:
            sign = 1 if reverse else -1
            keep_memory.update(frame + sign * k for k in range(1, memory_span + 1))
            keep_pointer.update(frame + sign * k for k in range(1, pointer_span + 1))
        for outputs in state.output_dict_per_obj.values():
            tracked = outputs["non_cond_frame_outputs"]
            for frame in list(tracked):
                entry = tracked[frame]
                if frame not in keep_memory:
                    entry.pop("maskmem_features", None)
                    entry.pop("maskmem_pos_enc", None)
                if frame not in keep_pointer:
                    entry.pop("object_pointer", None)
                if "maskmem_features" not in entry and "object_pointer" not in entry:
                    del tracked[frame]

    def _drop_tracked(self) -> None:
        for outputs in self._state.output_dict_per_obj.values():
            outputs["non_cond_frame_outputs"].clear()

    # ------------------------------------------------------------------------------------------ propagation

    def propagate(self, direction: str = "forward", start_frame: int | None = None, max_frames: int | None = None, output: str = "binary", progress: bool = False) -> Iterator[dict]:
        """Track every object through the video and yield one result per frame, in processing order.

        Args:
            direction: ``"forward"`` (start -> end), ``"backward"`` (start -> frame 0) or ``"both"``
                (forward from the start, then backward from the frame before it).
            start_frame: first frame to process; default: the earliest prompted frame (``"backward"``:
                the latest prompted frame).
            max_frames: process at most this many frames per direction (the start frame included).
            output: ``"binary"`` masks ``(objects, 1, H, W)`` bool, or ``"rle"`` (COCO RLE dicts).
            progress: show a tqdm progress bar.

        Arguments are checked when this is called; frames are tracked as the iterator is consumed.
        """
        if self._streaming:
            raise ValueError("a streaming session has no video to propagate through; use push_frame(frame)")
        check_direction(direction)
        check_output(output)
        if not isinstance(progress, bool):
            raise ValueError(f"progress must be True or False, got {progress!r}")
        if self._state.get_obj_num() == 0:
            raise ValueError("no objects to track: add prompts first (add_points, add_box, add_mask or add_prompt)")
        prompted = sorted({f for frames in self.prompted_frames.values() for f in frames})
        if start_frame is None:
            start_frame = prompted[-1] if direction == "backward" else prompted[0]
        else:
            start_frame = check_int(start_frame, "start_frame", minimum=0)
            if start_frame >= self.num_frames:
                raise ValueError(f"start_frame {start_frame} is past the end of the video ({self.num_frames} frames: 0..{self.num_frames - 1})")
        if max_frames is not None:
            max_frames = check_int(max_frames, "max_frames", minimum=1)
        limit = max_frames if max_frames is not None else self.num_frames
        forward = list(range(start_frame, min(start_frame + limit, self.num_frames)))
        backward_from = start_frame - 1 if direction == "both" else start_frame
        backward = list(range(backward_from, max(backward_from - limit, -1), -1))
        passes = []
        if direction in ("forward", "both"):
            passes.append((forward, False))
        if direction in ("backward", "both") and backward:
            passes.append((backward, True))
        return self._run_passes(passes, output, progress, both=direction == "both")

    def _run_passes(self, passes, output, progress, both: bool) -> Iterator[dict]:
        from tqdm.auto import tqdm

        first_frame, first_reverse = passes[0][0][0], passes[0][1]
        if self._resume != (first_frame, first_reverse):
            self._drop_tracked()
        bar = tqdm(total=sum(len(frames) for frames, _ in passes), desc="tracking", unit="frame", disable=not progress)
        try:
            for pass_index, (frames, reverse) in enumerate(passes):
                for frame in frames:
                    result = self._track_frame(frame, reverse, output)
                    next_frame = frame - 1 if reverse else frame + 1
                    readers = [(next_frame, reverse)]
                    if both and pass_index == 0 and len(passes) > 1:
                        readers.append((passes[1][0][0], True))  # the backward pass reads frames after its start
                    self._prune(readers)
                    self._resume = (next_frame, reverse)
                    bar.update(1)
                    yield result
        finally:
            bar.close()

    # ------------------------------------------------------------------------------------------ streaming

    def push_frame(self, frame, prompts: list | None = None, output: str = "binary") -> dict:
        """Streaming: append the next frame, apply ``prompts`` on it, track every object and return its result.

        Args:
            frame: an RGB frame (PIL image, uint8 ``(H, W, 3)`` array or tensor); all frames must share a size.
            prompts: optional prompt dicts for this frame (their ``"frame"`` may be omitted; if given it must
                be this frame's index). Objects can be added on any pushed frame.
            output: ``"binary"`` or ``"rle"``.

        Returns:
            The frame's result over all objects (``object_ids`` is empty until something is prompted).
        """
        if not self._streaming:
            raise ValueError("push_frame is for streaming sessions (tracker.session() without a video); use propagate()")
        check_output(output)
        array = to_rgb_frame(frame, where=f"streamed frame {self._pushed}")
        if self._height is None:
            self._height, self._width = array.shape[:2]
            self._state.video_height, self._state.video_width = self._height, self._width
        elif array.shape[:2] != (self._height, self._width):
            raise ValueError(f"streamed frame {self._pushed} has size {array.shape[:2]} but the stream's frames are {(self._height, self._width)}")
        prompts = list(prompts or [])
        index = self._pushed
        checked = []
        for prompt in prompts:
            if isinstance(prompt, dict) and "frame" not in prompt:
                prompt = {**prompt, "frame": index}
            prompt = normalize_video_prompt(prompt, (self._height, self._width))
            if prompt["frame"] != index:
                raise ValueError(f"a prompt passed with streamed frame {index} must be for that frame, got frame {prompt['frame']}")
            checked.append(prompt)
        self._latest_pixels = self._preprocess(array)
        self._pushed += 1
        self._state.cache.clear_all()
        for prompt in checked:
            self.add_prompt(prompt)
        result = self._track_frame(index, False, output)
        self._prune([(index + 1, False)])
        return result
