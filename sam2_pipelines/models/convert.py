"""Meta SAM 2 / SAM 2.1 checkpoints (``.pt``) -> ``transformers`` ``Sam2Model`` / ``Sam2VideoModel``.

Meta's training and release code saves ``{"model": state_dict, ...}`` with ``torch.save``. This module
reads such a file with ``torch.load(weights_only=True)`` (never unpickling arbitrary objects), works out
the Hiera size (tiny / small / base+ / large) and the SAM 2 / SAM 2.1 variant from the tensors' names
and shapes, renames every tensor to its ``transformers`` name and builds the matching config and
processor.

Every key of the checkpoint must be accounted for: a key the mapping does not know, or a model weight
the checkpoint does not provide, raises :class:`CheckpointConversionError` listing them. When an image
model (``Sam2Model``) is requested, the memory-side tensors of the checkpoint (memory attention, memory
encoder, object pointers, ...) are known to be unused by that model and are left out on purpose.

Public API::

    model, processor = load_checkpoint("sam2.1_hiera_tiny.pt", kind="video")
    convert_checkpoint("sam2.1_hiera_tiny.pt", "sam2.1-hiera-tiny-hf", kind="video")
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from sam2_pipelines.models import families

#: Accepted values of ``kind``: the transformers model class each one produces.
KINDS = {"video": families.named("sam2").video_class, "image": families.named("sam2").image_class}

#: Input resolution of every released SAM 2 / 2.1 model (Meta's configs use ``image_size: 1024``).
IMAGE_SIZE = 1024


@dataclass(frozen=True)
class HieraSize:
    """Backbone hyper-parameters of one SAM 2 size, as in Meta's ``configs/sam2.1/sam2.1_hiera_*.yaml``."""

    name: str
    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int]
    window_spec: tuple[int, ...] = (8, 4, 14, 7)


#: The four released sizes. ``num_heads`` is not visible in the weights, hence this table.
SIZES = {
    "tiny": HieraSize("tiny", 96, 1, (1, 2, 7, 2), (5, 7, 9), (7, 7)),
    "small": HieraSize("small", 96, 1, (1, 2, 11, 2), (7, 10, 13), (7, 7)),
    "base_plus": HieraSize("base_plus", 112, 2, (2, 3, 16, 3), (12, 16, 20), (14, 14)),
    "large": HieraSize("large", 144, 2, (2, 6, 36, 4), (23, 33, 43), (7, 7), (8, 4, 16, 8)),
}

#: Other spellings accepted for ``size=``.
SIZE_ALIASES = {
    "t": "tiny", "hiera_t": "tiny", "hiera_tiny": "tiny",
    "s": "small", "hiera_s": "small", "hiera_small": "small",
    "b+": "base_plus", "base+": "base_plus", "base-plus": "base_plus", "b": "base_plus", "hiera_b+": "base_plus",
    "hiera_base_plus": "base_plus",
    "l": "large", "hiera_l": "large", "hiera_large": "large",
}

#: Top-level prefixes of Meta's state dict that only the video model uses.
VIDEO_ONLY_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "mask_downsample.",
)


class CheckpointConversionError(ValueError):
    """The checkpoint cannot be converted: unreadable layout, unknown or missing tensors, unknown size."""


# --------------------------------------------------------------------------------------------------
# Reading the checkpoint
# --------------------------------------------------------------------------------------------------


def read_state_dict(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load the model state dict of a Meta SAM 2 checkpoint with ``torch.load(weights_only=True)``.

    The tensors are expected under ``"model"`` (Meta's release and training format). A bare state dict
    (a mapping of names to tensors with Meta's ``image_encoder.`` / ``sam_mask_decoder.`` names) is
    accepted too. Anything else raises :class:`CheckpointConversionError`.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors of every kind: report them uniformly
        raise CheckpointConversionError(
            f"{str(path)!r} could not be read with torch.load(weights_only=True): {error}. Expected a Meta SAM 2 "
            "checkpoint saved with torch.save({'model': state_dict})."
        ) from error
    if isinstance(payload, dict) and "model" in payload and isinstance(payload["model"], dict):
        state_dict = payload["model"]
    elif isinstance(payload, dict) and any(str(k).startswith("image_encoder.") for k in payload):
        state_dict = payload
    else:
        found = sorted(map(str, payload))[:10] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointConversionError(
            f"{str(path)!r} is not a Meta SAM 2 checkpoint: expected a dict with the state dict under 'model', "
            f"found {found}."
        )
    not_tensors = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointConversionError(f"the state dict holds non-tensor entries: {not_tensors}")
    return dict(state_dict)


# --------------------------------------------------------------------------------------------------
# Size and variant detection
# --------------------------------------------------------------------------------------------------


def _blocks_per_stage(state_dict: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Count Hiera blocks per stage: a stage starts at every block with a ``proj`` (channel change)."""
    pattern = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")
    indices = sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})
    if not indices or indices != list(range(len(indices))):
        raise CheckpointConversionError("the checkpoint has no consecutive image_encoder.trunk.blocks.N tensors")
    starts = [0] + [i for i in indices if f"image_encoder.trunk.blocks.{i}.proj.weight" in state_dict]
    ends = starts[1:] + [len(indices)]
    return tuple(end - start for start, end in zip(starts, ends))


def detect_size(state_dict: dict[str, torch.Tensor]) -> HieraSize:
    """Return the :class:`HieraSize` whose embedding width and blocks per stage match the weights."""
    try:
        embed_dim = state_dict["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    except KeyError:
        raise CheckpointConversionError(
            "the checkpoint has no image_encoder.trunk.patch_embed.proj.weight: not a SAM 2 (Hiera) checkpoint"
        ) from None
    stages = _blocks_per_stage(state_dict)
    for size in SIZES.values():
        if size.embed_dim == embed_dim and size.stages == stages:
            return size
    known = ", ".join(f"{s.name} (width {s.embed_dim}, blocks {list(s.stages)})" for s in SIZES.values())
    raise CheckpointConversionError(
        f"unknown Hiera size: width {embed_dim}, blocks per stage {list(stages)}. Known sizes: {known}."
    )


def resolve_size(size: str | HieraSize | None, state_dict: dict[str, torch.Tensor]) -> HieraSize:
    """Resolve an explicit ``size`` name (or ``None`` to detect it) and check it against the weights."""
    detected = detect_size(state_dict)
    if size is None:
        return detected
    if isinstance(size, HieraSize):
        chosen = size
    else:
        key = str(size).lower().replace("sam2.1_", "").replace("sam2_", "")
        key = SIZE_ALIASES.get(key, key)
        if key not in SIZES:
            accepted = ", ".join(list(SIZES) + sorted(SIZE_ALIASES))
            raise ValueError(f"unknown size {size!r}; accepted: {accepted}")
        chosen = SIZES[key]
    if (chosen.embed_dim, chosen.stages) != (detected.embed_dim, detected.stages):
        raise CheckpointConversionError(
            f"size {chosen.name!r} was requested but the weights are those of {detected.name!r}"
        )
    return chosen


def is_sam2_1(state_dict: dict[str, torch.Tensor]) -> bool:
    """True for SAM 2.1 weights (occlusion spatial embedding and projected object-pointer time encoding)."""
    return "no_obj_embed_spatial" in state_dict


def has_video_weights(state_dict: dict[str, torch.Tensor]) -> bool:
    """True when the checkpoint carries the memory modules needed by the video model."""
    return any(k.startswith("memory_attention.") for k in state_dict)


# --------------------------------------------------------------------------------------------------
# Config and processor
# --------------------------------------------------------------------------------------------------


def _sub_configs(size: HieraSize) -> dict:
    """Vision / prompt-encoder / mask-decoder sub-config dicts shared by the image and video configs."""
    dims = [size.embed_dim * 2**i for i in range(4)]
    backbone = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=size.embed_dim,
        num_attention_heads=size.num_heads,
        blocks_per_stage=list(size.stages),
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[size.num_heads * 2**i for i in range(4)],
        window_size_per_stage=list(size.window_spec),
        global_attention_blocks=list(size.global_att_blocks),
        window_positional_embedding_background_size=list(size.window_pos_embed_bkg_spatial_size),
        image_size=[IMAGE_SIZE, IMAGE_SIZE],
    )
    vision = dict(
        backbone_config=backbone,
        backbone_channel_list=dims[::-1],
        backbone_feature_sizes=[[IMAGE_SIZE // 4] * 2, [IMAGE_SIZE // 8] * 2, [IMAGE_SIZE // 16] * 2],
    )
    return dict(vision_config=vision, prompt_encoder_config=dict(image_size=IMAGE_SIZE), mask_decoder_config={})


def build_config(size: HieraSize, kind: str, sam2_1: bool = True):
    """The ``Sam2Config`` (``kind="image"``) or ``Sam2VideoConfig`` (``kind="video"``) of a Meta model."""
    import transformers as tf

    _check_kind(kind)
    if kind == "image":
        return tf.Sam2Config(**_sub_configs(size))
    return tf.Sam2VideoConfig(
        **_sub_configs(size),
        image_size=IMAGE_SIZE,
        enable_occlusion_spatial_embedding=sam2_1,
        enable_temporal_pos_encoding_for_object_pointers=sam2_1,
    )


def build_processor(kind: str):
    """The processor matching Meta's preprocessing: 1024x1024 resize, ImageNet normalisation."""
    import transformers as tf

    _check_kind(kind)
    image_processor = tf.Sam2ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    if kind == "image":
        return tf.Sam2Processor(image_processor=image_processor, target_size=IMAGE_SIZE)
    video_processor = tf.Sam2VideoVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return tf.Sam2VideoProcessor(
        image_processor=image_processor, video_processor=video_processor, target_size=IMAGE_SIZE
    )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; accepted: {', '.join(KINDS)} (or None to pick from the weights)")


# --------------------------------------------------------------------------------------------------
# Key mapping
# --------------------------------------------------------------------------------------------------

#: (pattern, replacement) applied in order, each at most once, to every Meta key. Patterns are anchored.
_RULES: list[tuple[str, str]] = [
    # image encoder: Hiera trunk and FPN neck
    (r"^image_encoder\.trunk\.patch_embed\.proj\.", "vision_encoder.backbone.patch_embed.projection."),
    (r"^image_encoder\.trunk\.(pos_embed|pos_embed_window)$", r"vision_encoder.backbone.\1"),
    (r"^image_encoder\.trunk\.blocks\.(\d+)\.norm(\d)\.", r"vision_encoder.backbone.blocks.\1.layer_norm\2."),
    (r"^image_encoder\.trunk\.blocks\.(\d+)\.(attn\.qkv|attn\.proj|proj)\.", r"vision_encoder.backbone.blocks.\1.\2."),
    (r"^image_encoder\.trunk\.blocks\.(\d+)\.mlp\.", r"vision_encoder.backbone.blocks.\1.mlp."),
    (r"^image_encoder\.neck\.convs\.(\d+)\.conv\.", r"vision_encoder.neck.convs.\1."),
    # prompt encoder
    (r"^sam_prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^sam_prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^sam_prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^sam_prompt_encoder\.(no_mask_embed|not_a_point_embed)\.weight$", r"prompt_encoder.\1.weight"),
    # mask decoder
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.", r"mask_decoder.transformer.layers.\1.layer_norm\2."),
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.(\w+)\.out_proj\.", r"mask_decoder.transformer.layers.\1.\2.o_proj."),
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.(\w+)\.([qkv]_proj)\.", r"mask_decoder.transformer.layers.\1.\2.\3."),
    (r"^sam_mask_decoder\.transformer\.layers\.(\d+)\.mlp\.", r"mask_decoder.transformer.layers.\1.mlp."),
    (r"^sam_mask_decoder\.transformer\.final_attn_token_to_image\.out_proj\.", "mask_decoder.transformer.final_attn_token_to_image.o_proj."),
    (r"^sam_mask_decoder\.transformer\.final_attn_token_to_image\.([qkv]_proj)\.", r"mask_decoder.transformer.final_attn_token_to_image.\1."),
    (r"^sam_mask_decoder\.transformer\.norm_final_attn\.", "mask_decoder.transformer.layer_norm_final_attn."),
    (r"^sam_mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^sam_mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^sam_mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    (r"^sam_mask_decoder\.(iou_token|mask_tokens|obj_score_token)\.weight$", r"mask_decoder.\1.weight"),
    (r"^sam_mask_decoder\.(conv_s0|conv_s1)\.", r"mask_decoder.\1."),
    (r"^sam_mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)\.", r"mask_decoder.\1."),
    # memory attention
    (r"^memory_attention\.layers\.(\d+)\.norm(\d)\.", r"memory_attention.layers.\1.layer_norm\2."),
    (r"^memory_attention\.layers\.(\d+)\.(self_attn|cross_attn_image)\.out_proj\.", r"memory_attention.layers.\1.\2.o_proj."),
    (r"^memory_attention\.layers\.(\d+)\.(self_attn|cross_attn_image)\.([qkv]_proj)\.", r"memory_attention.layers.\1.\2.\3."),
    (r"^memory_attention\.layers\.(\d+)\.(linear1|linear2)\.", r"memory_attention.layers.\1.\2."),
    (r"^memory_attention\.norm\.", "memory_attention.layer_norm."),
    # memory encoder
    (r"^memory_encoder\.pix_feat_proj\.", "memory_encoder.feature_projection."),
    (r"^memory_encoder\.out_proj\.", "memory_encoder.projection."),
    (r"^memory_encoder\.fuser\.layers\.(\d+)\.gamma$", r"memory_encoder.memory_fuser.layers.\1.scale"),
    (r"^memory_encoder\.fuser\.layers\.(\d+)\.dwconv\.", r"memory_encoder.memory_fuser.layers.\1.depthwise_conv."),
    (r"^memory_encoder\.fuser\.layers\.(\d+)\.norm\.", r"memory_encoder.memory_fuser.layers.\1.layer_norm."),
    (r"^memory_encoder\.fuser\.layers\.(\d+)\.pwconv(\d)\.", r"memory_encoder.memory_fuser.layers.\1.pointwise_conv\2."),
    # top-level video parameters
    (r"^maskmem_tpos_enc$", "memory_temporal_positional_encoding"),
    (r"^no_mem_embed$", "no_memory_embedding"),
    (r"^no_mem_pos_enc$", "no_memory_positional_encoding"),
    (r"^no_obj_ptr$", "no_object_pointer"),
    (r"^no_obj_embed_spatial$", "occlusion_spatial_embedding_parameter"),
    (r"^obj_ptr_proj\.", "object_pointer_proj."),
    (r"^obj_ptr_tpos_proj\.", "temporal_positional_encoding_projection_layer."),
    (r"^mask_downsample\.", "mask_downsample."),
]
_COMPILED_RULES = [(re.compile(p), r) for p, r in _RULES]

#: Meta's MLP modules (``layers.0 .. layers.{n-1}``) become ``proj_in``, ``layers.0 .. layers.{n-3}``, ``proj_out``.
_MLP_PREFIXES = re.compile(
    r"^(vision_encoder\.backbone\.blocks\.\d+\.mlp|mask_decoder\.transformer\.layers\.\d+\.mlp|"
    r"mask_decoder\.output_hypernetworks_mlps\.\d+|mask_decoder\.iou_prediction_head|"
    r"mask_decoder\.pred_obj_score_head|object_pointer_proj)\.layers\.(\d+)\.(weight|bias)$"
)
_MASK_DOWNSAMPLER = re.compile(r"^memory_encoder\.mask_downsampler\.encoder\.(\d+)\.(weight|bias)$")
_POINT_EMBEDDING = re.compile(r"^sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$")
_GAUSSIAN = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"


def _rename(key: str) -> str | None:
    """Apply the first matching rule to ``key``; ``None`` when no rule knows it."""
    for pattern, replacement in _COMPILED_RULES:
        new, count = pattern.subn(replacement, key)
        if count:
            return new
    return None


def _mlp_layer_names(state_dict: dict[str, torch.Tensor]) -> dict[str, str]:
    """Renames for the numbered layers of every MLP: first -> proj_in, last -> proj_out, others shift by one."""
    depth: dict[str, int] = {}
    for key in state_dict:
        match = _MLP_PREFIXES.match(key)
        if match:
            depth[match.group(1)] = max(depth.get(match.group(1), 0), int(match.group(2)) + 1)
    renames = {}
    for key in state_dict:
        match = _MLP_PREFIXES.match(key)
        if not match:
            continue
        prefix, index, leaf = match.group(1), int(match.group(2)), match.group(3)
        if index == 0:
            name = "proj_in"
        elif index == depth[prefix] - 1:
            name = "proj_out"
        else:
            name = f"layers.{index - 1}"
        renames[key] = f"{prefix}.{name}.{leaf}"
    return renames


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], kind: str = "video"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a Meta SAM 2 state dict to ``transformers`` names.

    Args:
        state_dict: Meta's model state dict (the ``"model"`` entry of a checkpoint).
        kind: ``"video"`` for ``Sam2VideoModel`` or ``"image"`` for ``Sam2Model``; with ``"image"`` the
            video-only tensors (see :data:`VIDEO_ONLY_PREFIXES`) are left out.

    Returns:
        ``(converted, unknown)``: the renamed tensors and the Meta keys no rule knows (the caller decides
        to raise; :func:`load_checkpoint` always does).
    """
    _check_kind(kind)
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    point_embeddings: dict[int, torch.Tensor] = {}
    renamed = {}
    for key in state_dict:
        if kind == "image" and key.startswith(VIDEO_ONLY_PREFIXES):
            continue
        if key == _GAUSSIAN or _POINT_EMBEDDING.match(key) or _MASK_DOWNSAMPLER.match(key):
            continue
        new = _rename(key)
        if new is None:
            unknown.append(key)
        else:
            renamed[new] = state_dict[key]
    mlp_renames = _mlp_layer_names(renamed)
    for key, value in renamed.items():
        converted[mlp_renames.get(key, key)] = value

    for key, value in state_dict.items():
        if match := _POINT_EMBEDDING.match(key):
            point_embeddings[int(match.group(1))] = value
        elif key == _GAUSSIAN:
            # one random Fourier matrix, shared by the prompt encoder and the image positional embedding
            converted["prompt_encoder.shared_embedding.positional_embedding"] = value
            converted["shared_image_embedding.positional_embedding"] = value
    if point_embeddings:
        if sorted(point_embeddings) != list(range(len(point_embeddings))):
            unknown.extend(f"sam_prompt_encoder.point_embeddings.{i}.weight" for i in sorted(point_embeddings))
        else:
            converted["prompt_encoder.point_embed.weight"] = torch.cat(
                [point_embeddings[i] for i in range(len(point_embeddings))], dim=0
            )
    if kind == "video":
        converted.update(_convert_mask_downsampler(state_dict, unknown))
    return converted, sorted(unknown)


def _convert_mask_downsampler(state_dict: dict[str, torch.Tensor], unknown: list[str]) -> dict[str, torch.Tensor]:
    """Meta's ``nn.Sequential`` (conv, norm, act) x N + final conv -> ``layers.i.conv/layer_norm`` + ``final_conv``."""
    entries = {}
    for key in state_dict:
        if match := _MASK_DOWNSAMPLER.match(key):
            entries[key] = (int(match.group(1)), match.group(2))
    if not entries:
        return {}
    last = max(index for index, _ in entries.values())
    out = {}
    for key, (index, leaf) in entries.items():
        if index == last:
            out[f"memory_encoder.mask_downsampler.final_conv.{leaf}"] = state_dict[key]
        elif index % 3 == 0:
            out[f"memory_encoder.mask_downsampler.layers.{index // 3}.conv.{leaf}"] = state_dict[key]
        elif index % 3 == 1:
            out[f"memory_encoder.mask_downsampler.layers.{index // 3}.layer_norm.{leaf}"] = state_dict[key]
        else:
            unknown.append(key)
    return out


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def _model_from_state_dict(state_dict: dict[str, torch.Tensor], kind: str | None, size):
    """Build the transformers model for ``state_dict`` and load the converted weights strictly."""
    import transformers as tf

    hiera = resolve_size(size, state_dict)
    video = has_video_weights(state_dict)
    if kind is None:
        kind = "video" if video else "image"
    _check_kind(kind)
    if kind == "video" and not video:
        raise CheckpointConversionError(
            "kind='video' needs the memory modules (memory_attention.*, memory_encoder.*), which this checkpoint "
            "does not have; use kind='image'."
        )
    converted, unknown = convert_state_dict(state_dict, kind)
    if unknown:
        raise CheckpointConversionError(f"{len(unknown)} checkpoint tensor(s) have no transformers counterpart: {unknown}")
    config = build_config(hiera, kind, sam2_1=is_sam2_1(state_dict))
    from transformers.initialization import no_init_weights

    with no_init_weights():  # every persistent tensor is overwritten below: skip the random initialisation
        model = getattr(tf, KINDS[kind])(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise CheckpointConversionError(
            f"the converted checkpoint does not fit {KINDS[kind]} ({hiera.name}): "
            f"missing {missing}; unexpected {unexpected}"
        )
    wrong_shape = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in converted.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong_shape:
        raise CheckpointConversionError(f"tensor shapes do not match {KINDS[kind]} ({hiera.name}): {wrong_shape}")
    model.load_state_dict(converted, strict=True)
    model.eval()
    return model, kind


def load_checkpoint(
    checkpoint_path: str | os.PathLike, kind: str | None = None, size: str | None = None
):
    """Load a Meta SAM 2 / 2.1 ``.pt`` checkpoint as a ``transformers`` model and processor.

    Args:
        checkpoint_path: path to the ``.pt`` file (read with ``torch.load(weights_only=True)``; the state
            dict under ``"model"``).
        kind: ``"video"`` -> ``Sam2VideoModel`` + ``Sam2VideoProcessor``; ``"image"`` -> ``Sam2Model`` +
            ``Sam2Processor``; ``None`` -> video when the checkpoint has memory modules (every released
            checkpoint does), image otherwise.
        size: ``"tiny"``, ``"small"``, ``"base_plus"`` (``"b+"``) or ``"large"``; ``None`` detects it from the
            weights. An explicit size that disagrees with the weights is an error.

    Returns:
        ``(model, processor)``, the model in eval mode on CPU in float32.

    Raises:
        CheckpointConversionError: unreadable file, unknown size, or checkpoint tensors without a
            counterpart / model weights without a checkpoint tensor (all of them are listed).
    """
    if kind is not None:
        _check_kind(kind)
    state_dict = read_state_dict(checkpoint_path)
    model, kind = _model_from_state_dict(state_dict, kind, size)
    model.name_or_path = str(checkpoint_path)
    return model, build_processor(kind)


def convert_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    kind: str | None = "video",
    size: str | None = None,
) -> Path:
    """Convert a Meta SAM 2 / 2.1 checkpoint and ``save_pretrained`` the model and its processor.

    The output directory then loads with ``Sam2VideoModel.from_pretrained`` / ``Sam2Model.from_pretrained``
    and with ``transformers.pipeline("video-object-tracking" | "mask-generation", model=output_dir)``.
    A video checkpoint directory serves both tasks: the mask-generation pipeline loads its image side.

    Args:
        checkpoint_path: the Meta ``.pt`` file.
        output_dir: directory to write (created if needed).
        kind: ``"video"`` (default), ``"image"`` or ``None`` (see :func:`load_checkpoint`).
        size: explicit Hiera size or ``None`` to detect it.

    Returns:
        ``output_dir`` as a :class:`pathlib.Path`.
    """
    model, processor = load_checkpoint(checkpoint_path, kind=kind, size=size)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    return output


def is_meta_checkpoint_path(model) -> bool:
    """True when ``model`` is a path (str or PathLike) to an existing ``.pt`` / ``.pth`` file."""
    if not isinstance(model, (str, os.PathLike)):
        return False
    path = Path(model)
    return path.suffix in (".pt", ".pth") and path.is_file()


__all__ = [
    "CheckpointConversionError",
    "HieraSize",
    "SIZES",
    "build_config",
    "build_processor",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_size",
    "is_meta_checkpoint_path",
    "load_checkpoint",
    "read_state_dict",
]
