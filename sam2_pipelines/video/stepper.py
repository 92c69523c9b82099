"""Model steps of a tracking session: one object on one frame, under inference mode (and autocast).

A :class:`Stepper` runs the shared-work step of :mod:`sam2_pipelines.kernels.tracking_step` where it applies
(frames tracked with memory) and transformers' own step otherwise, through the adapter
:mod:`sam2_pipelines.models.internals`; with ``batch_size > 1`` it encodes the next frames of a propagation in
one image-encoder pass.
"""

from __future__ import annotations

import contextlib

import torch

from sam2_pipelines.kernels import tracking_step
from sam2_pipelines.models import internals


class Stepper:
    """The model, its session state and how steps run.

    Args:
        model: the video model; ``state``: its (lazy) inference session; ``feed``: the session's frames.
        device: where steps run; ``autocast``: ``None`` or a half-precision dtype; ``batch_size``: frames encoded
            per image-encoder pass while propagating.
    """

    def __init__(self, model, state, feed, device: torch.device, autocast, batch_size: int):
        self.model = model
        self.state = state
        self._feed = feed
        self._device = device
        self._autocast = autocast
        self.batch_size = batch_size
        self._fast_steps = tracking_step.supported(model)  # steps with memory share the frame's work
        self._context = None  # the latest frame's shared work (tracking_step.StepContext)

    @contextlib.contextmanager
    def compute(self):
        """Inference mode, autocast to the session's ``autocast`` dtype if it has one, and only the image
        position encodings that steps read (:func:`~sam2_pipelines.models.internals.read_position_encodings_only`)."""
        with torch.inference_mode(), internals.read_position_encodings_only(self.model):
            if self._autocast is None:
                yield
            else:
                with torch.autocast(self._device.type, dtype=self._autocast):
                    yield

    def infer(self, obj_idx, frame, is_init_cond_frame, point_inputs, mask_inputs, reverse, prev_logits=None) -> dict:
        """One model step for one object on one frame; returns the output to store (with its memory)."""
        model, state = self.model, self.state
        if self._fast_steps and not is_init_cond_frame and mask_inputs is None:
            self._context = tracking_step.current(self._context, model, state, frame)
            return tracking_step.memory_step(model, state, self._context, obj_idx, point_inputs, reverse, prev_logits, self._feed.streaming)
        return internals.run_step(
            model,
            state,
            frame,
            obj_idx,
            is_init_cond_frame=is_init_cond_frame,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=reverse,
            prev_logits=prev_logits,
            streaming=self._feed.streaming,
        )

    def tracked_here(self, index: int) -> bool:
        """Whether some object is tracked (not only prompted) on frame ``index``."""
        return any(index not in prompted for _, prompted, _ in internals.all_object_outputs(self.state))

    def prefetch(self, frame: int, reverse: bool) -> None:
        """Encode ``frame`` and the frames after it (before it when ``reverse``) in one image-encoder pass.

        Called as ``frame`` is about to be tracked. With ``batch_size > 1``, when ``frame``'s features are not
        cached and some object has to be tracked on it, the cache is emptied and refilled with the features
        of the next ``batch_size`` frames that some object tracks (frames prompted for every object reuse
        their outputs and are skipped), up to the end (``reverse``: the start) of the video. They come from
        one ``get_image_features`` call, split per frame into the same tensors ``_prepare_vision_features``
        caches for a single frame (``[HW, 1, C]`` per level), which the model then reads from the cache.
        At most ``batch_size`` frames' features are held. Does nothing with ``batch_size=1`` or for streams.
        """
        if self.batch_size <= 1 or self._feed.streaming:
            return
        state = self.state
        cache = state.cache
        if frame in internals.cached_feature_frames(state) or not self.tracked_here(frame):
            return
        step, end = (-1, -1) if reverse else (1, len(self._feed))
        frames = []
        index = frame
        while index != end and len(frames) < self.batch_size:
            if self.tracked_here(index):
                frames.append(index)
            index += step
        cache.clear_all()
        cache.max_vision_features_cache_size = max(cache.max_vision_features_cache_size, self.batch_size)
        with self.compute():
            pixels = torch.stack([state.get_frame(index) for index in frames])
            encoded = self.model.get_image_features(pixels, return_dict=True)
            for i, index in enumerate(frames):
                cache.cache_vision_features(
                    index,
                    {
                        "vision_feats": [t[:, i : i + 1].clone() for t in encoded.fpn_hidden_states],
                        "vision_pos_embeds": [t[:, i : i + 1].clone() for t in encoded.fpn_position_encoding],
                    },
                )

    def track_objects(self, frame: int, reverse: bool, memory) -> tuple[list, list, list]:
        """Segment every object on ``frame``: prompted frames are reused, others tracked with memory (held by
        ``memory``, a :class:`~sam2_pipelines.video.memory.MemoryRecall`). Returns ids, mask logits, score logits."""
        self.prefetch(frame, reverse)
        state = self.state
        masks, scores, obj_ids = [], [], []
        with self.compute():
            for obj_idx in range(state.get_obj_num()):
                prompted, _ = internals.object_outputs(state, obj_idx)
                if not prompted:
                    continue  # prompted during this propagation: tracked from the next one on
                out = prompted.get(frame)
                if out is None:
                    out = self.infer(obj_idx, frame, False, None, None, reverse)
                    memory.tracked(obj_idx, frame, out)
                internals.mark_tracked(state, obj_idx, frame, reverse)
                obj_ids.append(state.obj_idx_to_id(obj_idx))
                masks.append(out["pred_masks"])
                scores.append(out["object_score_logits"])
        # The frame's shared work and scratch buffers go before the next frame's image encoder runs: with freed
        # memory kept, both then use the same heap pages (kept until the next frame, they were a peak of their own)
        self.forget()
        return obj_ids, masks, scores

    def forget(self) -> None:
        """Drop the shared work of the latest frame (a frame tracked, the end of a propagation, reset, close)."""
        self._context = None
