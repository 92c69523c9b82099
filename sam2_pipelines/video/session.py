"""Interactive video object tracking with bounded memory: :class:`TrackingSession`.

A session wraps one video (or a stream of frames) and a ``Sam2VideoModel`` / ``EdgeTamVideoModel``. It
holds the prompts of every object, the model's memories, and as little else as possible:

* frames are read from a lazy :class:`~sam2_pipelines.io.video.FrameSource` and preprocessed when the model
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

The session is a facade over parts that each own their state: the frames come from a
:class:`~sam2_pipelines.video.frame_feed.FrameFeed`; prompts go into the model's state through
:class:`~sam2_pipelines.video.objects.ObjectPrompts`; model steps run through a
:class:`~sam2_pipelines.video.stepper.Stepper` (the shared-work step of :mod:`sam2_pipelines.kernels.tracking_step`
or transformers' own, through :mod:`sam2_pipelines.models.internals`); what to hold and how to recompute what
was dropped is :class:`~sam2_pipelines.video.memory.MemoryRecall`; the frames of a propagation are planned by
:func:`~sam2_pipelines.video.propagation.plan_passes` and each result is formatted by
:func:`~sam2_pipelines.video.results.frame_result`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from sam2_pipelines.core.lifecycle import SessionLifecycle
from sam2_pipelines.core.prompts import normalize_video_prompt
from sam2_pipelines.core.validation import DIRECTIONS, OUTPUTS, Direction, FrameResize, Output, check_bool, check_choice, check_int
from sam2_pipelines.kernels import allocator
from sam2_pipelines.models import internals
from sam2_pipelines.video.frame_feed import FrameFeed
from sam2_pipelines.video.frame_pixels import DEFAULT_FRAME_RESIZE, check_frame_resize
from sam2_pipelines.video.memory import MemoryRecall
from sam2_pipelines.video.objects import ObjectPrompts
from sam2_pipelines.video.propagation import plan_passes
from sam2_pipelines.video.results import frame_result
from sam2_pipelines.video.stepper import Stepper
from sam2_pipelines.video.streams import checked_push

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


class TrackingSession(SessionLifecycle):
    """Prompts, propagation and streaming for one video, with memory that stays flat in video length.

    Create it with ``tracker.session(video)`` (a path, URL, folder, list of frames, array, or
    :class:`~sam2_pipelines.io.video.FrameSource`) or ``tracker.session()`` for streaming, then:

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
        frame_resize: how frames become model input pixels (see :mod:`sam2_pipelines.video.frame_pixels`):
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

    _what = "tracking session"
    _reopen = "tracker.session(...)"

    def __init__(self, model, processor, video=None, *, device=None, prune_memory: bool = True, frame_resize: FrameResize = DEFAULT_FRAME_RESIZE, batch_size: int = 1, autocast=None, mask_threshold: float = 0.0, return_logits: bool = False):
        super().__init__()
        self._autocast = check_autocast(autocast)
        self._mask_threshold = check_mask_threshold(mask_threshold)
        self._return_logits = check_bool(return_logits, "return_logits")
        check_bool(prune_memory, "prune_memory")
        frame_resize = check_frame_resize(frame_resize)
        batch_size = check_int(batch_size, "batch_size", minimum=1)  # frames encoded per image-encoder pass
        self._model = model
        self._device = torch.device(device) if device is not None else model.device
        self._feed = FrameFeed(video, processor, frame_resize, self._device, model.dtype, READ_AHEAD)  # frames on demand
        self._height = self._feed.height
        self._width = self._feed.width
        self._state = internals.LazyInferenceSession(
            self._feed.load,
            self._feed.__len__,
            video_height=self._height,
            video_width=self._width,
            inference_device=self._device,
            inference_state_device=self._device,
            video_storage_device=self._device,
            dtype=model.dtype,
        )
        self._stepper = Stepper(model, self._state, self._feed, self._device, self._autocast, batch_size)
        self._memory = MemoryRecall(self._stepper, model.num_maskmem, self._pointer_window, prune_memory)
        self._objects = ObjectPrompts(self._stepper, self._memory, processor, self._device, model.dtype,
                                      lambda: (self._height, self._width), self._change, self._format)

    # ------------------------------------------------------------------------------------------ properties

    @property
    def object_ids(self) -> list[int]:
        """Ids of the objects in the session, in the order they were first prompted."""
        return self._objects.ids

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
    def prune_memory(self) -> bool:
        """Whether outputs the model can no longer read are dropped (results are the same either way)."""
        return self._memory.prunes

    @property
    def batch_size(self) -> int:
        """Frames the image encoder encodes in one pass while propagating (results do not depend on it)."""
        return self._stepper.batch_size

    @property
    def streaming(self) -> bool:
        """True for a session fed frame by frame with :meth:`push_frame`."""
        return self._feed.streaming

    @property
    def prompted_frames(self) -> dict[int, list[int]]:
        """``{obj_id: sorted frames with prompts}`` (the conditioning frames of each object)."""
        pending = self._memory.pending
        ids = {i: self._state.obj_idx_to_id(i) for i in range(self._state.get_obj_num())}
        return {ids[i]: sorted({*prompted, *pending.get(ids[i], {})}) for i, prompted, _ in internals.all_object_outputs(self._state)}

    def memory_stats(self) -> dict:
        """What the session holds right now: ``{"tracked_outputs", "peak_tracked_outputs", "prompted_outputs",
        "pinned_outputs", "replays", "vision_features", "frames", "decoded_frames"}``.

        ``tracked_outputs`` counts the per-frame outputs of tracked frames over all objects; with
        ``prune_memory=True`` it never exceeds ``objects * (max(num_maskmem, max_object_pointers) - 1)``
        (plus one window more while propagating in both directions, plus ``pinned_outputs``: outputs of cleared
        prompts, read until their frame is tracked again). ``peak_tracked_outputs`` is the largest value seen
        so far; ``replays`` counts the times dropped outputs were recomputed (a correction or propagation that
        read them). ``frames`` is the streamed frame held for the next push (0 or 1); ``decoded_frames`` the
        decoded video frames kept for reuse (at most the video file source's ``cache_size``).
        """
        return {
            **self._memory.counts(),
            "vision_features": len(internals.cached_feature_frames(self._state)),
            "frames": 0 if self._feed.latest is None else 1,
            "decoded_frames": 0 if self._feed.source is None else self._feed.source.cached_frames,
        }

    def pixel_values(self, frame_idx: int) -> torch.Tensor:
        """The model's input for frame ``frame_idx``: ``(3, S, S)`` pixels resized with the session's
        ``frame_resize`` and normalised, on the session's device in the model's dtype (a stream: its latest frame)."""
        self._check_open()
        return self._feed.load(self._check_frame(frame_idx))

    def __repr__(self) -> str:
        kind = "streaming" if self.streaming else f"{self.num_frames} frames"
        return f"TrackingSession({kind}, size={self._height}x{self._width}, objects={self.object_ids})"

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

    def _pointer_window(self) -> int:
        limit = self._model.config.max_object_pointers_in_encoder
        return limit if self.streaming else min(self.num_frames, limit)

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """Run a call that changes the session so that, if it fails half-way (any exception, Ctrl-C included),
        the session is as it was before the call: no prompt kept without its result, no frame counted twice.
        Calls from several threads run one at a time."""
        with self._lock:
            saved = self._snapshot()
            try:
                yield
            except BaseException:
                self._restore(saved)
                raise

    def _snapshot(self) -> tuple:
        return internals.snapshot(self._state), self._memory.snapshot(), self._feed.pushed, self._feed.latest, self._height, self._width

    def _restore(self, saved: tuple) -> None:
        internals.restore(self._state, saved[0])
        self._memory.restore(saved[1])
        self._feed.pushed, self._feed.latest, self._height, self._width = saved[2:]
        self._stepper.forget()

    def _format(self, frame: int, obj_ids: list, masks: list, scores: list, output: str) -> dict:
        return frame_result(frame, obj_ids, masks, scores, (self._height, self._width), self._mask_threshold, output, self._return_logits)

    # ------------------------------------------------------------------------------------------ prompts

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
        with self._all_or_nothing():
            return self._objects.add_points(self._check_frame(frame), obj_id, points, labels, replace)

    def refine(self, frame: int, obj_id: int, points, labels) -> dict:
        """Add correction clicks for an EXISTING object on ``frame`` (as :meth:`add_points`, but an unknown
        ``obj_id`` is an error instead of a new object)."""
        self._objects.known_index(obj_id)
        return self.add_points(frame, obj_id, points, labels)

    def add_box(self, frame: int, obj_id: int, box, points=None, labels=None) -> dict:
        """Prompt object ``obj_id`` on ``frame`` with a box ``[x0, y0, x1, y1]`` (pixels), optionally plus clicks.

        A box replaces the object's earlier prompts on this frame (SAM 2 reads the box corners first,
        then the clicks); add more clicks afterwards with :meth:`add_points`.
        """
        with self._all_or_nothing():
            return self._objects.add_box(self._check_frame(frame), obj_id, box, points, labels)

    def add_mask(self, frame: int, obj_id: int, mask) -> dict:
        """Prompt object ``obj_id`` on ``frame`` with a binary ``(H, W)`` mask at video resolution.

        A mask replaces the object's earlier prompts on this frame; it is used as the object's mask there.
        """
        with self._all_or_nothing():
            return self._objects.add_mask(self._check_frame(frame), obj_id, mask)

    def add_prompt(self, prompt: dict) -> dict:
        """Apply one prompt dict (as in ``tracker(video, prompts=[...])``): points+labels, a box (+clicks) or a mask."""
        prompt = normalize_video_prompt(prompt, (self._height, self._width), None if self.streaming else self.num_frames)
        return self._apply(prompt)

    def _apply(self, prompt: dict) -> dict:
        """Apply a prompt already checked by ``normalize_video_prompt``."""
        frame, obj_id = prompt["frame"], prompt["obj_id"]
        if prompt["mask"] is not None:
            return self.add_mask(frame, obj_id, prompt["mask"])
        if prompt["box"] is not None:
            return self.add_box(frame, obj_id, prompt["box"], prompt["points"], prompt["labels"])
        return self.add_points(frame, obj_id, prompt["points"], prompt["labels"])

    def remove_object(self, obj_id: int) -> None:
        """Forget object ``obj_id``: its prompts, memories and results. Other objects are unaffected."""
        with self._all_or_nothing():
            self._objects.remove(obj_id)

    def clear_prompts(self, frame: int, obj_id: int) -> None:
        """Remove object ``obj_id``'s prompts on ``frame`` (Meta's ``clear_all_prompts_in_frame``).

        Clicks, boxes and masks on that frame are forgotten, with their result if no propagation used it yet.
        If a propagation made the frame a conditioning frame, its output stays what later steps read there
        (as a tracked output) until the frame is tracked or prompted again; the frame then counts as not
        tracked, so the next prompt on it segments from its prompts alone. Other frames and objects are
        unaffected; propagate again to update tracked frames.
        """
        obj_idx = self._objects.known_index(obj_id)
        with self._all_or_nothing():
            self._objects.clear(self._check_frame(frame), obj_idx)

    # ------------------------------------------------------------------------------------------ lifetime

    def _release(self) -> None:
        self._feed.close()
        self._forget_all()
        allocator.release()  # what a stream's frames kept for the next one

    def close(self) -> None:
        """Release the video file the session opened (a :class:`FrameSource` given by the caller stays open).

        Any later call on the session raises ``ValueError``; closing twice is fine.
        """
        super().close()

    def reset(self) -> None:
        """Forget every object, prompt and memory (the video stays open)."""
        self._change()
        self._forget_all()

    def _forget_all(self) -> None:
        """Forget every object, prompt, output and feature, and the record of the propagations (reset, close)."""
        self._state.reset_inference_session()
        self._memory.clear()
        self._stepper.forget()

    # ------------------------------------------------------------------------------------------ tracking

    def _track_frame(self, frame: int, reverse: bool, output: str) -> dict:
        """Segment every object on ``frame``: prompted frames are reused, others tracked with memory."""
        return self._format(frame, *self._stepper.track_objects(frame, reverse, self._memory), output)

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

        Arguments are checked when this is called; frames are tracked as the iterator is consumed. Stopping
        early keeps the frames tracked so far; if tracking a frame fails (any exception, Ctrl-C included), the
        session is put back as it was before this call, so that calling again gives one uninterrupted call's results.
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
        passes = plan_passes(direction, start_frame, max_frames, self.num_frames, prompted)
        return self._run_passes(passes, output, progress)

    def _run_passes(self, passes, output, progress) -> Iterator[dict]:
        from tqdm.auto import tqdm

        with self._lock:
            epoch = self._change()
            before = self._snapshot()  # put back if tracking a frame fails (any exception, Ctrl-C included)
            with allocator.keep_freed_memory(release=False):
                self._memory.commit_pending()
            segment = self._memory.begin(passes)
        bar = tqdm(total=sum(len(frames) for frames, _ in passes), desc="tracking", unit="frame", disable=not progress)
        order = [frame for frames, _ in passes for frame in frames]
        step = 0
        try:
            for pass_index, (frames, reverse) in enumerate(passes):
                for position, frame in enumerate(frames):
                    with self._lock:  # one frame at a time; other threads' calls run between frames
                        self._check_current(epoch)
                        if position == 0:  # a pass continuing the last one finds it all held
                            self._memory.restore_window(frames[0], reverse)
                        cached = internals.cached_feature_frames(self._state)
                        window = [f for f in order[step : step + 1 + READ_AHEAD] if self._stepper.tracked_here(f) and f not in cached]
                        self._feed.want(window)  # this frame and the next ones: read while the model works
                        step += 1
                        try:
                            with allocator.keep_freed_memory(release=False):  # the next frame reuses the pages this one freed
                                result = self._track_frame(frame, reverse, output)
                                self._memory.after_step(frame, reverse, segment, pass_index, result["object_ids"])
                        except BaseException:
                            self._restore(before)
                            raise
                    bar.update(1)
                    yield result
        finally:
            bar.close()
            self._stepper.forget()
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
        with self._lock:  # the frame's index is taken and used in one piece
            self._check_open()
            if not self.streaming:
                raise ValueError("push_frame is for streaming sessions (tracker.session() without a video); use propagate()")
            check_output(output, self._return_logits)
            index = self._feed.pushed
            array, size, checked = checked_push(frame, prompts, index, None if self._height is None else (self._height, self._width))
            self._change()
            with self._all_or_nothing():
                self._height, self._width = size
                internals.set_video_size(self._state, *size)
                self._feed.push(array)
                self._state.cache.clear_all()
                with allocator.keep_freed_memory(release=False):  # the next pushed frame reuses the pages this one freed
                    for prompt in checked:
                        self._apply(prompt)
                    self._memory.commit_pending()
                    result = self._track_frame(index, False, output)
                    self._memory.prune([(index + 1, False), (index, False)], latest=index)
            return result
