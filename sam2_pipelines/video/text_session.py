"""Text prompts on videos: every instance of a concept ("person", "red car") tracked with SAM 3 (``Sam3VideoModel``).

A :class:`TextTrackingSession` runs transformers' ``Sam3VideoModel`` frame by frame: on every frame the
detector finds the instances of each concept, the tracker follows the instances already known, and new
instances get new object ids. Results equal transformers' own SAM 3 video API on the same frames
(``Sam3VideoProcessor.init_video_session`` + ``propagate_in_video_iterator`` for a video; the model's
streaming ``forward(frame=...)`` for a stream), while memory stays flat in video length:

* frames are read lazily and preprocessed when tracked (transformers' session preprocesses and keeps the whole
  video up front);
* per-frame outputs and metadata the model can no longer read are dropped after every frame
  (:func:`~sam2_pipelines.models.internals.forget_text_frames`); transformers' session keeps them all.

Memory is also linear, not quadratic, in the number of instances: the model's pairwise mask IoUs are computed in
blocks (:func:`~sam2_pipelines.models.internals.bound_pairwise_mask_iou`, identical results).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from sam2_pipelines.core.lifecycle import SessionLifecycle
from sam2_pipelines.models import families
from sam2_pipelines.models import internals as model_internals
from sam2_pipelines.video.frame_feed import FrameFeed
from sam2_pipelines.core.masks import encode_rle
from sam2_pipelines.image.text import check_concepts, check_text_length
from sam2_pipelines.core.validation import Output, check_bool, check_choice, check_int, OUTPUTS, FRAME_RESIZES
from sam2_pipelines.io.video import to_rgb_frame

#: How a text tracker's frames become pixels by default: transformers' video processor, which its own API uses.
TEXT_FRAME_RESIZE = "bilinear"


def is_text_video_model(model) -> bool:
    """True for video models that track by text (SAM 3's ``Sam3VideoModel``)."""
    return families.is_class(model, "video", text=True)


def text_prompt(prompt) -> tuple[int, list[str]]:
    """``(frame, concepts)`` of a text tracker's prompt dict ``{"frame": int, "text": str | [str, ...]}`` (frame
    defaults to 0); ValueError for anything else, naming what is accepted."""
    if not isinstance(prompt, dict) or "text" not in prompt:
        raise ValueError(f'a text tracker (Sam3VideoModel) takes prompts {{"frame": int, "text": "concept" or [...]}}, got {prompt!r}')
    unknown = sorted(map(str, set(prompt) - {"frame", "text"}))
    if unknown:
        raise ValueError(
            f"prompt keys {unknown} do not apply to a text tracker (Sam3VideoModel), which takes only \"frame\" and \"text\"; "
            "to track objects from clicks, boxes or masks use a SAM 2 or SAM 3 tracker checkpoint (Sam3TrackerVideoModel)"
        )
    return check_int(prompt.get("frame", 0), "prompt frame", minimum=0), check_concepts(prompt["text"])


class TextTrackingSession(SessionLifecycle):
    _what = "text tracking session"
    _reopen = "tracker.session(...)"

    """Every instance of text concepts, tracked through one video (or a stream) with memory flat in its length.

    Create it with ``tracker.session(video)`` / ``tracker.session()`` on a ``video-object-tracking`` pipeline
    built from a ``Sam3VideoModel`` checkpoint (e.g. ``facebook/sam3``), then:

    * ``add_text("person", frame=0)``: concepts (a string or a list) looked for from ``frame`` on;
    * ``propagate(start_frame=..., max_frames=..., output=...)``: iterate per-frame results (forward). Each
      call tracks from scratch: what is found depends on the detections of every frame from the start;
    * streaming: ``push_frame(frame, text=None)`` appends a frame (adding concepts first) and returns its result;
    * ``close()`` (or ``with tracker.session(video) as session:``).

    Every result is ``{"frame_idx": int, "object_ids": [ids], "masks": bool (objects, 1, H, W) or list of COCO
    RLE dicts, "scores": float32 (objects,), "concepts": [the concept of each object]}``: a score is the
    detection score of the instance. Object ids count from 0 in order of first appearance; an instance that
    appears later gets a new id.

    For a video, results of a frame are held until ``hotstart_delay`` (model config) later frames are tracked,
    as transformers' ``propagate_in_video_iterator`` does: instances judged spurious within that delay are never
    reported. A stream reports each frame at once (transformers' streaming mode, without that check).

    Args:
        model: a ``Sam3VideoModel``.
        processor: its ``Sam3VideoProcessor``.
        video: the video, or ``None`` for a streaming session.
        device: where the model runs (defaults to the model's device).
        prune_memory: drop outputs the model can no longer read (default); ``False`` keeps them all, as
            transformers does. Results are identical either way.
        frame_resize: ``"bilinear"`` (default: transformers' video processor, as its own API) or ``"bicubic"``.
    """

    def __init__(self, model, processor, video=None, *, device=None, prune_memory: bool = True, frame_resize: str = TEXT_FRAME_RESIZE):
        super().__init__()
        check_bool(prune_memory, "prune_memory")
        check_choice(frame_resize, "frame_resize", FRAME_RESIZES)
        model_internals.bound_pairwise_mask_iou()  # pairwise IoUs in blocks: memory not quadratic in the instances
        self._model = model
        self._processor = processor
        self._device = torch.device(device) if device is not None else model.device
        self._prune = prune_memory
        self._feed = FrameFeed(video, processor, frame_resize, self._device, model.dtype, read_ahead=2)
        self._concepts: dict[int, list[str]] = {}  # frame -> concepts first looked for on it
        self._size = None if video is None else (self._feed.height, self._feed.width)  # a stream's: from its first frame
        self._state = None
        self._offset = 0  # a stream's index of the first frame the model tracked: the model numbers frames from it

    # ------------------------------------------------------------------------------------------ properties

    @property
    def num_frames(self) -> int:
        """Frames of the video (a stream: frames pushed so far)."""
        return len(self._feed)

    @property
    def streaming(self) -> bool:
        return self._feed.streaming

    @property
    def concepts(self) -> dict[int, list[str]]:
        """``{frame: [concepts first looked for on that frame]}``."""
        return {frame: list(names) for frame, names in sorted(self._concepts.items())}

    @property
    def object_ids(self) -> list[int]:
        """Ids of the instances being tracked now."""
        return [] if self._state is None else list(self._state.obj_ids)

    def memory_stats(self) -> dict:
        """What the session holds now: frames' pixels, per-frame outputs of all objects (``prompted_outputs`` are the
        model's conditioning frames; ``pointer_only_outputs`` of them keep just their object pointer) and the bytes
        of every tensor held."""
        state = self._state
        if state is None:
            return {"frames": 0, "tracked_outputs": 0, "prompted_outputs": 0, "pointer_only_outputs": 0, "bytes": 0}
        every = model_internals.all_object_outputs(state)
        prompted = [out for _, outputs, _ in every for out in outputs.values()]
        return {
            "frames": len(state.processed_frames or {}),
            "tracked_outputs": sum(len(tracked) for _, _, tracked in every),
            "prompted_outputs": len(prompted),
            "pointer_only_outputs": sum("maskmem_features" not in out for out in prompted),
            "bytes": _tensor_bytes(state.__dict__),
        }

    def __repr__(self) -> str:
        kind = "stream" if self.streaming else f"{self.num_frames} frames"
        return f"TextTrackingSession({kind}, concepts={self.concepts}, closed={self._closed})"

    # ------------------------------------------------------------------------------------------ prompts

    def check_text(self, text) -> list[str]:
        """The concepts of ``text``; ValueError if there are none or one is longer than the text encoder reads."""
        concepts = check_concepts(text)
        check_text_length(concepts, self._processor, self._model)
        return concepts

    def add_text(self, text, frame: int = 0) -> None:
        """Look for every instance of ``text`` (a concept or a list of concepts) from ``frame`` on."""
        with self._lock:
            self._check_open()
            concepts = self.check_text(text)
            frame = check_int(frame, "frame", minimum=0)
            if not self.streaming and frame >= self.num_frames:
                raise ValueError(f"frame {frame} is out of range: the video has {self.num_frames} frames (0 to {self.num_frames - 1})")
            if self.streaming and frame < self.num_frames:
                raise ValueError(f"frame {frame} of the stream is already tracked ({self.num_frames} frames pushed); give text for the next frame with push_frame(frame, text=...)")
            for concept in dict.fromkeys(concepts):  # each concept is looked for from the earliest frame it was given
                since = next((start for start, names in self._concepts.items() if concept in names), None)
                if since is not None and since <= frame:
                    continue
                if since is not None:
                    self._concepts[since].remove(concept)
                    if not self._concepts[since]:
                        del self._concepts[since]
                self._concepts.setdefault(frame, []).append(concept)
            self._epoch += 1

    def add_prompt(self, prompt: dict) -> None:
        """A prompt dict ``{"frame": int, "text": str | [str, ...]}`` (as in ``tracker(video, prompts=[...])``)."""
        frame, concepts = text_prompt(prompt)
        self.add_text(concepts, frame)

    # ------------------------------------------------------------------------------------------ tracking

    def propagate(self, start_frame: int | None = None, max_frames: int | None = None, output: Output = "binary", progress: bool = False) -> Iterator[dict]:
        """Track every instance of the concepts forward from ``start_frame`` (default: the earliest concept's
        frame), for at most ``max_frames`` frames (default: to the end). Yields per-frame results in frame order;
        frames before the first concept's have no objects.

        Each call tracks from scratch (the concepts stay). Arguments are checked here, before any work.
        """
        self._check_open()
        if self.streaming:
            raise ValueError("a streaming session has no video to propagate through; push frames with push_frame(frame, text=...)")
        if not self._concepts:
            raise ValueError('no text to track: add concepts first, e.g. session.add_text("person", frame=0)')
        check_choice(output, "output", OUTPUTS)
        check_bool(progress, "progress")
        first = min(self._concepts)
        start = first if start_frame is None else check_int(start_frame, "start_frame", minimum=0)
        if start >= self.num_frames:
            raise ValueError(f"start_frame {start} is out of range: the video has {self.num_frames} frames")
        stop = self.num_frames if max_frames is None else min(self.num_frames, start + check_int(max_frames, "max_frames", minimum=1))
        self._epoch += 1
        return self._run(range(start, stop), output, progress, self._epoch)

    def _run(self, frames: range, output: str, progress: bool, epoch: int) -> Iterator[dict]:
        from tqdm.auto import tqdm

        self._state = self._new_state()
        delay = self._model.hotstart_delay
        held = []
        first = min(self._concepts)
        self._feed.want([frame for frame in frames if frame >= first])
        for frame in tqdm(frames, desc="tracking", unit="frame", disable=not progress):
            self._check_current(epoch)
            if frame < first:  # nothing to look for yet
                yield self._empty(frame, output)
                continue
            with self._lock:  # one frame at a time; other threads' calls run between frames
                self._check_current(epoch)
                out = self._step(frame, self._feed.load(frame), streaming=False)
            if delay > 0:  # as propagate_in_video_iterator: hold results until hotstart removals are known
                held.append(out)
                self._state.hotstart_removed_obj_ids.update(out.removed_obj_ids)
                if frame == frames[-1]:
                    ready, held = held, []
                elif len(held) >= delay:
                    ready, held = held[:1], held[1:]
                else:
                    ready = []
            else:
                ready = [out]
            for done in ready:
                self._check_current(epoch)
                yield self._format(done, output)

    def push_frame(self, frame, text=None, output: Output = "binary") -> dict:
        """Streaming: append ``frame`` (``(H, W, 3)`` uint8 RGB, a PIL image or a path), looking for ``text``
        (new concepts) from this frame on, and return its result.

        All or nothing: if it fails half-way (any exception, Ctrl-C included), the frame is not counted and the
        stream is as before the call. Calls from several threads run one at a time."""
        with self._lock:
            self._check_open()
            if not self.streaming:
                raise ValueError("push_frame is for streaming sessions (tracker.session() without a video); this session has a video: use propagate()")
            check_choice(output, "output", OUTPUTS)
            rgb = to_rgb_frame(frame)
            if self._size is not None and rgb.shape[:2] != self._size:
                raise ValueError(f"frame {self.num_frames} is {rgb.shape[1]}x{rgb.shape[0]}, the stream's frames are {self._size[1]}x{self._size[0]}")
            if text is not None:
                self.check_text(text)
            saved = self._snapshot()
            try:
                return self._push(rgb, text, output)
            except BaseException:
                self._restore(saved)
                raise

    def _push(self, rgb: np.ndarray, text, output: str) -> dict:
        if text is not None:
            self.add_text(text, frame=self.num_frames)
        self._size = rgb.shape[:2]
        index = self._feed.push(rgb)
        self._epoch += 1
        if not self._concepts:  # nothing to look for yet
            return self._empty(index, output)
        if self._state is None:  # as a transformers stream that starts with this frame
            self._state = self._new_state()
            model_internals.set_video_size(self._state, *self._size)
            self._offset = index
        return self._format(self._step(index, self._feed.latest, streaming=True), output)

    def _snapshot(self) -> tuple:
        state = None if self._state is None else (self._state, model_internals.text_snapshot(self._state))
        return {f: list(names) for f, names in self._concepts.items()}, self._size, self._feed.pushed, self._feed.latest, state, self._offset

    def _restore(self, saved: tuple) -> None:
        concepts, self._size, self._feed.pushed, self._feed.latest, state, self._offset = saved
        self._concepts = {f: list(names) for f, names in concepts.items()}
        self._state = None if state is None else state[0]
        if state is not None:
            model_internals.text_restore(*state)

    def _new_state(self):
        """A fresh model state. The frame count it reports is what transformers' session would hold: a video's
        length, or a stream's frames since the model's first (the current one included)."""
        height, width = (None, None) if self.streaming else (self._feed.height, self._feed.width)
        return model_internals.text_video_session(
            lambda: self.num_frames - self._offset, video_height=height, video_width=width, inference_device=self._device,
            inference_state_device=self._device, video_storage_device=self._device, dtype=self._model.dtype,
        )

    def _step(self, frame: int, pixels: torch.Tensor, streaming: bool):
        """One frame through the model (concepts looked for from this frame on added first), then drop what it
        cannot read. ``frame`` is the video's (or stream's) index; the model's is counted from ``_offset``."""
        state = self._state
        known = set(state.prompts.values())
        new = [c for start, names in sorted(self._concepts.items()) if start <= frame for c in names if c not in known]
        if new:
            self._processor.add_text_prompt(state, new)
        model_frame = frame - self._offset
        if not streaming:  # the model adds a streamed frame itself
            state.add_new_frame(pixels, model_frame)
        with torch.inference_mode():
            out = self._model(inference_session=state, frame_idx=model_frame, frame=pixels if streaming else None)
        if self._prune:
            model_internals.forget_text_frames(state, model_frame, self._model.tracker_model.config)
        return out

    def _empty(self, frame: int, output: str) -> dict:
        """The result of a frame with nothing to look for (before the first concept's frame)."""
        if output == "rle":
            return {"frame_idx": int(frame), "object_ids": [], "masks": [], "scores": [], "concepts": []}
        height, width = self._size
        masks = np.zeros((0, 1, height, width), dtype=bool)
        return {"frame_idx": int(frame), "object_ids": [], "masks": masks, "scores": np.zeros(0, dtype=np.float32), "concepts": []}

    def _format(self, out, output: str) -> dict:
        found = self._processor.postprocess_outputs(self._state, out)
        masks = found["masks"].cpu()
        scores = found["scores"].numpy().astype(np.float32)
        rle = output == "rle"  # plain Python values throughout: json.dumps(result) works
        result = {
            "frame_idx": int(out.frame_idx) + self._offset,
            "object_ids": [int(i) for i in found["object_ids"]],
            "masks": [encode_rle(m.numpy()) for m in masks] if rle else masks[:, None].numpy(),
            "scores": [float(s) for s in scores] if rle else scores,
        }
        result["concepts"] = [self._state.prompts[self._state.obj_id_to_prompt_id[i]] for i in result["object_ids"]]
        return result

    # ------------------------------------------------------------------------------------------ lifetime

    def _release(self) -> None:
        """Release the video (if the session opened it) and the model state."""
        self._state = None
        self._feed.close()


def _tensor_bytes(value, seen=None) -> int:
    """Bytes of the tensors reachable through dicts, lists, tuples and sets in ``value`` (each counted once)."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return sum(_tensor_bytes(v, seen) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return _tensor_bytes(vars(value), seen)
    return 0
