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
  prompt tokens: per prompt, that update is ``W^T @ M`` with softmax weights ``W`` ``(heads * prompt
  tokens, image tokens)`` and ``M = V_h @ W_o,h`` (a few rows), never a full ``(tokens, internal dim)``
  attention output followed by the output projection;
* the projections of a layer that read the same image tokens run as one matrix product;
* the transposed convolutions of the upscaling are per-pixel matrix products in channels-last order,
  and mask upscaling runs only for the prompts whose masks are asked for (``masks_for`` of
  :func:`decode`), so automatic mask generation can filter on the predicted IoU first, as Meta does,
  and upscale survivors only.

The numbers are those of the model's own forward up to float rounding (sums taken in another order);
the parity suite against Meta checks the records. Models whose decoder does not have SAM 2's
structure, and dense (mask) prompts, keep the model's own forward (:func:`supports`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sam2_pipelines.models import families



def supports(model) -> bool:
    """True if ``model``'s mask decoder can run through :class:`ImageContext` / :func:`decode`."""
    decoder = getattr(model, "mask_decoder", None)
    return (
        families.has(model, "fast_decoder", "image")  # SAM 2's decoder: two-way transformer + upscaling
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

    @torch.no_grad()
    def __init__(self, model, image_embeddings: list[torch.Tensor]):
        decoder = model.mask_decoder
        transformer = decoder.transformer
        self.model = model
        self.decoder = decoder
        embedding = image_embeddings[-1]
        if embedding.shape[0] != 1:
            raise ValueError(f"ImageContext takes the features of one image, got a batch of {embedding.shape[0]}")
        height, width = embedding.shape[-2:]
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
#: every allocation). Measured on a 2-core CPU with the full-size hiera-tiny: 2 and 4 prompts per group
#: equally fast, 1 about 10% slower, 8 about 30% slower; 2 peaks about 130 MB lower than 4.
GROUP = 2
#: The same on accelerators, where larger batches keep the device busy (not measured here: no GPU).
ACCELERATOR_GROUP = 64


def group_size(device: torch.device) -> int:
    """Prompts per group on ``device`` (:data:`GROUP` on the CPU, :data:`ACCELERATOR_GROUP` elsewhere)."""
    return GROUP if torch.device(device).type == "cpu" else ACCELERATOR_GROUP


def all_rows(iou_scores: torch.Tensor) -> torch.Tensor:
    """Default ``masks_for`` of :func:`decode`: every prompt's masks."""
    return torch.ones(len(iou_scores), dtype=torch.bool, device=iou_scores.device)


class Decoded:
    """The decoder's output for ``P`` prompts of one image.

    Attributes:
        iou_scores: ``(P, K)`` predicted IoU of every mask token (token 0 = single-mask output).
        object_score_logits: ``(P, 1)``.
        mask_rows: ``(R,)`` indices (ascending) of the prompts whose masks were computed.
        mask_logits: ``(R, K, 4h, 4w)`` low-resolution logits of every mask token of those prompts.
    """

    def __init__(self, iou_scores, object_score_logits, mask_rows, mask_logits):
        self.iou_scores = iou_scores
        self.object_score_logits = object_score_logits
        self.mask_rows = mask_rows
        self.mask_logits = mask_logits


def _upscale(context: ImageContext, image_tokens: torch.Tensor, mask_tokens: torch.Tensor) -> torch.Tensor:
    """Upscaling convolutions + hypernetwork for ``g`` prompts: ``(g, K, 4h, 4w)`` logits."""
    decoder = context.decoder
    prompts, n = image_tokens.shape[:2]
    height, width = context.size
    c1, c2 = context.channels
    up = torch.matmul(image_tokens, context.up1_weight).add_(context.up1_offset)  # (g, N, 4 * c1)
    norm = decoder.upscale_layer_norm
    up = decoder.activation(F.layer_norm(up.view(-1, c1), (c1,), norm.weight, norm.bias, norm.eps))
    up = torch.matmul(up.view(prompts, n * 4, c1), context.up2_weight).add_(context.up2_offset)  # (g, 4N, 4 * c2)
    up = decoder.activation(up).view(prompts, n * 16, c2)
    hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    masks = torch.bmm(hyper, up.transpose(1, 2))  # (g, K, 16N) in (i, j, a, b, a', b') order
    k = masks.shape[1]
    masks = masks.view(prompts, k, height, width, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
    return masks.reshape(prompts, k, 4 * height, 4 * width)


@torch.no_grad()
def decode(context: ImageContext, points=None, labels=None, boxes=None, masks_for=all_rows) -> Decoded:
    """Prompt encoder, two-way transformer and (for the prompts ``masks_for`` picks) mask upscaling.

    ``points`` ``(P, n, 2)`` and ``labels`` ``(P, n)`` / ``boxes`` ``(P, 4)`` in model input coordinates,
    as the model's ``input_points`` / ``input_labels`` / ``input_boxes`` for one image. ``masks_for``
    receives the ``(g, K)`` predicted IoUs of each group of prompts and returns which of them get their
    masks computed (bool ``(g,)``); e.g. automatic mask generation asks only for prompts with a mask
    above ``pred_iou_thresh``. Prompts go through in groups (:func:`group_size`), and a group's image
    tokens are released once its masks are computed, so memory holds one group's features at a time.
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
    iou_scores, object_scores, mask_rows, mask_logits = [], [], [], []
    group = group_size(context.image.device)
    for start in range(0, len(tokens), group):
        queries, image_tokens = _two_way(context, tokens[start : start + group])
        iou = decoder.iou_prediction_head(queries[:, 1])
        iou_scores.append(iou)
        object_scores.append(decoder.pred_obj_score_head(queries[:, 0]))
        chosen = torch.nonzero(masks_for(iou)).flatten()
        if len(chosen):
            mask_tokens = queries[chosen, 2 : 2 + decoder.num_mask_tokens]
            selected = image_tokens if len(chosen) == len(image_tokens) else image_tokens[chosen]
            mask_logits.append(_upscale(context, selected, mask_tokens))
            mask_rows.append(chosen + start)
        del image_tokens
    height, width = context.size
    empty = tokens.new_zeros(0, decoder.num_mask_tokens, 4 * height, 4 * width)
    return Decoded(
        torch.cat(iou_scores),
        torch.cat(object_scores),
        torch.cat(mask_rows) if mask_rows else torch.zeros(0, dtype=torch.long, device=tokens.device),
        torch.cat(mask_logits) if mask_logits else empty,
    )


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
