"""The one place that touches transformers' private SAM 2 video internals.

Tracking sessions run transformers' ``Sam2VideoModel`` (and ``EdgeTamVideoModel``, ``Sam3TrackerVideoModel``) step by step, as Meta's
predictor runs its model: one object, one frame, with the memories the session chooses. transformers exposes
that only through private methods and attributes of the model and of its ``Sam2VideoInferenceSession``. Every
use of them is a function here, so that a transformers release that changes them breaks this module alone,
and ``tests/video/test_model_internals.py`` (run against the newest transformers too) says which name moved.

It also replaces one module function of transformers' SAM 3 video model, ``mask_iou``, by a blockwise one with
identical results (:func:`bound_pairwise_mask_iou`), gives a model's sine position encodings a cache per
shape (:func:`cache_position_encodings`), of which a tracking step computes only the one it reads
(:func:`read_position_encodings_only`).

Supported: the transformers versions in :data:`SUPPORTED_TRANSFORMERS` (pyproject states the same range).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import inspect

import torch
from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

#: transformers versions (``major.minor``) whose internals this module is written against and tested with.
SUPPORTED_TRANSFORMERS = ("5.23", "5.24", "5.25")

#: Private names used here: ``(owner, name)`` where owner is "model" or "session" (``Sam2VideoInferenceSession``).
PRIVATE_NAMES = (
    ("session", "_obj_idx_to_id"),
    ("model", "_run_single_frame_inference"),
    ("model", "_prepare_vision_features"),
    ("model", "_encode_new_memory"),
    ("model", "_gather_memory_frame_outputs"),
    ("model", "_build_memory_attention_inputs"),
    ("model", "_get_object_pointers"),
    ("model", "_process_object_pointers"),
    ("model", "_single_frame_forward"),
    ("model", "_use_multimask"),
    ("session", "_obj_id_to_idx"),
    ("session", "cache._vision_features"),
)


class LazyInferenceSession(Sam2VideoInferenceSession):
    """transformers' ``Sam2VideoInferenceSession`` whose frames are loaded on demand instead of stored.

    The model reads frames through ``get_frame`` and the frame count through ``num_frames``; both are
    served by the owning :class:`~sam2_pipelines.video.session.TrackingSession`. EdgeTAM's and SAM 3 tracker's session classes
    are generated from SAM 2's and identical (a test checks it), so this one serves every model family.
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


def encodes_memory_inline(model) -> bool:
    """Whether ``model``'s single-frame step encodes the new memory itself (EdgeTAM) rather than leaving it to
    ``_encode_new_memory`` (SAM 2). Read once per model class: every tracking step asks."""
    return _encodes_memory_inline(type(model))


@functools.lru_cache(maxsize=None)
def _encodes_memory_inline(model_class) -> bool:
    return "run_mem_encoder" in inspect.signature(model_class._run_single_frame_inference).parameters


def run_step(model, state, frame: int, obj_idx: int, *, is_init_cond_frame: bool, point_inputs, mask_inputs, reverse: bool, prev_logits, streaming: bool) -> dict:
    """transformers' step for one object on one frame, with the new memory encoded: the output to store
    (``pred_masks``, ``object_pointer``, ``object_score_logits``, ``maskmem_features``, ``maskmem_pos_enc``)."""
    kwargs = dict(
        inference_session=state,
        frame_idx=frame,
        obj_idx=obj_idx,
        batch_size=1,
        is_init_cond_frame=is_init_cond_frame,
        point_inputs=point_inputs,
        mask_inputs=mask_inputs,
        reverse=reverse,
        prev_sam_mask_logits=prev_logits,
        streaming=streaming,
    )
    if encodes_memory_inline(model):
        return dict(model._run_single_frame_inference(**kwargs, run_mem_encoder=True))
    out = dict(model._run_single_frame_inference(**kwargs))
    high_res_masks = out.pop("high_res_masks")
    vision_feats, _ = vision_features(model, state, frame)
    out["maskmem_features"], out["maskmem_pos_enc"] = model._encode_new_memory(
        current_vision_feats=vision_feats[-1],
        pred_masks_high_res=high_res_masks,
        object_score_logits=out["object_score_logits"],
        is_mask_from_pts=point_inputs is not None or mask_inputs is not None,
    )
    return out


def vision_features(model, state, frame: int):
    """The frame's ``(features, positional encodings)`` per level, ``[HW, 1, C]`` each (cached by the session)."""
    return model._prepare_vision_features(state, frame, 1)


def memory_inputs(model, state, obj_idx: int, frame: int, reverse: bool, streaming: bool):
    """The object's memory tokens, their positional embeddings and the number of object-pointer tokens, as
    transformers gathers them for a step on ``frame``."""
    device = state.inference_device
    outputs = model._gather_memory_frame_outputs(state, obj_idx, frame, reverse)
    memories, positions = model._build_memory_attention_inputs(outputs, device)
    offsets, pointers, max_pointers = model._get_object_pointers(state, obj_idx, frame, state.num_frames, device, reverse, streaming)
    num_pointer_tokens = 0
    if pointers:
        pointer_tokens, pointer_positions = model._process_object_pointers(offsets, pointers, max_pointers, 1, model.hidden_dim, device)
        if pointer_tokens is not None:
            memories.append(pointer_tokens)
            positions.append(pointer_positions)
            num_pointer_tokens = pointer_tokens.shape[0]
    dtype = state.dtype  # stored memories are bfloat16, pointers the model's dtype (or autocast's): one dtype
    return torch.cat([m.to(dtype) for m in memories]), torch.cat([p.to(dtype) for p in positions]), num_pointer_tokens


def decode(model, image_embeddings: list, point_inputs, prev_logits):
    """The prompt encoder and mask decoder on conditioned features (transformers' ``_single_frame_forward``)."""
    return model._single_frame_forward(
        pixel_values=None,
        input_points=point_inputs["point_coords"] if point_inputs is not None else None,
        input_labels=point_inputs["point_labels"] if point_inputs is not None else None,
        input_masks=prev_logits,
        image_embeddings=image_embeddings,
        multimask_output=model._use_multimask(False, point_inputs),
    )


# ---------------------------------------------------------------------------------------------- session records
#
# transformers' inference session keeps, per object index, the prompts of each frame (``point_inputs_per_obj``,
# ``mask_inputs_per_obj``), the outputs of prompted and tracked frames (``output_dict_per_obj[i]`` with
# ``"cond_frame_outputs"`` / ``"non_cond_frame_outputs"``) and the direction each frame was tracked in
# (``frames_tracked_per_obj``). The tracking session reads and writes them only through these functions.


def frame_prompts(state, obj_idx: int, frame: int) -> tuple[dict | None, torch.Tensor | None]:
    """The object's ``(point_inputs, mask_inputs)`` on ``frame`` (``None`` where it has none)."""
    return state.point_inputs_per_obj[obj_idx].get(frame), state.mask_inputs_per_obj[obj_idx].get(frame)


def set_point_prompt(state, obj_idx: int, frame: int, coords: torch.Tensor, labels: torch.Tensor) -> None:
    """Store the object's clicks (and box corners) on ``frame``; they replace a mask prompt there."""
    state.point_inputs_per_obj[obj_idx][frame] = {"point_coords": coords, "point_labels": labels}
    state.mask_inputs_per_obj[obj_idx].pop(frame, None)


def set_mask_prompt(state, obj_idx: int, frame: int, mask: torch.Tensor) -> None:
    """Store the object's mask prompt on ``frame``; it replaces clicks there."""
    state.mask_inputs_per_obj[obj_idx][frame] = mask
    state.point_inputs_per_obj[obj_idx].pop(frame, None)


def clear_frame_prompts(state, obj_idx: int, frame: int) -> None:
    """Remove the object's prompts on ``frame``."""
    state.point_inputs_per_obj[obj_idx].pop(frame, None)
    state.mask_inputs_per_obj[obj_idx].pop(frame, None)


def object_outputs(state, obj_idx: int) -> tuple[dict, dict]:
    """The object's ``(prompted, tracked)`` outputs: ``{frame: output}`` dicts the model reads (changed in place)."""
    outputs = state.output_dict_per_obj[obj_idx]
    return outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"]


def all_object_outputs(state):
    """``(obj_idx, prompted, tracked)`` of every object (see :func:`object_outputs`)."""
    return [(obj_idx, *object_outputs(state, obj_idx)) for obj_idx in state.output_dict_per_obj]


@contextlib.contextmanager
def outputs_seen(state, obj_idx: int, prompted: dict | None = None, tracked: dict | None = None):
    """Within the block, the model sees ``prompted`` / ``tracked`` (where given) as the object's outputs."""
    outputs = state.output_dict_per_obj[obj_idx]
    saved = outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"]
    try:
        if prompted is not None:
            outputs["cond_frame_outputs"] = prompted
        if tracked is not None:
            outputs["non_cond_frame_outputs"] = tracked
        yield
    finally:
        outputs["cond_frame_outputs"], outputs["non_cond_frame_outputs"] = saved


def tracked_reverse(state, obj_idx: int, frame: int) -> bool | None:
    """Whether the object was last tracked on ``frame`` backwards (``None``: not tracked there)."""
    tracked = state.frames_tracked_per_obj[obj_idx].get(frame)
    return None if tracked is None else bool(tracked["reverse"])


def mark_tracked(state, obj_idx: int, frame: int, reverse: bool) -> None:
    state.frames_tracked_per_obj[obj_idx][frame] = {"reverse": reverse}


def unmark_tracked(state, obj_idx: int, frame: int) -> None:
    state.frames_tracked_per_obj[obj_idx].pop(frame, None)


def set_video_size(state, height: int, width: int) -> None:
    """A stream's frame size (known from its first pushed frame)."""
    state.video_height, state.video_width = height, width


def object_index(state, obj_id: int) -> int | None:
    """The session's index of object ``obj_id``, or ``None`` when it has no such object (nothing is added)."""
    return state._obj_id_to_idx.get(obj_id)


def cached_feature_frames(state) -> set:
    """Frames whose vision features the session's cache holds."""
    return set(state.cache._vision_features)


# ---------------------------------------------------------------------------------------------- SAM 3 text video


def text_video_session(count_frames, **kwargs):
    """transformers' ``Sam3VideoInferenceSession`` (SAM 3 text tracking) with no video stored up front.

    Frames are added one at a time as they are tracked (``add_new_frame``) and dropped by
    :func:`forget_text_frames`; the frame count the model reads (``num_frames``, which sets how many object
    pointers it attends to) is served by ``count_frames``, the count transformers' own session would hold.
    """
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

    class LazyTextSession(Sam3VideoInferenceSession):
        @property
        def num_frames(self) -> int | None:
            return count_frames()

    return LazyTextSession(video=None, **kwargs)


def cache_position_encodings(model) -> None:
    """Keep every sine position encoding ``model`` computes, one per shape, as Meta's ``PositionEmbeddingSine`` does.

    transformers' ``build_sine_position_embedding`` (of ``Sam2SinePositionEmbedding`` and its SAM 2 video twin)
    is a static method behind an ``lru_cache`` of one entry, shared by all its callers. The image encoder's
    neck asks for four shapes in turn on every frame (256x256 down to 32x32 positions of 256 channels), so
    each call misses: every frame built them again (about 0.1 s and 200 MB of short-lived tensors at
    1024x1024). Each such module of ``model`` gets a ``forward`` that keeps its results by shape, device and
    dtype; the values are those transformers computes (the same function, called once per shape). Calls
    with a mask, with a batch of more than one, or while ``torch.compile`` traces go to transformers' own.
    The SAM 2 image encoder's learned position embedding (``Sam2HieraDetModel._get_pos_embed``: the embedding
    interpolated bicubically to the feature size plus the tiled window embedding, about 30 ms per 1024x1024
    frame) is kept the same way, per feature size, while no gradient is recorded and as long as neither
    parameter changes (their version counters and storage are part of the key). Idempotent.
    """
    for module in model.modules():
        kind = type(module)
        if hasattr(kind, "build_sine_position_embedding") and "forward" not in vars(module) and _POSITION_ARGUMENTS == _arguments(kind, "forward"):
            module.forward = _cached_position_encoding(module, module.forward)
        if _LEARNED_POSITION_ARGUMENTS == _arguments(kind, "_get_pos_embed") and "_get_pos_embed" not in vars(module):
            module._get_pos_embed = _cached_learned_position_embedding(module)


#: The arguments of the position-encoding modules' ``forward`` that :func:`cache_position_encodings` wraps
#: (another signature is left alone).
_POSITION_ARGUMENTS = ("self", "shape", "device", "dtype", "mask")


#: The arguments of the learned position embedding's builder that :func:`cache_position_encodings` wraps.
_LEARNED_POSITION_ARGUMENTS = ("self", "hw")


def _arguments(kind, name: str) -> tuple:
    """The parameter names of method ``name`` of class ``kind`` (empty if it has none)."""
    method = getattr(kind, name, None)
    return tuple(inspect.signature(method).parameters) if callable(method) else ()


def _cached_learned_position_embedding(module):
    build = module._get_pos_embed  # bound: transformers' own
    kept = {}

    def _get_pos_embed(hw):
        parameters = (module.pos_embed, module.pos_embed_window)
        if torch.is_grad_enabled() and any(p.requires_grad for p in parameters) or torch.compiler.is_compiling():
            return build(hw)
        stamp = tuple((p.data_ptr(), p._version, p.dtype, str(p.device)) for p in parameters)
        key = tuple(hw)
        if key not in kept or kept[key][0] != stamp:
            kept[key] = (stamp, build(hw))
        return kept[key][1]

    return _get_pos_embed


def _cached_position_encoding(module, build):
    kept = {}

    def forward(shape, device, dtype, mask=None):
        if mask is not None or shape[0] != 1 or torch.compiler.is_compiling():
            return build(shape, device, dtype, mask)
        read = _READ_POSITIONS.get()
        if read is not None and read[0] is module and tuple(shape[-2:]) != read[1]:
            return torch.full((), float("nan"), dtype=dtype, device=device).expand(*shape)  # read by nothing
        key = (tuple(shape), str(device), dtype)
        if key not in kept:
            kept[key] = build(shape, device, dtype)
        return kept[key]

    return forward


#: Within :func:`read_position_encodings_only`: ``(the image encoder neck's sine module, (H, W) read)``.
_READ_POSITIONS = contextvars.ContextVar("read_positions", default=None)


@contextlib.contextmanager
def read_position_encodings_only(model):
    """Within the block (this thread), ``model``'s image-encoder neck computes only the position encoding that
    a tracking step reads.

    The neck of a SAM 2 video model computes a sine position encoding for each of its feature levels (256x256,
    128x128, 64x64 and 32x32 positions of 256 channels at 1024x1024 input: 85 MB, which
    :func:`cache_position_encodings` keeps), but transformers' ``_run_single_frame_inference`` (and the
    memory attention of :mod:`~sam2_pipelines.kernels.fast_memory`) reads only the lowest-resolution level
    kept (``current_vision_pos_embeds[-1]``, 64x64: 4 MB). Within the block, the neck's other levels get a
    placeholder that takes no memory instead: NaN broadcast to their shape, so that a result that read one
    would be NaN, not silently different. Outside the block (the model used directly) nothing changes. Needs
    :func:`cache_position_encodings` applied first; a model without such a neck is left alone.
    """
    neck = getattr(getattr(model, "vision_encoder", None), "neck", None)
    module = getattr(neck, "position_encoding", None)
    sizes = getattr(model, "backbone_feature_sizes", None)
    if module is None or not sizes or "forward" not in vars(module):
        yield
        return
    token = _READ_POSITIONS.set((module, tuple(sizes[-1])))
    try:
        yield
    finally:
        _READ_POSITIONS.reset(token)


def bound_pairwise_mask_iou() -> None:
    """Make transformers' SAM 3 video model compute its pairwise mask IoUs in blocks of bounded size.

    transformers' ``mask_iou`` (a module function of ``modeling_sam3_video``, used for detection-to-track matching,
    detection NMS and overlap suppression) holds ``N * M * H * W`` booleans at once, so memory grows with the
    square of the number of instances. It is replaced, in that module, by
    :func:`~sam2_pipelines.kernels.pairwise_iou.blockwise_mask_iou`, whose results are identical. The change is
    process-wide and idempotent; :func:`transformers_mask_iou` keeps transformers' own function.
    """
    from transformers.models.sam3_video import modeling_sam3_video as sam3_video

    from sam2_pipelines.kernels.pairwise_iou import blockwise_mask_iou

    if sam3_video.mask_iou is not blockwise_mask_iou:
        _REPLACED.setdefault("mask_iou", sam3_video.mask_iou)
        sam3_video.mask_iou = blockwise_mask_iou


def transformers_mask_iou():
    """transformers' own SAM 3 ``mask_iou`` (before :func:`bound_pairwise_mask_iou` replaced it)."""
    from transformers.models.sam3_video import modeling_sam3_video as sam3_video

    return _REPLACED.get("mask_iou", sam3_video.mask_iou)


#: transformers' functions replaced here, by name.
_REPLACED: dict = {}


#: Keys of a stored tracker output that object pointers need (the rest is mask memory and masks).
_POINTER_KEYS = ("object_pointer", "object_score_logits")


def forget_text_frames(state, frame: int, tracker_config) -> None:
    """Drop what a forward SAM 3 text-tracking step on ``frame + 1`` and later can no longer read.

    What the model reads on frame ``t`` (transformers' ``Sam3VideoModel``): the frame's pixels and features
    (one frame, cached), each object's non-conditioning outputs of frames ``t - 1 .. t - (num_maskmem - 1)``
    (mask memory) and ``t - 1 .. t - (max_object_pointers_in_encoder - 1)`` (object pointers), its
    conditioning outputs (the ``max_cond_frame_num`` closest for mask memory; every one for its object
    pointer), and per-frame metadata of ``t`` only. Older entries are dropped; conditioning outputs that can
    no longer be selected for mask memory keep only their object pointer and score. Hotstart bookkeeping
    (lists of frame numbers per object) is kept: its removal rules count them.
    """
    mask_window = tracker_config.num_maskmem - 1
    pointer_window = tracker_config.max_object_pointers_in_encoder - 1
    cond_kept = tracker_config.max_cond_frame_num
    next_frame = frame + 1
    if state.processed_frames is not None:
        for old in [f for f in state.processed_frames if f <= frame]:
            del state.processed_frames[old]
    for outputs in state.output_dict_per_obj.values():
        tracked = outputs["non_cond_frame_outputs"]
        for old in [f for f in tracked if f < next_frame - pointer_window]:
            del tracked[old]
        for old in [f for f in tracked if f < next_frame - mask_window]:
            tracked[old] = _pointer_only(tracked[old])
        prompted = outputs["cond_frame_outputs"]
        selectable = set(sorted(prompted)[-cond_kept:]) if cond_kept > 0 else set(prompted)
        for old in prompted:
            if old not in selectable and old < next_frame - mask_window:
                prompted[old] = _pointer_only(prompted[old])
    for per_frame in (state.frames_tracked_per_obj, state.mask_inputs_per_obj, state.point_inputs_per_obj):
        for frames in per_frame.values():
            for old in [f for f in frames if f < frame]:
                del frames[old]
    for per_frame in (state.obj_id_to_tracker_score_frame_wise, state.suppressed_obj_ids):
        for old in [f for f in per_frame if f < frame]:
            del per_frame[old]


def _copy_containers(value):
    """``value`` with every dict, list, set and tuple in it copied (tensors and other objects shared)."""
    kind = type(value)
    if kind is collections.defaultdict:
        return collections.defaultdict(value.default_factory, {key: _copy_containers(item) for key, item in value.items()})
    if kind in (dict, collections.OrderedDict):
        return kind((key, _copy_containers(item)) for key, item in value.items())
    if kind in (list, tuple):
        return kind(_copy_containers(item) for item in value)
    if kind is set:
        return set(value)
    return value  # tensors, model outputs and other objects: shared (never changed in place)


def text_snapshot(state) -> dict:
    """What a SAM 3 text-tracking step may change in ``state`` (its containers copied, tensors shared, the
    feature cache left out), for :func:`text_restore` after a step that failed half-way."""
    return {name: _copy_containers(value) for name, value in vars(state).items() if name != "cache"}


def text_restore(state, saved: dict) -> None:
    """Put a :func:`text_snapshot` back; cached vision features are dropped (recomputed when next needed)."""
    for name in [name for name in vars(state) if name != "cache" and name not in saved]:
        delattr(state, name)
    for name, value in saved.items():
        setattr(state, name, _copy_containers(value))
    state.cache.clear_all()


def _pointer_only(output: dict) -> dict:
    return {key: output[key] for key in _POINTER_KEYS if key in output}


def remove_object(state, removed: int) -> None:
    """Remove the object at index ``removed`` from a SAM 2 video session, keeping the others' data and order."""
    old_ids = list(state.obj_ids)
    keep = [i for i in range(len(old_ids)) if i != removed]
    containers = (state.point_inputs_per_obj, state.mask_inputs_per_obj, state.output_dict_per_obj, state.frames_tracked_per_obj)
    moved = [[container[i] for i in keep] for container in containers]
    state.reset_tracking_data()
    for new_idx, old_idx in enumerate(keep):
        state.obj_id_to_idx(old_ids[old_idx])
        for container, values in zip(containers, moved):
            container[new_idx] = values[new_idx]


def snapshot(state) -> dict:
    """What the calls of a SAM 2 video session may change, copied down to each frame's output dict (tensors are
    shared: they are never changed in place). :func:`restore` puts it back after a call that failed half-way."""
    return {
        "ids": (state._obj_id_to_idx.copy(), state._obj_idx_to_id.copy(), list(state.obj_ids), list(state.obj_with_new_inputs)),
        "points": {i: dict(v) for i, v in state.point_inputs_per_obj.items()},
        "masks": {i: dict(v) for i, v in state.mask_inputs_per_obj.items()},
        "outputs": {i: {kind: {f: dict(out) for f, out in frames.items()} for kind, frames in o.items()} for i, o in state.output_dict_per_obj.items()},
        "tracked": {i: dict(v) for i, v in state.frames_tracked_per_obj.items()},
        "size": (state.video_height, state.video_width),
    }


def restore(state, saved: dict) -> None:
    """Put a :func:`snapshot` back; cached vision features are dropped (recomputed when next needed)."""
    state._obj_id_to_idx, state._obj_idx_to_id, state.obj_ids, state.obj_with_new_inputs = (
        saved["ids"][0].copy(), saved["ids"][1].copy(), list(saved["ids"][2]), list(saved["ids"][3])
    )
    state.point_inputs_per_obj = {i: dict(v) for i, v in saved["points"].items()}
    state.mask_inputs_per_obj = {i: dict(v) for i, v in saved["masks"].items()}
    state.output_dict_per_obj = {i: {kind: {f: dict(out) for f, out in frames.items()} for kind, frames in o.items()} for i, o in saved["outputs"].items()}
    state.frames_tracked_per_obj = {i: dict(v) for i, v in saved["tracked"].items()}
    state.video_height, state.video_width = saved["size"]
    state.cache.clear_all()
