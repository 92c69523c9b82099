"""The objects of a tracking session and their prompts: clicks, boxes and masks into the model's state.

:class:`ObjectPrompts` turns checked prompts into the model's inputs on a frame and segments the object there
as Meta's ``add_new_points_or_box`` / ``add_new_mask`` do; it also removes objects and clears prompts. Frames
are checked by the session; what changes in transformers' state goes through :mod:`sam2_pipelines.models.internals`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sam2_pipelines.core.masks import LOGIT_CLAMP
from sam2_pipelines.core.prompts import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, normalize_binary_mask, normalize_box, normalize_points
from sam2_pipelines.core.validation import check_bool, check_int
from sam2_pipelines.models import internals


class ObjectPrompts:
    """Prompts of every object, applied through the session's stepper and memory.

    Args:
        stepper: the session's :class:`~sam2_pipelines.video.stepper.Stepper`; ``memory``: its
            :class:`~sam2_pipelines.video.memory.MemoryRecall`.
        processor: the model's processor (its ``target_size`` scales clicks); ``device``, ``dtype``: of the inputs.
        size: returns the video's ``(height, width)``; ``on_change``: called before the state changes;
            ``format_result``: ``(frame, obj_ids, masks, scores, output) -> result``.
    """

    def __init__(self, stepper, memory, processor, device, dtype, size, on_change, format_result):
        self._stepper = stepper
        self._state = stepper.state
        self._memory = memory
        self._processor = processor
        self._device = device
        self._dtype = dtype
        self._size = size
        self._on_change = on_change
        self._format = format_result

    @property
    def ids(self) -> list[int]:
        return list(self._state.obj_ids)

    def known_index(self, obj_id) -> int:
        obj_id = check_int(obj_id, "obj_id")
        index = internals.object_index(self._state, obj_id)
        if index is None:
            raise ValueError(f"unknown object id {obj_id}; objects in this session: {self.ids}")
        return index

    def _scale(self, xy: np.ndarray) -> torch.Tensor:
        """Pixel ``(x, y)`` coordinates -> the model's input coordinates (``target_size`` square)."""
        height, width = self._size()
        target = self._processor.target_size
        scale = np.array([target / width, target / height], dtype=np.float32)
        return torch.from_numpy(xy.astype(np.float32) * scale)

    def add_points(self, frame: int, obj_id, points, labels, replace) -> dict:
        replace = check_bool(replace, "replace")
        xy, lab = normalize_points(points, labels, self._size())
        obj_idx = self._state.obj_id_to_idx(check_int(obj_id, "obj_id"))
        coords = self._scale(xy)[None, None]
        labels_t = torch.from_numpy(lab.astype(np.int32))[None, None]
        previous = None if replace else internals.frame_prompts(self._state, obj_idx, frame)[0]
        if previous is not None:
            coords = torch.cat([previous["point_coords"].cpu(), coords], dim=2)
            labels_t = torch.cat([previous["point_labels"].cpu(), labels_t], dim=2)
        return self._set_point_inputs(obj_idx, frame, coords, labels_t)

    def add_box(self, frame: int, obj_id, box, points, labels) -> dict:
        box = normalize_box(box, self._size())
        coords = self._scale(box.reshape(2, 2))[None, None]
        labels_t = torch.tensor([[[BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]]], dtype=torch.int32)
        if points is not None or labels is not None:
            xy, lab = normalize_points(points, labels, self._size())
            coords = torch.cat([coords, self._scale(xy)[None, None]], dim=2)
            labels_t = torch.cat([labels_t, torch.from_numpy(lab.astype(np.int32))[None, None]], dim=2)
        obj_idx = self._state.obj_id_to_idx(check_int(obj_id, "obj_id"))
        return self._set_point_inputs(obj_idx, frame, coords, labels_t)

    def add_mask(self, frame: int, obj_id, mask) -> dict:
        mask = normalize_binary_mask(mask, self._size())
        obj_idx = self._state.obj_id_to_idx(check_int(obj_id, "obj_id"))
        size = self._stepper.model.config.image_size
        mask_t = torch.from_numpy(mask)[None, None].to(self._device, dtype=torch.float32)
        if mask_t.shape[-2:] != (size, size):
            mask_t = F.interpolate(mask_t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            mask_t = (mask_t >= 0.5).float()
        internals.set_mask_prompt(self._state, obj_idx, frame, mask_t.to(self._dtype))
        return self._run_prompted_frame(obj_idx, frame)

    def _set_point_inputs(self, obj_idx: int, frame: int, coords: torch.Tensor, labels: torch.Tensor) -> dict:
        internals.set_point_prompt(self._state, obj_idx, frame, coords.to(self._device, dtype=self._dtype), labels.to(self._device))
        return self._run_prompted_frame(obj_idx, frame)

    def _run_prompted_frame(self, obj_idx: int, frame: int) -> dict:
        """Segment one object on a prompted frame, as Meta's ``add_new_points_or_box`` / ``add_new_mask`` do.

        On a frame the object was not tracked on, the prompts alone segment it (an initial conditioning
        frame). On a tracked frame they correct the tracked mask: the model attends to the object's prompted
        frames and to the tracked frames before it, in the direction it was tracked. Clicks and boxes are
        decoded together with the object's latest mask logits on the frame. The output waits among the
        pending outputs until the next propagation (or pushed frame) makes it a conditioning frame.
        """
        self._on_change()
        state = self._state
        prompted, _ = internals.object_outputs(state, obj_idx)
        pending = self._memory.pending.setdefault(state.obj_idx_to_id(obj_idx), {})
        point_inputs, mask_inputs = internals.frame_prompts(state, obj_idx, frame)
        tracked_reverse = internals.tracked_reverse(state, obj_idx, frame)
        is_init = tracked_reverse is None
        reverse = bool(tracked_reverse)
        readable, prev_logits = {}, None
        if mask_inputs is None:  # a mask prompt is used as the mask: no memory, no previous logits
            readable = self._memory.readable_outputs(obj_idx, frame, reverse, with_memory=not is_init)
            previous = next(
                (o[frame] for o in (pending, prompted, readable) if frame in o and o[frame].get("pred_masks") is not None),
                None,
            )
            if previous is not None:
                prev_logits = previous["pred_masks"].to(self._device).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        with internals.outputs_seen(state, obj_idx, tracked=readable), self._stepper.compute():
            out = self._stepper.infer(obj_idx, frame, is_init, point_inputs, mask_inputs, reverse, prev_logits)
        pending[frame] = out
        return self._format(frame, [state.obj_idx_to_id(obj_idx)], [out["pred_masks"]], [out["object_score_logits"]], "binary")

    def remove(self, obj_id) -> None:
        """Forget object ``obj_id``: its prompts, memories and results. Other objects are unaffected."""
        removed = self.known_index(obj_id)
        self._on_change()
        self._memory.forget_object(int(obj_id))
        internals.remove_object(self._state, removed)

    def clear(self, frame: int, obj_idx: int) -> None:
        """Remove an object's prompts on ``frame`` (see ``TrackingSession.clear_prompts``)."""
        self._on_change()
        internals.clear_frame_prompts(self._state, obj_idx, frame)
        self._memory.cleared(obj_idx, frame)
