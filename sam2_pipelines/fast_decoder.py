"""SAM 2 mask decoding for many prompts on one image, without per-prompt copies of what they share.

transformers' (and Meta's) mask decoder repeats the image embedding, its positional encoding, the
no-mask dense embedding and the high-resolution features for every prompt, then runs the two-way
transformer and the mask upscaling on those copies. With hundreds of grid points per image that is
most of automatic mask generation's time. This module computes the same function with the same
weights, but:

* what depends on the image alone is computed once per image (:class:`ImageContext`): the dense
  input, the first layer's key/value/query projections of the image tokens, the positional terms of
  every later projection, and the high-resolution features in the layout the upscaling reads;
* the image-to-token attention of a layer updates each image token by attention over a handful of
  prompt tokens: per prompt, that update is ``A @ M`` with ``A`` ``(tokens, heads * prompt tokens)`` and
  ``M = V_h @ W_o,h`` (a few rows), never a full ``(tokens, internal dim)`` attention output;
* the projections of a layer that read the same image tokens run as one matrix product;
* the transposed convolutions of the upscaling are per-pixel matrix products in channels-last order,
  and mask upscaling runs only for the prompts whose masks are asked for (:meth:`Decoded.masks`), so
  automatic mask generation can filter on the predicted IoU first, as Meta does, and upscale survivors.

The numbers are those of the model's own forward up to float rounding (sums taken in another order);
the parity suite against Meta checks the records. Models whose decoder does not have SAM 2's
structure, and dense (mask) prompts, keep the model's own forward (:func:`supports`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Model classes whose mask decoder has SAM 2's structure (two-way transformer + high-resolution upscaling).
SUPPORTED_MODELS = ("Sam2Model", "EdgeTamModel", "Sam3TrackerModel")


def supports(model) -> bool:
    """True if ``model``'s mask decoder can run through :class:`ImageContext` / :func:`decode`."""
    decoder = getattr(model, "mask_decoder", None)
    return (
        type(model).__name__ in SUPPORTED_MODELS
        and decoder is not None
        and all(hasattr(decoder, name) for name in ("transformer", "upscale_conv1", "upscale_conv2", "obj_score_token"))
        and hasattr(model, "get_image_wide_positional_embeddings")
    )


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    return F.linear(x, layer.weight, layer.bias)


class ImageContext:
    """Everything the decoder reads that is the same for every prompt of one image (one crop).

    Args:
        model: a model accepted by :func:`supports`.
        image_embeddings: the model's image features for one image, as ``get_image_embeddings`` returns
            them (high-resolution levels first, each with batch size 1).
    """

    def __init__(self, model, image_embeddings: list[torch.Tensor]):
        decoder = model.mask_decoder
        transformer = decoder.transformer
        self.model = model
        self.decoder = decoder
        embedding = image_embeddings[-1]
        if embedding.shape[0] != 1:
            raise ValueError(f"ImageContext takes the features of one image, got a batch of {embedding.shape[0]}")
        _, channels, height, width = embedding.shape
        self.size = (height, width)
        dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        image = (embedding + dense).flatten(2)[0].transpose(0, 1).contiguous()  # (N, C)
        pos = model.get_image_wide_positional_embeddings().to(embedding.dtype).flatten(2)[0].transpose(0, 1).contiguous()
        self.image = image
        first = transformer.layers[0]
        image_pos = image + pos
        #: first layer: token-to-image keys/values and image-to-token queries of the shared image tokens
        self.first_t2i_kv = (_linear(image_pos, first.cross_attn_token_to_image.k_proj), _linear(image, first.cross_attn_token_to_image.v_proj))
        self.first_i2t_q = _linear(image_pos, first.cross_attn_image_to_token.q_proj)
        # later layers and the final attention read per-prompt image tokens: one fused projection each,
        # with the positional part (pos @ W + b) added from here
        self.fused = []
        for layer in list(transformer.layers[1:]) + [None]:
            if layer is None:
                projections = [transformer.final_attn_token_to_image.k_proj, transformer.final_attn_token_to_image.v_proj]
                with_pos = [True, False]
            else:
                projections = [
                    layer.cross_attn_token_to_image.k_proj,
                    layer.cross_attn_token_to_image.v_proj,
                    layer.cross_attn_image_to_token.q_proj,
                ]
                with_pos = [True, False, True]
            weight = torch.cat([p.weight for p in projections]).t().contiguous()  # (C, sum of outputs)
            offset = torch.cat(
                [
                    (F.linear(pos, p.weight, p.bias) if positional else p.bias.expand(len(pos), -1))
                    for p, positional in zip(projections, with_pos)
                ],
                dim=1,
            )  # (N, sum of outputs)
            self.fused.append((weight, offset.contiguous(), [p.out_features for p in projections]))
        # upscaling: transposed 2x2 stride-2 convolutions as per-pixel products, channels last
        feat_s0, feat_s1 = image_embeddings[0], image_embeddings[1]
        conv1, conv2 = decoder.upscale_conv1, decoder.upscale_conv2
        c1, c2 = conv1.out_channels, conv2.out_channels
        self.up1_weight = conv1.weight.permute(0, 2, 3, 1).reshape(conv1.in_channels, 4 * c1)
        s1 = feat_s1[0].reshape(c1, height, 2, width, 2).permute(1, 3, 2, 4, 0).reshape(height * width, 4 * c1)
        self.up1_offset = (s1 + conv1.bias.repeat(4)).contiguous()  # (N, 4 * c1), broadcast over prompts
        self.up2_weight = conv2.weight.permute(0, 2, 3, 1).reshape(conv2.in_channels, 4 * c2)
        s0 = feat_s0[0].reshape(c2, height, 2, 2, width, 2, 2).permute(1, 4, 2, 5, 3, 6, 0)
        self.up2_offset = (s0.reshape(height * width * 4, 4 * c2) + conv2.bias.repeat(4)).contiguous()  # (4N, 4 * c2)
        self.channels = (c1, c2)


def _softmax_(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over ``dim``, in place: ``exp(x - max) / sum``.

    With the prompt tokens on a middle dimension and the image tokens last, every step runs over long
    contiguous rows: several times faster than ``torch.softmax`` over a last dimension of a few tokens.
    """
    scores -= scores.amax(dim=dim, keepdim=True)
    scores.exp_()
    return scores.div_(scores.sum(dim=dim, keepdim=True))


def _heads(attention) -> tuple[int, int]:
    return attention.num_attention_heads, attention.head_dim


def _token_to_image(attention, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Prompt tokens attend to image tokens. ``queries`` (P, T, C); keys/values (N, Ci) shared or (P, N, Ci)."""
    heads, dim = _heads(attention)
    prompts, tokens = queries.shape[:2]
    q = _linear(queries, attention.q_proj).view(prompts, tokens, heads, dim).transpose(1, 2)
    if keys.dim() == 2:
        k = keys.view(1, -1, heads, dim).transpose(1, 2).expand(prompts, -1, -1, -1)
        v = values.view(1, -1, heads, dim).transpose(1, 2).expand(prompts, -1, -1, -1)
    else:
        k = keys.view(prompts, -1, heads, dim).transpose(1, 2)
        v = values.view(prompts, -1, heads, dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, scale=attention.scaling)
    return _linear(out.transpose(1, 2).reshape(prompts, tokens, heads * dim), attention.o_proj)


def _image_to_token(attention, image_queries: torch.Tensor, queries: torch.Tensor, key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image tokens attend to the prompt tokens; returns ``(W (P, heads*T, N), M (P, heads*T, C))``.

    The attention output after ``o_proj`` (less its bias) is ``W^T @ M``: per head, the softmax weights
    over the prompt's ``T`` tokens times ``V_h @ W_o,h``. ``image_queries`` are ``(N, Ci)`` shared by all
    prompts or ``(P, N, Ci)``.
    """
    heads, dim = _heads(attention)
    prompts, tokens = queries.shape[:2]
    k = _linear(queries + key_pe, attention.k_proj).view(prompts, tokens, heads, dim)
    v = _linear(queries, attention.v_proj).view(prompts, tokens, heads, dim)
    # block-diagonal keys: row (h, t) holds head h's key of token t in columns h*dim:(h+1)*dim
    eye = torch.eye(heads, dtype=k.dtype, device=k.device)
    block = k.permute(0, 2, 1, 3)[:, :, :, None, :] * (eye * attention.scaling)[None, :, None, :, None]
    block = block.reshape(prompts, heads * tokens, heads * dim)  # (P, heads*T, Ci)
    if image_queries.dim() == 2:  # shared image queries: one product for every prompt
        scores = torch.mm(block.reshape(prompts * heads * tokens, heads * dim), image_queries.t())
    else:
        scores = torch.bmm(block, image_queries.transpose(1, 2))
    weights = _softmax_(scores.view(prompts, heads, tokens, -1), dim=2).view(prompts, heads * tokens, -1)
    w_o = attention.o_proj.weight.t().reshape(heads, dim, -1)  # (heads, dim, C)
    m = torch.einsum("pthd,hdc->phtc", v, w_o).reshape(prompts, heads * tokens, -1)
    return weights, m


#: Prompts that go through the two-way transformer and the upscaling together. Small groups keep every
#: per-prompt tensor (4 MB of image tokens per prompt at 1024x1024 input) in cache-friendly allocations
#: that the allocator reuses (tensors above glibc's 32 MB mmap threshold are page-faulted in afresh on
#: every allocation). Measured on a 2-core CPU: 2-4 prompts per group fastest, 8 about 30% slower.
GROUP = 4
#: The same on accelerators, where larger batches keep the device busy (not measured here: no GPU).
ACCELERATOR_GROUP = 64


def group_size(device: torch.device) -> int:
    """Prompts per group on ``device`` (:data:`GROUP` on the CPU, :data:`ACCELERATOR_GROUP` elsewhere)."""
    return GROUP if torch.device(device).type == "cpu" else ACCELERATOR_GROUP


class Decoded:
    """The decoder's output for ``P`` prompts of one image: scores now, mask logits on request.

    Attributes:
        iou_scores: ``(P, K)`` predicted IoU of every mask token (token 0 = single-mask output).
        object_score_logits: ``(P, 1)``.
        mask_tokens: ``(P, K, C)`` the mask tokens after the two-way transformer.
    """

    def __init__(self, context: ImageContext, image_tokens: list[torch.Tensor], mask_tokens, iou_scores, object_score_logits):
        self.context = context
        self.group = group_size(context.image.device)
        self.image_tokens = image_tokens  # per group of `group` prompts: (g, N, C) after the two-way transformer
        self.mask_tokens = mask_tokens
        self.iou_scores = iou_scores
        self.object_score_logits = object_score_logits

    def masks(self, rows=None) -> torch.Tensor:
        """Low-resolution logits ``(len(rows), K, 4h, 4w)`` of every mask token for the prompts ``rows``."""
        rows = torch.arange(len(self.mask_tokens)) if rows is None else torch.as_tensor(rows, dtype=torch.long).flatten()
        height, width = self.context.size
        out = self.mask_tokens.new_empty(len(rows), self.mask_tokens.shape[1], 4 * height, 4 * width)
        groups = rows // self.group
        for group in torch.unique(groups).tolist():
            where = torch.nonzero(groups == group).flatten()
            tokens = self.image_tokens[group]
            local = rows[where] - group * self.group
            if len(local) != len(tokens) or not torch.equal(local, torch.arange(len(tokens))):
                tokens = tokens[local]
            out[where] = self._upscale(tokens, self.mask_tokens[rows[where]])
        return out

    def _upscale(self, image_tokens: torch.Tensor, mask_tokens: torch.Tensor) -> torch.Tensor:
        """Upscaling convolutions + hypernetwork for ``g`` prompts: ``(g, K, 4h, 4w)`` logits."""
        ctx, decoder = self.context, self.context.decoder
        prompts, n = image_tokens.shape[:2]
        height, width = ctx.size
        c1, c2 = ctx.channels
        up = torch.matmul(image_tokens, ctx.up1_weight).add_(ctx.up1_offset)  # (g, N, 4 * c1)
        norm = decoder.upscale_layer_norm
        up = decoder.activation(F.layer_norm(up.view(-1, c1), (c1,), norm.weight, norm.bias, norm.eps))
        up = torch.matmul(up.view(prompts, n * 4, c1), ctx.up2_weight).add_(ctx.up2_offset)  # (g, 4N, 4 * c2)
        up = decoder.activation(up).view(prompts, n * 16, c2)
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
        masks = torch.bmm(hyper, up.transpose(1, 2))  # (g, K, 16N) in (i, j, a, b, a', b') order
        k = masks.shape[1]
        masks = masks.view(prompts, k, height, width, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
        return masks.reshape(prompts, k, 4 * height, 4 * width)


@torch.no_grad()
def decode(context: ImageContext, points=None, labels=None, boxes=None) -> Decoded:
    """Run prompt encoder and two-way transformer for ``P`` prompts of one image.

    ``points`` ``(P, n, 2)`` and ``labels`` ``(P, n)`` / ``boxes`` ``(P, 4)`` in model input coordinates,
    as the model's ``input_points`` / ``input_labels`` / ``input_boxes`` for one image.
    """
    model, decoder = context.model, context.decoder
    dtype = context.image.dtype
    if points is None and boxes is None:
        raise ValueError("decode needs points or boxes")
    if points is not None:
        points = points[None].to(dtype)
        labels = labels[None]
    if boxes is not None:
        boxes = boxes[None].to(dtype)
    sparse, _ = model.prompt_encoder(input_points=points, input_labels=labels, input_boxes=boxes, input_masks=None)
    sparse = sparse[0]  # (P, S, C)
    output_tokens = torch.cat([decoder.obj_score_token.weight, decoder.iou_token.weight, decoder.mask_tokens.weight])
    tokens = torch.cat([output_tokens.expand(len(sparse), -1, -1), sparse.to(output_tokens.dtype)], dim=1)  # (P, T, C)
    image_tokens, queries = [], []
    group = group_size(context.image.device)
    for start in range(0, len(tokens), group):
        group_queries, group_image_tokens = _two_way(context, tokens[start : start + group])
        queries.append(group_queries)
        image_tokens.append(group_image_tokens)
    queries = torch.cat(queries)
    iou_scores = decoder.iou_prediction_head(queries[:, 1])
    object_score_logits = decoder.pred_obj_score_head(queries[:, 0])
    mask_tokens = queries[:, 2 : 2 + decoder.num_mask_tokens]
    return Decoded(context, image_tokens, mask_tokens, iou_scores, object_score_logits)


def _two_way(context: ImageContext, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-way transformer for prompt tokens ``(P, T, C)``: returns ``(queries, image tokens (P, N, C))``."""
    transformer = context.decoder.transformer
    prompts = len(tokens)
    queries, query_pe = tokens, tokens
    image_tokens = None  # shared until the first image-to-token update
    for index, layer in enumerate(transformer.layers):
        # self-attention of the prompt tokens (the module's own forward: shapes (1, P, T, C))
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(query=queries[None], key=queries[None], value=queries[None])[0][0]
        else:
            q = (queries + query_pe)[None]
            queries = queries + layer.self_attn(query=q, key=q, value=queries[None])[0][0]
        queries = layer.layer_norm1(queries)
        if image_tokens is None:
            keys, values = context.first_t2i_kv
            image_queries = context.first_i2t_q
            base = context.image
        else:
            weight, offset, sizes = context.fused[index - 1]
            projected = torch.matmul(image_tokens, weight).add_(offset)
            keys, values, image_queries = projected.split(sizes, dim=-1)
            base = image_tokens
        queries = layer.layer_norm2(queries + _token_to_image(layer.cross_attn_token_to_image, queries + query_pe, keys, values))
        queries = layer.layer_norm3(queries + layer.mlp(queries))
        attention = layer.cross_attn_image_to_token
        weights, m = _image_to_token(attention, image_queries, queries, query_pe)
        update = torch.baddbmm((base + attention.o_proj.bias).expand(prompts, -1, -1), weights.transpose(1, 2), m)
        image_tokens = layer.layer_norm4(update)
    weight, offset, sizes = context.fused[-1]
    keys, values = torch.matmul(image_tokens, weight).add_(offset).split(sizes, dim=-1)
    final = transformer.final_attn_token_to_image
    queries = transformer.layer_norm_final_attn(queries + _token_to_image(final, queries + query_pe, keys, values))
    return queries, image_tokens


def select_outputs(logits: torch.Tensor, iou_scores: torch.Tensor, multimask_output: bool, decoder):
    """The decoder's choice of outputs from all mask tokens ``(P, K, ...)``, as its forward makes it.

    Multimask output: tokens ``1..``. Single mask: token 0, or, with ``dynamic_multimask_via_stability``,
    the best-scoring multimask token where token 0's stability score is below the threshold.
    """
    if multimask_output:
        return logits[:, 1:], iou_scores[:, 1:]
    if not (decoder.dynamic_multimask_via_stability and not decoder.training):
        return logits[:, :1], iou_scores[:, :1]
    best = iou_scores[:, 1:].argmax(dim=-1) + 1  # (P,)
    rows = torch.arange(len(logits), device=logits.device)
    single = logits[:, 0].flatten(1)
    delta = decoder.dynamic_multimask_stability_delta
    area_i = (single > delta).sum(dim=-1).float()
    area_u = (single > -delta).sum(dim=-1).float()
    stability = torch.where(area_u > 0, area_i / area_u, 1.0)
    stable = stability >= decoder.dynamic_multimask_stability_thresh
    choice = torch.where(stable, torch.zeros_like(best), best)
    return logits[rows, choice][:, None], iou_scores[rows, choice][:, None]
