"""One SAM 2 video step for one object on a frame that reads memories, sharing the frame's work across objects.

transformers' ``Sam2VideoModel._run_single_frame_inference`` followed by ``_encode_new_memory`` is what
:class:`~sam2_pipelines.video.session.TrackingSession` runs per object and frame. :func:`memory_step` computes the
same outputs for a step that reads the object's memories (a tracked frame, or a click on one), with:

* the memory attention of :mod:`sam2_pipelines.kernels.fast_memory` (values in the memory's width, the first layer's
  frame-only work once per frame);
* the memory encoder's projection of the frame features and its positional encoding once per frame.

Everything that depends on the frame alone lives in a :class:`StepContext`, made by :func:`current` from the
frame's vision features and reused by every object of the frame (and by replays of the same frame, since
the session caches it with the features it was made from). Per object, the computation does not depend on
which object came first, so tracking objects together or replaying one alone gives identical results.

Initial conditioning frames (no memory) and mask prompts keep the model's own step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from sam2_pipelines.kernels import fast_memory
from sam2_pipelines.models import families
from sam2_pipelines.models import internals as model_internals


def supported(model) -> bool:
    """Whether :func:`memory_step` computes ``model``'s step (SAM 2 video models; not EdgeTAM)."""
    return families.has(model, "fast_tracking", "video") and fast_memory.supported(model) and model.num_maskmem > 0


@dataclass
class StepContext:
    """A frame's shared work: its features, memory-attention context and memory-encoder inputs."""

    frame: int
    source: torch.Tensor  # the cached top-level features this context was made from
    high_res: list  # high-resolution features for the decoder, (1, C, h, w) each
    attention: fast_memory.FrameContext
    memory_input: dict = field(default_factory=dict)  # projected frame features, memory positional encoding


def current(ctx: StepContext | None, model, state, frame: int) -> StepContext:
    """``ctx`` if it was made from the features the session holds now for ``frame`` (its vision-feature
    cache), else a new :class:`StepContext` of those features."""
    feats, positions = model_internals.vision_features(model, state, frame)
    if ctx is not None and ctx.frame == frame and ctx.source is feats[-1]:
        return ctx
    high_res = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *size) for x, size in zip(feats[:-1], model.backbone_feature_sizes[:-1])]
    attention = fast_memory.FrameContext(feats[-1][:, 0], positions[-1][:, 0])
    return StepContext(frame, feats[-1], high_res, attention)


def encode_memory(model, ctx: StepContext, high_res_masks: torch.Tensor, object_score_logits: torch.Tensor, from_prompts: bool):
    """``model._encode_new_memory`` for one object, with the frame's projected features computed once."""
    encoder = model.memory_encoder
    size = tuple(4 * s for s in model.prompt_encoder.mask_input_size)
    masks = high_res_masks
    if masks.shape[2:] != size:
        masks = F.interpolate(masks.float(), size=size, align_corners=False, mode="bilinear", antialias=True).to(masks.dtype)
    weights = (masks > 0).to(masks.dtype) if from_prompts else torch.sigmoid(masks)
    weights = weights * model.config.sigmoid_scale_for_mem_enc + model.config.sigmoid_bias_for_mem_enc
    shared = ctx.memory_input
    if not shared:
        height, width = model.backbone_feature_sizes[-1]
        pixels = ctx.source.permute(1, 2, 0).view(1, model.hidden_dim, height, width)
        shared["projected"] = encoder.feature_projection(pixels)
    features = encoder.projection(encoder.memory_fuser(shared["projected"] + encoder.mask_downsampler(weights)))
    if "position" not in shared:
        shared["position"] = encoder.position_encoding(features.shape, features.device, features.dtype)
    if model.occlusion_spatial_embedding_parameter is not None:
        hidden = (1 - (object_score_logits > 0).float())[..., None]
        features = features + hidden * model.occlusion_spatial_embedding_parameter[..., None, None].expand(*features.shape)
    maskmem_features = features.to(torch.bfloat16).flatten(2).permute(2, 0, 1)
    maskmem_pos_enc = shared["position"].to(masks.dtype).flatten(2).permute(2, 0, 1)
    return maskmem_features, maskmem_pos_enc


def memory_step(model, state, ctx: StepContext, obj_idx: int, point_inputs, reverse: bool, prev_logits, streaming: bool) -> dict:
    """One object's step on ``ctx.frame`` with its memories: the output the session stores (memory included)."""
    memory, memory_position, num_pointer_tokens = model_internals.memory_inputs(model, state, obj_idx, ctx.frame, reverse, streaming)
    conditioned = fast_memory.condition(model, ctx.attention, memory, memory_position, num_pointer_tokens)
    height, width = model.backbone_feature_sizes[-1]
    pix_feat = conditioned.t().reshape(1, model.hidden_dim, height, width)
    sam = model_internals.decode(model, ctx.high_res + [pix_feat], point_inputs, prev_logits)
    out = {"pred_masks": sam.pred_masks, "object_pointer": sam.object_pointer, "object_score_logits": sam.object_score_logits}
    out["maskmem_features"], out["maskmem_pos_enc"] = encode_memory(model, ctx, sam.high_res_masks, sam.object_score_logits, point_inputs is not None)
    return out
