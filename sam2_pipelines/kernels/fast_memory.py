"""SAM 2 memory attention for the objects of one frame, with the frame's shared work done once.

``Sam2VideoMemoryAttention`` conditions the current frame's features on one object's memory bank. It costs
about 600 GFLOP per object and frame on a full bank (7 memory frames of 64x64 tokens): four layers of
self-attention over the frame's 4096 tokens and cross-attention from those tokens to ~28,700 memory tokens.
This module computes the same function with less work, without approximations (results differ from the
module's only by float rounding):

* **values in the memory's own width.** Cross-attention values are ``v_proj(memory)`` (64 -> 256 channels).
  Since attention rows sum to one, ``softmax(QK^T) @ (M W^T + b) = (softmax(QK^T) @ M) W^T + b``: the
  attention product runs on the 64-channel memory (a quarter of the FLOPs of the 256-channel one) and the
  projection on the 4096 outputs. This removes about 180 GFLOP per object and frame.
* **what depends on the frame alone, once per frame.** The first layer's self-attention reads only the
  current frame's features, so its output, and the first cross-attention's rotated queries, are the same for
  every object (:class:`FrameContext`); the first object computes them, the others reuse them.
* **one projection per input.** Self-attention's query/key/value projections of the same tokens are one GEMM.

On CPUs attention runs in query chunks (one GEMM for the scores, softmax in place, one GEMM against the
memory), since PyTorch's fused CPU kernel needs equal key and value widths; elsewhere
``scaled_dot_product_attention`` takes the 64-channel values directly. Rotary encodings are one complex
product per tensor.

Supported: configurations with one attention head (every SAM 2 / 2.1 checkpoint); :func:`supported` tells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

#: Query rows per chunk of the CPU attention (scores of one chunk: rows x memory tokens floats).
QUERY_CHUNK = 512
#: The CPU attention's key-length buffers (transposed keys, scores) have rows of a multiple of this many floats
#: (64 bytes): with a memory of 28,700 tokens (7 frames of 4,096 and 7 object pointers of 4) every row of them
#: started misaligned, and the two matrix products ran about 20% slower than with 28,704.
ALIGN = 16


def supported(model) -> bool:
    """Whether ``model`` (a ``Sam2VideoModel``) has the memory attention this module computes."""
    attention = getattr(model, "memory_attention", None)
    if attention is None or type(attention).__name__ != "Sam2VideoMemoryAttention":
        return False
    layer = attention.layers[0]
    return layer.self_attn.num_attention_heads == 1 and layer.cross_attn_image.num_attention_heads == 1


def _rotation(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' rotary ``cos``/``sin`` (each value repeated for a channel pair) as unit complex numbers."""
    return torch.complex(cos[..., ::2].float(), sin[..., ::2].float())


def _rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Axial rotary encoding as transformers applies it (channel pairs ``(a, b)`` rotated by the position's
    angles: ``(a cos - b sin, a sin + b cos)``), as one complex product."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, workspace: dict | None = None, capacity: int = 0) -> torch.Tensor:
    """``softmax(query @ key^T * scale) @ value`` for 2-D ``(tokens, channels)`` tensors.

    ``workspace`` (a dict) keeps the CPU path's large buffers (the transposed keys and one chunk's scores)
    between calls, so that they are not allocated, and their pages faulted in, by every call; a buffer that
    has to grow is made large enough for ``capacity`` keys at once (see :func:`full_bank_tokens`). Their rows
    hold the keys rounded up to a multiple of :data:`ALIGN`; the padding keys score ``-inf``, so their softmax
    weights are exactly 0, against zero values (kept in the workspace too)."""
    if query.device.type != "cpu" or key.shape[-1] == value.shape[-1] or torch.is_autocast_enabled("cpu"):
        return F.scaled_dot_product_attention(query[None], key[None], value[None], scale=scale)[0]
    workspace = {} if workspace is None else workspace
    tokens = key.shape[0]
    padded, capacity = _aligned(tokens), _aligned(capacity)  # rows of the key-length buffers start 64-byte aligned
    key_t = _buffer(workspace, "key_t", (key.shape[1], padded), key, key.shape[1] * capacity)
    key_t[:, :tokens].copy_(key.t())
    if padded > tokens:  # padding keys score -inf (weight exactly 0) against zero values
        values = _buffer(workspace, "values", (padded, value.shape[1]), value, value.shape[1] * capacity)
        values[:tokens].copy_(value)
        values[tokens:].zero_()
    else:
        values = value
    out = value.new_empty(query.shape[0], value.shape[1])
    rows_per_chunk = min(QUERY_CHUNK, query.shape[0])
    scores = _buffer(workspace, "scores", (rows_per_chunk, padded), query, rows_per_chunk * capacity)
    for start in range(0, query.shape[0], QUERY_CHUNK):
        rows = query[start : start + QUERY_CHUNK] * scale
        chunk = scores[: rows.shape[0]]
        torch.mm(rows, key_t[:, :tokens], out=chunk[:, :tokens])
        chunk[:, tokens:].fill_(float("-inf"))
        torch.ops.aten._softmax.out(chunk, 1, False, out=chunk)  # in place: one pass over the scores per row
        torch.mm(chunk, values, out=out[start : start + rows.shape[0]])
    return out


def _aligned(count: int) -> int:
    """``count`` rounded up to a multiple of :data:`ALIGN`."""
    return -(-count // ALIGN) * ALIGN


def _buffer(workspace: dict, name: str, shape: tuple, like: torch.Tensor, reserve: int = 0) -> torch.Tensor:
    """A ``shape`` tensor (dtype and device of ``like``, contents undefined) backed by ``workspace[name]``,
    which is reused while it is large enough and otherwise replaced by one of ``max(size, reserve)`` elements.

    Reserving the size of a full memory bank matters: the bank grows by a frame's tokens, then by an object
    pointer's, on each of the first 16 frames, and a buffer grown by that much each time would be allocated
    anew (and its pages faulted in) on every one of them, leaving the smaller ones as holes in the heap."""
    size = math.prod(shape)
    storage = workspace.get(name)
    if storage is None or storage.numel() < size or storage.dtype != like.dtype or storage.device != like.device:
        storage = workspace[name] = like.new_empty(max(size, reserve))
    return storage[:size].view(shape)


def full_bank_tokens(model) -> int:
    """Memory tokens of a full memory bank (``num_maskmem`` frames of memory tokens and the tokens of
    ``max_object_pointers_in_encoder`` object pointers): what the workspace buffers are sized for. More
    conditioning frames than one make a bank larger; the buffers then grow again."""
    config = model.config
    pointer_tokens = config.memory_attention_hidden_size // config.memory_encoder_output_channels
    return config.num_maskmem * math.prod(config.memory_attention_rope_feat_sizes) + config.max_object_pointers_in_encoder * pointer_tokens


@dataclass
class FrameContext:
    """What the memory attention of every object of one frame shares (computed by the first object)."""

    features: torch.Tensor  # (tokens, channels): the frame's top-level features
    position: torch.Tensor  # (tokens, channels): their positional embedding
    shared: dict = field(default_factory=dict)
    #: Large scratch buffers of the CPU path (see :func:`attend`), reused by the frame's layers and objects.
    workspace: dict = field(default_factory=dict)


def _self_attention(attention, hidden: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    weight = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight])
    bias = torch.cat([attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias])
    q, k, v = F.linear(hidden, weight, bias).chunk(3, dim=-1)
    q, k = _rotate(q, rotation), _rotate(k, rotation)
    out = F.scaled_dot_product_attention(q[None], k[None], v[None], scale=attention.scaling)[0]
    return attention.o_proj(out)


def _keys(attention, memory: torch.Tensor, memory_position: torch.Tensor, rotation: torch.Tensor, num_pointer_tokens: int, workspace: dict, capacity: int) -> torch.Tensor:
    """The rotated keys of ``memory`` (memory-frame tokens rotated, repeating ``rotation`` per frame; the
    trailing object-pointer tokens not), computed in a ``workspace`` buffer."""
    projection = attention.k_proj
    tokens = memory.shape[0]
    spatial = tokens - num_pointer_tokens
    if memory.dtype != torch.float32 or torch.is_autocast_enabled(memory.device.type):
        key = projection(memory + memory_position)
        if spatial:
            rotated = _rotate(key[:spatial].view(spatial // rotation.shape[0], rotation.shape[0], -1), rotation).view(spatial, -1)
            key = torch.cat([rotated, key[spatial:]]) if num_pointer_tokens else rotated
        return key
    key = _buffer(workspace, "key", (tokens, projection.out_features), memory, capacity * projection.out_features)
    torch.addmm(projection.bias, memory + memory_position, projection.weight.t(), out=key)  # what F.linear computes
    if spatial:
        pairs = torch.view_as_complex(key[:spatial].view(spatial // rotation.shape[0], rotation.shape[0], -1, 2))
        pairs.mul_(rotation)
    return key


def _cross_attention(attention, query: torch.Tensor, memory: torch.Tensor, memory_position: torch.Tensor, rotation: torch.Tensor, num_pointer_tokens: int, workspace: dict, capacity: int) -> torch.Tensor:
    """Cross-attention of rotated ``query`` (already projected) to ``memory`` (tokens, 64); workspace buffers
    that grow are sized for ``capacity`` memory tokens."""
    key = _keys(attention, memory, memory_position, rotation, num_pointer_tokens, workspace, capacity)
    mixed = attend(query, key, memory, attention.scaling, workspace, capacity)
    return attention.o_proj(attention.v_proj(mixed))


def _feed_forward(layer, hidden: torch.Tensor, workspace: dict) -> torch.Tensor:
    """``linear2(activation(linear1(hidden)))``; for ReLU the wide activations stay in one ``workspace`` buffer."""
    linear1 = layer.linear1
    if type(layer.activation) is not torch.nn.ReLU or hidden.dtype != torch.float32 or torch.is_autocast_enabled(hidden.device.type):
        return layer.linear2(layer.activation(linear1(hidden)))
    wide = _buffer(workspace, "feed_forward", (hidden.shape[0], linear1.out_features), hidden)
    torch.addmm(linear1.bias, hidden, linear1.weight.t(), out=wide)  # what F.linear computes
    return layer.linear2(wide.relu_())


def condition(model, context: FrameContext, memory: torch.Tensor, memory_position: torch.Tensor, num_pointer_tokens: int) -> torch.Tensor:
    """The frame's features conditioned on one object's memory: ``model.memory_attention``'s output.

    Args:
        model: a ``Sam2VideoModel`` (:func:`supported`).
        context: the frame's :class:`FrameContext` (shared by the objects of the frame).
        memory: ``(memory tokens, 1, 64)`` the object's memory features then object-pointer tokens.
        memory_position: their positional embeddings, same shape.
        num_pointer_tokens: how many trailing tokens are object pointers (not rotated).

    Returns:
        ``(tokens, channels)``: the module's output (which is ``(1, 1, tokens, channels)``).
    """
    attention = model.memory_attention
    dtype = context.features.dtype
    memory = memory[:, 0].to(dtype)
    memory_position = memory_position[:, 0].to(dtype)
    shared = context.shared
    if not shared:
        cos, sin = attention.rotary_emb(context.features, attention.position_ids)
        rotation = _rotation(cos[0], sin[0])
        first = attention.layers[0]
        hidden = context.features + 0.1 * context.position
        hidden = hidden + _self_attention(first.self_attn, first.layer_norm1(hidden), rotation)
        cross = first.cross_attn_image
        shared.update(rotation=rotation, hidden=hidden, query=_rotate(cross.q_proj(first.layer_norm2(hidden)), rotation))
    rotation = shared["rotation"]
    hidden = shared["hidden"]
    capacity = full_bank_tokens(model)
    for index, layer in enumerate(attention.layers):
        if index:
            hidden = hidden + _self_attention(layer.self_attn, layer.layer_norm1(hidden), rotation)
            query = _rotate(layer.cross_attn_image.q_proj(layer.layer_norm2(hidden)), rotation)
        else:
            query = shared["query"]
        hidden = hidden + _cross_attention(layer.cross_attn_image, query, memory, memory_position, rotation, num_pointer_tokens, context.workspace, capacity)
        hidden = hidden + _feed_forward(layer, layer.layer_norm3(hidden), context.workspace)
    return attention.layer_norm(hidden)
