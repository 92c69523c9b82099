"""Interactive video object tracking with bounded memory: :class:`TrackingSession`.

A session wraps one video (or a stream of frames) and a ``Sam2VideoModel`` / ``EdgeTamVideoModel``. It
holds the prompts of every object, the model's memories, and as little else as possible:

* frames are read from a lazy :class:`~sam2_pipelines.video_io.FrameSource` and preprocessed when the model
  needs them (transformers' own session preprocesses and keeps every frame up front);
* vision features are cached for the current frame only (with ``batch_size=n``: for the ``n`` frames
  encoded together);
* per-frame outputs of *tracked* frames are dropped as soon as the model can no longer read them: the
  memory encoder's features are read for ``num_maskmem - 1`` frames, object pointers for
  ``max_object_pointers_in_encoder - 1`` frames. Outputs of *prompted* (conditioning) frames are kept.

Semantics follow Meta's ``SAM2VideoPredictor`` (built with ``add_all_frames_to_correct_as_cond=True``): a
prompt on a frame not yet tracked for that object is an initial conditioning frame (segmented from its prompts
alone); a prompt on a tracked frame is a correction, segmented with the object's memories; clicks are decoded
with the object's latest mask logits on the frame; prompted results become conditioning frames when the next
propagation starts, which by default starts from the earliest prompted frame; prompted frames are reused,
other frames are tracked with memory attention. Results do not depend on what was dropped:

* as in Meta's predictor, every step reads the latest outputs of the frames around it, whichever
  propagation produced them (a propagation started mid-video reads what earlier ones tracked before its
  start; a correction reads the frame's tracked mask and its neighbours' memories);
* a step that reads dropped outputs gets them recomputed by replaying that object's tracking steps (the
  session records, per propagation, the prompted outputs it started with and the frames it tracked), so a
  correction or a propagation started anywhere costs, at worst, re-tracking the frames before it.

The session is the prompts and propagation; its parts live beside it: the frames come from a
:class:`~sam2_pipelines.frame_feed.FrameFeed`, what to hold and how to replay is a
:class:`~sam2_pipelines.memory_ledger.MemoryLedger`, and a model step is :mod:`sam2_pipelines.tracking_step`
(the shared-work step) or transformers' own, through :mod:`sam2_pipelines.model_internals`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import allocator, model_internals, tracking_step
from .frame_pixels import DEFAULT_FRAME_RESIZE, check_frame_resize
from .masks import LOGIT_CLAMP, encode_rle
from .memory_ledger import MemoryLedger
from .frame_feed import FrameFeed
from .prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    normalize_binary_mask,
    normalize_box,
    normalize_points,
    normalize_video_prompt,
)
from .validation import DIRECTIONS, OUTPUTS, Direction, FrameResize, Output, check_bool, check_choice, check_int
from .video_io import to_rgb_frame

#: Half-precision dtypes accepted by ``autocast``, by name.
AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
#: Frames decoded and preprocessed ahead of the model while propagating.
READ_AHEAD = 2


def check_autocast(autocast) -> torch.dtype | None:
    """``None``, or the half-precision dtype ``autocast`` names (``torch.bfloat16``/``"bfloat16"``, ``torch.float16``/``"float16"``)."""
    if autocast is None:
        return None
    dtype = AUTOCAST_DTYPES.get(autocast) if isinstance(autocast, str) else autocast
    if dtype not in AUTOCAST_DTYPES.values():
        raise ValueError(f"autocast must be None, torch.bfloat16, torch.float16, 'bfloat16' or 'float16'; got {autocast!r}")
    return dtype


def check_mask_threshold(mask_threshold) -> float:
    """``mask_threshold`` as a float (a finite number), else raise ValueError."""
    if isinstance(mask_threshold, bool) or not isinstance(mask_threshold, (int, float, np.integer, np.floating)) or not np.isfinite(mask_threshold):
        raise ValueError(f"mask_threshold must be a finite number (a mask-logit threshold, default 0.0), got {mask_threshold!r}")
    return float(mask_threshold)


def check_output(output, return_logits: bool = False) -> str:
    """Return ``output`` if it is one of :data:`OUTPUTS` (and can hold logits when ``return_logits``), else raise ValueError."""
    check_choice(output, "output", OUTPUTS)
    if output == "rle" and return_logits:
        raise ValueError("return_logits=True returns float logit arrays, which RLE results do not hold: use output='binary'")
    return output


class TrackingSession:
    """Prompts, propagation and streaming for one video, with memory that stays flat in video length.

    Create it with ``tracker.session(video)`` (a path, URL, folder, list of frames, array, or
    :class:`~sam2_pipelines.video_io.FrameSource`) or ``tracker.session()`` for streaming, then:

    * ``add_points(frame, obj_id, points, labels)``, ``add_box(frame, obj_id, box)``,
      ``add_mask(frame, obj_id, mask)``, ``add_prompt({...})``: prompt an object (new or existing) on any
      frame, before or after propagation; each returns that object's result on that frame;
    * ``propagate(direction=..., start_frame=..., max_frames=..., output=...)``: iterate per-frame results;
    * ``remove_object(obj_id)``, ``reset()``;
    * streaming: ``push_frame(frame, prompts=None)`` appends a frame and returns its result;
    * ``close()`` (or ``with tracker.session(video) as session:``) releases the video file it opened.

    A ``propagate()`` iterator belongs to the session's state when it starts: once the session changes
    (another ``propagate()`` starts, a prompt is added, an object removed, ``reset()``, ``push_frame``,
    ``close()``), taking the next result from the older iterator raises ``ValueError`` saying so; start a
    new ``propagate()``. Results already taken stay valid.

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
        frame_resize: how frames become model input pixels (see :mod:`sam2_pipelines.frame_pixels`):
            ``"bicubic"`` (default) is exactly Meta's video predictor's frame loader (PIL bicubic resize,
            ``/ 255``, mean/std), ``"bilinear"`` is transformers' ``Sam2VideoVideoProcessor``.
        batch_size: while propagating, the image encoder computes the features of up to this many upcoming
            frames (in the propagation direction) in one forward pass; tracking then uses them frame by
            frame. At most ``batch_size`` frames' features are held. Results equal ``batch_size=1``
            (default). Streaming (:meth:`push_frame`) always encodes one frame at a time.
        autocast: ``None`` (default: the model's dtype throughout) or ``torch.bfloat16`` / ``torch.float16``
            (or their names): run the model under ``torch.autocast`` in that dtype, as Meta's predictor is
            used on GPUs. Faster on accelerators; masks differ slightly from float32 (docs/video_tracking.md).
        mask_threshold: a pixel belongs to the mask where the mask logit (upsampled to the video) is above this
            (default ``0.0``, as Meta's predictor and transformers; ``logit = log(p / (1 - p))`` for a probability).
        return_logits: also return each result's ``"logits"``: float32 ``(objects, 1, H, W)`` mask logits at
            video resolution (``torch.sigmoid`` gives probabilities). Binary output only (not with ``"rle"``).
    """

    def __init__(self, model, processor, video=None, *, device=None, prune_memory: bool = True, frame_resize: FrameResize = DEFAULT_FRAME_RESIZE, batch_size: int = 1, autocast=None, mask_threshold: float = 0.0, return_logits: bool = False):
        self._autocast = check_autocast(autocast)
        self._mask_threshold = check_mask_threshold(mask_threshold)
        self._return_logits = check_bool(return_logits, "return_logits")
        check_bool(prune_memory, "prune_memory")
        self._frame_resize = check_frame_resize(frame_resize)
        self._batch_size = check_int(batch_size, "batch_size", minimum=1)  # frames encoded per image-encoder pass
        self._model = model
        self._processor = processor
        self._device = torch.device(device) if device is not None else model.device
        self._dtype = model.dtype
        self._prune_memory = prune_memory
        self._feed = FrameFeed(video, processor, self._frame_resize, self._device, self._dtype, READ_AHEAD)  # frames on demand
        self._closed = False
        self._epoch = 0  # bumped by every change of the session; a propagate() iterator runs in one epoch
        self._height = self._feed.height
        self._width = self._feed.width
        self._fast_steps = tracking_step.supported(model)  # steps with memory share the frame's work
        self._step_context = None  # the latest frame's shared work (tracking_step.StepContext)
        self._state = model_internals.LazyInferenceSession(
            self._feed.load,
            self._feed.__len__,
            video_height=self._height,
            video_width=self._width,
            inference_device=self._device,
            inference_state_device=self._device,
            video_storage_device=self._device,
            dtype=self._dtype,
        )
        self._peak_held = 0
        # Our own records beside transformers' session: prompted outputs not yet propagated, and the record of
        # propagations that lets dropped tracked outputs be recomputed.
        self._pending: dict[int, dict] = {}  # obj_id -> {frame: output} of prompts since the last propagation
        self._ledger = MemoryLedger(model.num_maskmem, self._pointer_window)

    # ------------------------------------------------------------------------------------------ properties

    @property
    def object_ids(self) -> list[int]:
        """Ids of the objects in the session, in the order they were first prompted."""
        return list(self._state.obj_ids)

    @property
    def num_frames(self) -> int:
        """Number of frames of the video (streaming: frames pushed so far)."""
        return len(self._feed)

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
        return self._feed.streaming

    @property
    def prompted_frames(self) -> dict[int, list[int]]:
        """``{obj_id: sorted frames with prompts}`` (the conditioning frames of each object)."""
        return {
            self._state.obj_idx_to_id(i): sorted({*o["cond_frame_outputs"], *self._pending.get(self._state.obj_idx_to_id(i), {})})
            for i, o in self._state.output_dict_per_obj.items()
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
            "prompted_outputs": sum(len(o["cond_frame_outputs"]) for o in outputs) + sum(len(p) for p in self._pending.values()),
            "vision_features": len(model_internals.cached_feature_frames(self._state)),
            "frames": 0 if self._feed.latest is None else 1,
        }

    def __repr__(self) -> str:
        kind = "streaming" if self.streaming else f"{self.num_frames} frames"
        return f"TrackingSession({kind}, size={self._height}x{self._width}, objects={self.object_ids})"

    # ------------------------------------------------------------------------------------------- frames

    def _check_frame(self, frame) -> int:
        frame = check_int(frame, "frame", minimum=0)
        if self.streaming:
            if self._feed.pushed == 0:
                raise ValueError("no frame has been pushed yet: call push_frame(frame) (or push_frame(frame, prompts=...)) first")
            if frame != self._feed.pushed - 1:
                raise ValueError(
                    f"in a streaming session prompts go on the latest pushed frame ({self._feed.pushed - 1}); got frame {frame}"
                )
        elif frame >= self.num_frames:
            raise ValueError(f"frame {frame} is past the end of the video ({self.num_frames} frames: 0..{self.num_frames - 1})")
        return frame

    # ------------------------------------------------------------------------------------------ batched features

    def _tracked_here(self, index: int) -> bool:
        """Whether some object is tracked (not only prompted) on frame ``index``."""
        return any(index not in o["cond_frame_outputs"] for o in self._state.output_dict_per_obj.values())

    def _prefetch_features(self, frame: int, reverse: bool) -> None:
        """Encode ``frame`` and the frames after it (before it when ``reverse``) in one image-encoder pass.

        Called as ``frame`` is about to be tracked. With ``batch_size > 1``, when ``frame``'s features are not
        cached and some object has to be tracked on it, the cache is emptied and refilled with the features
        of the next ``batch_size`` frames that some object tracks (frames prompted for every object reuse
        their outputs and are skipped), up to the end (``reverse``: the start) of the video. They come from
        one ``get_image_features`` call, split per frame into the same tensors ``_prepare_vision_features``
        caches for a single frame (``[HW, 1, C]`` per level), which the model then reads from the cache.
        At most ``batch_size`` frames' features are held. Does nothing with ``batch_size=1`` or for streams.
        """
        if self._batch_size <= 1 or self.streaming:
            return
        state = self._state
        cache = state.cache
        tracked_here = self._tracked_here
        if frame in model_internals.cached_feature_frames(state) or not tracked_here(frame):
            return
        step, end = (-1, -1) if reverse else (1, self.num_frames)
        frames = []
        index = frame
        while index != end and len(frames) < self._batch_size:
            if tracked_here(index):
                frames.append(index)
            index += step
        cache.clear_all()
        cache.max_vision_features_cache_size = max(cache.max_vision_features_cache_size, self._batch_size)
        with self._compute():
            pixels = torch.stack([state.get_frame(index) for index in frames])
            encoded = self._model.get_image_features(pixels, return_dict=True)
            for i, index in enumerate(frames):
                cache.cache_vision_features(
                    index,
                    {
                        "vision_feats": [t[:, i : i + 1].clone() for t in encoded.fpn_hidden_states],
                        "vision_pos_embeds": [t[:, i : i + 1].clone() for t in encoded.fpn_position_encoding],
                    },
                )

    # ------------------------------------------------------------------------------------------ prompts

    def _known_index(self, obj_id) -> int:
        obj_id = check_int(obj_id, "obj_id")
        index = model_internals.object_index(self._state, obj_id)
        if index is None:
            raise ValueError(f"unknown object id {obj_id}; objects in this session: {self.object_ids}")
        return index

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
        replace = check_bool(replace, "replace")
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
        prompt = normalize_video_prompt(prompt, (self._height, self._width), None if self.streaming else self.num_frames)
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
        self._change()
        self._ledger.forget_object(int(obj_id))
        self._pending.pop(int(obj_id), None)
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

    def clear_prompts(self, frame: int, obj_id: int) -> None:
        """Remove object ``obj_id``'s prompts on ``frame`` (Meta's ``clear_all_prompts_in_frame``).

        Clicks, boxes and masks on that frame are forgotten, with their result if no propagation used it yet.
        If a propagation made the frame a conditioning frame, its output stays what later steps read there
        (as a tracked output) until the frame is tracked or prompted again; the frame then counts as not
        tracked, so the next prompt on it segments from its prompts alone. Other frames and objects are
        unaffected; propagate again to update tracked frames.
        """
        obj_idx = self._known_index(obj_id)
        frame = self._check_frame(frame)
        self._change()
        state = self._state
        state.point_inputs_per_obj[obj_idx].pop(frame, None)
        state.mask_inputs_per_obj[obj_idx].pop(frame, None)
        outputs = state.output_dict_per_obj[obj_idx]
        self._pending.get(int(obj_id), {}).pop(frame, None)
        out = outputs["cond_frame_outputs"].pop(frame, None)
        if out is not None:
            outputs["non_cond_frame_outputs"][frame] = out
            self._ledger.pinned.setdefault(int(obj_id), {})[frame] = out
            self._ledger.produced.get(int(obj_id), {}).pop(frame, None)
            state.frames_tracked_per_obj[obj_idx].pop(frame, None)

    def close(self) -> None:
        """Release the video file the session opened (a :class:`FrameSource` given by the caller stays open).

        Any later call on the session raises ``ValueError``; closing twice is fine.
        """
        if self._closed:
            return
        self._closed = True
        self._epoch += 1
        self._feed.close()
        self._forget_all()
        allocator.release()  # what a stream's frames kept for the next one

    def __enter__(self) -> TrackingSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this tracking session is closed; open a new one with tracker.session(...)")

    def _change(self) -> None:
        """Mark a change of the session: refuses a closed session and makes running iterators stale."""
        self._check_open()
        self._epoch += 1

    def reset(self) -> None:
        """Forget every object, prompt and memory (the video stays open)."""
        self._change()
        self._forget_all()

    # ------------------------------------------------------------------------------------------ inference

    @contextlib.contextmanager
    def _compute(self):
        """Inference mode, and autocast to the session's ``autocast`` dtype if it has one."""
        with torch.inference_mode():
            if self._autocast is None:
                yield
            else:
                with torch.autocast(self._device.type, dtype=self._autocast):
                    yield

    def _infer(self, obj_idx, frame, is_init_cond_frame, point_inputs, mask_inputs, reverse, prev_logits=None) -> dict:
        """One model step for one object on one frame; returns the output to store (with its memory)."""
        model, state = self._model, self._state
        if self._fast_steps and not is_init_cond_frame and mask_inputs is None:
            self._step_context = tracking_step.current(self._step_context, model, state, frame)
            return tracking_step.memory_step(model, state, self._step_context, obj_idx, point_inputs, reverse, prev_logits, self.streaming)
        return model_internals.run_step(
            model,
            state,
            frame,
            obj_idx,
            is_init_cond_frame=is_init_cond_frame,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=reverse,
            prev_logits=prev_logits,
            streaming=self.streaming,
        )

    def _run_prompted_frame(self, obj_idx: int, frame: int) -> dict:
        """Segment one object on a prompted frame, as Meta's ``add_new_points_or_box`` / ``add_new_mask`` do.

        On a frame the object was not tracked on, the prompts alone segment it (an initial conditioning
        frame). On a tracked frame they correct the tracked mask: the model attends to the object's prompted
        frames and to the tracked frames before it, in the direction it was tracked. Clicks and boxes are
        decoded together with the object's latest mask logits on the frame. The output waits among the
        pending outputs until the next propagation (or pushed frame) makes it a conditioning frame.
        """
        self._change()
        state = self._state
        outputs = state.output_dict_per_obj[obj_idx]
        pending = self._pending.setdefault(state.obj_idx_to_id(obj_idx), {})
        point_inputs = state.point_inputs_per_obj[obj_idx].get(frame)
        mask_inputs = state.mask_inputs_per_obj[obj_idx].get(frame)
        tracked = state.frames_tracked_per_obj[obj_idx].get(frame)
        is_init = tracked is None
        reverse = bool(tracked["reverse"]) if tracked is not None else False
        readable, prev_logits = {}, None
        if mask_inputs is None:  # a mask prompt is used as the mask: no memory, no previous logits
            readable = self._readable_outputs(obj_idx, frame, reverse, with_memory=not is_init)
            previous = next(
                (o[frame] for o in (pending, outputs["cond_frame_outputs"], readable) if frame in o and o[frame].get("pred_masks") is not None),
                None,
            )
            if previous is not None:
                prev_logits = previous["pred_masks"].to(self._device).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        saved = outputs["non_cond_frame_outputs"]
        outputs["non_cond_frame_outputs"] = readable
        try:
            with self._compute():
                out = self._infer(obj_idx, frame, is_init, point_inputs, mask_inputs, reverse, prev_logits)
        finally:
            outputs["non_cond_frame_outputs"] = saved
        pending[frame] = out
        return self._format(frame, [state.obj_idx_to_id(obj_idx)], [out["pred_masks"]], [out["object_score_logits"]], "binary")

    def _readable_outputs(self, obj_idx: int, frame: int, reverse: bool, with_memory: bool, with_mask: bool = True) -> dict:
        """The object's tracked outputs a step on ``frame`` reads, as Meta's predictor holds them.

        That is the frame's own mask logits (with ``with_mask``; a click is decoded with them) and, with
        ``with_memory``, the memories and object pointers of the tracked frames before it (after it when
        ``reverse``). Outputs dropped to keep memory flat are recomputed by replaying this object's steps of
        the propagations that produced them, so the result does not depend on what was dropped.
        """
        state = self._state
        outputs = state.output_dict_per_obj[obj_idx]
        need = {frame: {"pred_masks"}} if with_mask else {}
        if with_memory:
            memory_frames, pointer_frames = self._ledger.windows(frame, reverse)
            for f in memory_frames:
                need.setdefault(f, set()).add("maskmem_features")
            for f in pointer_frames:
                need.setdefault(f, set()).add("object_pointer")
        committed = outputs["cond_frame_outputs"]  # Meta drops a frame's tracked output once it is prompted
        held = outputs["non_cond_frame_outputs"]
        produced = self._ledger.produced.get(state.obj_idx_to_id(obj_idx), {})
        missing = [f for f, keys in need.items() if f not in committed and f in produced and not keys <= held.get(f, {}).keys()]
        source = self._replay(obj_idx, set(need), max(produced[f] for f in missing)) if missing else held
        source = {**source, **self._ledger.pinned.get(state.obj_idx_to_id(obj_idx), {})}
        return {f: source[f] for f in need if f in source and f not in committed}

    def _replay(self, obj_idx: int, keep: set, until: int) -> dict:
        """Re-run one object's tracking steps of the current propagations, up to step ``until``.

        Returns the recomputed tracked outputs: whole on the frames in ``keep``, and whatever the remaining
        steps would read. Steps run with the prompted outputs each propagation started with, so they repeat
        the original computation exactly.
        """
        state, ledger = self._state, self._ledger
        obj_id = state.obj_idx_to_id(obj_idx)
        outputs = state.output_dict_per_obj[obj_idx]
        saved = outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"]
        scratch: dict = {}
        entered = -1
        try:
            with self._compute():
                for position, (frame, reverse, segment, _) in enumerate(ledger.lineage[: until + 1]):
                    if segment != entered:  # outputs of prompts cleared before this propagation
                        entered = segment
                        scratch.update(ledger.segments[segment]["pinned"].get(obj_id, {}))
                    cond = ledger.segments[segment]["cond"].get(obj_id)
                    if cond is None or frame in cond:
                        continue  # the object did not exist yet, or the frame reused its prompted output
                    outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"] = cond, scratch
                    scratch[frame] = self._infer(obj_idx, frame, False, None, None, reverse)
                    ledger.trim(scratch, ledger.readers_after(position), keep_masks=keep, keep=keep)
        finally:
            outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"] = saved
        return scratch

    def _restore_window(self, frame: int, reverse: bool) -> None:
        """Make the tracked outputs that a pass starting on ``frame`` reads held again.

        As in Meta's predictor, a propagation reads every object's latest outputs on the frames before its
        start (after it when ``reverse``), whichever propagation produced them; those dropped to keep memory
        flat are recomputed (:meth:`_readable_outputs`). Later steps of the pass read frames it produced itself.
        """
        for obj_idx, outputs in self._state.output_dict_per_obj.items():
            if outputs["cond_frame_outputs"]:
                outputs["non_cond_frame_outputs"].update(self._readable_outputs(obj_idx, frame, reverse, with_memory=True, with_mask=False))

    def _commit_pending(self) -> None:
        """Make pending prompted outputs conditioning frames (Meta's ``propagate_in_video_preflight``)."""
        for obj_idx, outputs in self._state.output_dict_per_obj.items():
            pending = self._pending.pop(self._state.obj_idx_to_id(obj_idx), {})
            outputs["cond_frame_outputs"].update(pending)
            pinned = self._ledger.pinned.get(self._state.obj_idx_to_id(obj_idx), {})
            for frame in pending:
                pinned.pop(frame, None)
            for frame in outputs["cond_frame_outputs"]:
                outputs["non_cond_frame_outputs"].pop(frame, None)

    def _track_frame(self, frame: int, reverse: bool, output: str) -> dict:
        """Segment every object on ``frame``: prompted frames are reused, others tracked with memory."""
        self._prefetch_features(frame, reverse)
        state = self._state
        masks, scores, obj_ids = [], [], []
        with self._compute():
            for obj_idx in range(state.get_obj_num()):
                outputs = state.output_dict_per_obj[obj_idx]
                if not outputs["cond_frame_outputs"]:
                    continue  # prompted during this propagation: tracked from the next one on
                out = outputs["cond_frame_outputs"].get(frame)
                if out is None:
                    out = self._infer(obj_idx, frame, False, None, None, reverse)
                    outputs["non_cond_frame_outputs"][frame] = out
                    self._ledger.pinned.get(state.obj_idx_to_id(obj_idx), {}).pop(frame, None)
                state.frames_tracked_per_obj[obj_idx][frame] = {"reverse": reverse}
                obj_ids.append(state.obj_idx_to_id(obj_idx))
                masks.append(out["pred_masks"])
                scores.append(out["object_score_logits"])
            return self._format(frame, obj_ids, masks, scores, output)

    def _format(self, frame: int, obj_ids: list, masks: list, scores: list, output: str) -> dict:
        if masks:
            logits = torch.cat([m.reshape(1, 1, *m.shape[-2:]) for m in masks], dim=0).float()
            video_res = F.interpolate(logits, size=(self._height, self._width), mode="bilinear", align_corners=False)
            binary = (video_res > self._mask_threshold).cpu().numpy()
            probs = torch.sigmoid(torch.cat([s.reshape(1) for s in scores]).float()).cpu().numpy()
        else:
            video_res = torch.zeros((0, 1, self._height, self._width))
            binary = np.zeros((0, 1, self._height, self._width), dtype=bool)
            probs = np.zeros((0,), dtype=np.float32)
        if output == "rle":  # plain Python values throughout: json.dumps(result) works
            masks_out, scores_out = [encode_rle(m[0]) for m in binary], [float(p) for p in probs]
        else:
            masks_out, scores_out = binary, probs.astype(np.float32)
        result = {"frame_idx": int(frame), "object_ids": [int(i) for i in obj_ids], "masks": masks_out, "scores": scores_out}
        if self._return_logits:
            result["logits"] = video_res.cpu().numpy()
        return result

    # ------------------------------------------------------------------------------------------ memory

    def _pointer_window(self) -> int:
        limit = self._model.config.max_object_pointers_in_encoder
        return limit if self.streaming else min(self.num_frames, limit)

    def _prune(self, readers: list[tuple[int, bool]], latest: int) -> None:
        """Drop tracked outputs that none of ``readers`` (``(frame, reverse)``) will read.

        The ``latest`` tracked frame keeps its mask logits, and ``readers`` include it, so a correction there
        needs no recomputation.
        """
        state = self._state
        held = sum(len(o["non_cond_frame_outputs"]) for o in state.output_dict_per_obj.values())
        self._peak_held = max(self._peak_held, held)
        if self._prune_memory:
            for obj_idx, outputs in state.output_dict_per_obj.items():
                pinned = self._ledger.pinned.get(state.obj_idx_to_id(obj_idx), {})
                self._ledger.trim(outputs["non_cond_frame_outputs"], readers, keep_masks={latest, *pinned}, keep=pinned)

    def _forget_all(self) -> None:
        """Forget every object, prompt, output and feature, and the record of the propagations (reset, close)."""
        self._state.reset_inference_session()
        self._pending.clear()
        self._step_context = None
        self._ledger.clear()

    # ------------------------------------------------------------------------------------------ propagation

    def propagate(self, direction: Direction = "forward", start_frame: int | None = None, max_frames: int | None = None, output: Output = "binary", progress: bool = False) -> Iterator[dict]:
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
        self._check_open()
        if self.streaming:
            raise ValueError("a streaming session has no video to propagate through; use push_frame(frame)")
        check_choice(direction, "direction", DIRECTIONS)
        check_output(output, self._return_logits)
        check_bool(progress, "progress")
        if self._state.get_obj_num() == 0:
            raise ValueError("no objects to track: add prompts first (add_points, add_box, add_mask or add_prompt)")
        prompted = sorted({f for frames in self.prompted_frames.values() for f in frames})
        if not prompted:
            raise ValueError("no prompts left to track from (every prompt was cleared): add prompts first")
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
        return self._run_passes(passes, output, progress)

    def _run_passes(self, passes, output, progress) -> Iterator[dict]:
        from tqdm.auto import tqdm

        self._change()
        epoch = self._epoch
        with allocator.keep_freed_memory(release=False):
            self._commit_pending()
        state = self._state
        segment = self._ledger.begin(
            {state.obj_idx_to_id(i): dict(o["cond_frame_outputs"]) for i, o in state.output_dict_per_obj.items()},
            [(frames[0], reverse) for frames, reverse in passes],
        )
        bar = tqdm(total=sum(len(frames) for frames, _ in passes), desc="tracking", unit="frame", disable=not progress)
        order = [frame for frames, _ in passes for frame in frames]
        step = 0
        try:
            for pass_index, (frames, reverse) in enumerate(passes):
                self._restore_window(frames[0], reverse)  # a pass continuing the last one finds it all held
                for frame in frames:
                    cached = model_internals.cached_feature_frames(self._state)
                    window = [f for f in order[step : step + 1 + READ_AHEAD] if self._tracked_here(f) and f not in cached]
                    self._feed.want(window)  # this frame and the next ones: read while the model works
                    step += 1
                    if self._epoch != epoch:
                        raise ValueError(
                            "this propagate() iterator is stale: the session changed after it started (another "
                            "propagate(), a new prompt, remove_object, reset or close); call propagate() again"
                        )
                    with allocator.keep_freed_memory(release=False):  # the next frame reuses the pages this one freed
                        result = self._track_frame(frame, reverse, output)
                        position = self._ledger.record(frame, reverse, segment, pass_index, result["object_ids"])
                        self._prune(self._ledger.readers_after(position), latest=frame)
                    bar.update(1)
                    yield result
        finally:
            bar.close()
            if self._step_context is not None:  # the memory attention's scratch buffers, reused frame to frame
                self._step_context.attention.workspace.clear()
            allocator.release()

    # ------------------------------------------------------------------------------------------ streaming

    def push_frame(self, frame, prompts: list | None = None, output: Output = "binary") -> dict:
        """Streaming: append the next frame, apply ``prompts`` on it, track every object and return its result.

        Args:
            frame: an RGB frame (PIL image, uint8 ``(H, W, 3)`` array or tensor); all frames must share a size.
            prompts: optional prompt dicts for this frame (their ``"frame"`` may be omitted; if given it must
                be this frame's index). Objects can be added on any pushed frame.
            output: ``"binary"`` or ``"rle"``.

        Returns:
            The frame's result over all objects (``object_ids`` is empty until something is prompted).
        """
        self._check_open()
        if not self.streaming:
            raise ValueError("push_frame is for streaming sessions (tracker.session() without a video); use propagate()")
        check_output(output, self._return_logits)
        array = to_rgb_frame(frame, where=f"streamed frame {self._feed.pushed}")
        if self._height is None:
            self._height, self._width = array.shape[:2]
            self._state.video_height, self._state.video_width = self._height, self._width
        elif array.shape[:2] != (self._height, self._width):
            raise ValueError(f"streamed frame {self._feed.pushed} has size {array.shape[:2]} but the stream's frames are {(self._height, self._width)}")
        prompts = list(prompts or [])
        index = self._feed.pushed
        checked = []
        for prompt in prompts:
            if isinstance(prompt, dict) and "frame" not in prompt:
                prompt = {**prompt, "frame": index}
            prompt = normalize_video_prompt(prompt, (self._height, self._width))
            if prompt["frame"] != index:
                raise ValueError(f"a prompt passed with streamed frame {index} must be for that frame, got frame {prompt['frame']}")
            checked.append(prompt)
        self._change()
        self._feed.push(array)
        self._state.cache.clear_all()
        with allocator.keep_freed_memory(release=False):  # the next pushed frame reuses the pages this one freed
            for prompt in checked:
                self.add_prompt(prompt)
            self._commit_pending()
            result = self._track_frame(index, False, output)
            self._prune([(index + 1, False), (index, False)], latest=index)
        return result
