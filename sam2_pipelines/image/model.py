"""One adapter over the SAM-family image models (``Sam2Model``, ``EdgeTamModel``, ``SamModel``, ``SamHQModel``,
``Sam3TrackerModel``).

Everything that depends on which model class runs lives here, behind one small interface that both modes
of the ``mask-generation`` pipeline (and image sessions) use:

* geometry: the model's input size and mask size, and whether its processor keeps the aspect ratio (SAM 1
  resizes the longest side and pads; SAM 2 resizes to a square);
* :meth:`ImageModel.pixel_values`: image crops -> model input, as Meta's transforms do it;
* :meth:`ImageModel.to_model_coords` / :meth:`ImageModel.upsample`: pixel prompts in, logits back out at
  the crop's resolution;
* :meth:`ImageModel.encode`: one image-encoder pass for a batch of crops;
* :meth:`ImageModel.decode`: the prompt encoder and mask decoder for many objects of one image, through
  :mod:`sam2_pipelines.kernels.fast_decoder` where the model allows it (nothing repeated per object), otherwise
  through the model's own decoder in bounded chunks.
"""

from __future__ import annotations

import contextlib
import threading
import weakref

import numpy as np
import torch
import torch.nn.functional as F

from sam2_pipelines.image import amg
from sam2_pipelines.kernels import fast_decoder
from sam2_pipelines.models import families

#: Projections of the mask decoder's first two-way attention layer whose input is the image embedding alone
#: (the same for every object of an image unless a mask prompt changes it).
SHARED_INPUT_PROJECTIONS = (
    "transformer.layers.0.cross_attn_token_to_image.k_proj",
    "transformer.layers.0.cross_attn_token_to_image.v_proj",
    "transformer.layers.0.cross_attn_image_to_token.q_proj",
)


#: Per thread: whether the shared-input hooks are active, and the copies each projection must give back.
_HOOKS_LOCAL = threading.local()
#: Decoders whose shared-input hooks are installed (once per model: calls never add hooks to a shared model).
_HOOKED = weakref.WeakSet()
_HOOK_LOCK = threading.Lock()


def _before_projection(module, args):
    if not getattr(_HOOKS_LOCAL, "active", False):
        return None
    (hidden,) = args
    if hidden.shape[0] > 1 and torch.equal(hidden, hidden[:1].expand_as(hidden)):
        _HOOKS_LOCAL.pending[id(module)] = hidden.shape[0]
        return (hidden[:1],)
    return None


def _after_projection(module, args, output):
    if not getattr(_HOOKS_LOCAL, "active", False):
        return None
    copies = _HOOKS_LOCAL.pending.pop(id(module), None)
    if copies is None:
        return None
    return output.expand(copies, *output.shape[1:]).contiguous()


@contextlib.contextmanager
def shared_input_projections(model):
    """While active (in this thread), the decoder's first-layer image projections run once when all objects
    share their input.

    The mask decoder repeats the image embedding for every object (grid point) and, in its first layer,
    projects these identical copies again and again. Hooks on those projections check that the copies
    are identical, project one and repeat the result: the same numbers, about a fifth less decoder work.
    Inputs that differ (e.g. per-object mask prompts) are projected as usual. The hooks are installed once per
    model and act only in a thread inside this context, so calls from several threads on one model neither
    add hooks nor see each other's.
    """
    decoder = getattr(model, "mask_decoder", None)
    if decoder is not None and decoder not in _HOOKED:
        with _HOOK_LOCK:
            if decoder not in _HOOKED:
                for name in SHARED_INPUT_PROJECTIONS:
                    try:
                        module = decoder.get_submodule(name)
                    except AttributeError:
                        continue
                    module.register_forward_pre_hook(_before_projection)
                    module.register_forward_hook(_after_projection)
                _HOOKED.add(decoder)
    previous = getattr(_HOOKS_LOCAL, "active", False), getattr(_HOOKS_LOCAL, "pending", None)
    _HOOKS_LOCAL.active, _HOOKS_LOCAL.pending = True, {}
    try:
        yield
    finally:
        _HOOKS_LOCAL.active, _HOOKS_LOCAL.pending = previous


def model_inputs(embedding: dict) -> dict:
    """An encoded image's keyword arguments for the model, without the fast decoder's cached ``"context"``."""
    return {key: value for key, value in embedding.items() if key != "context"}


def expand(embedding: dict, n: int) -> dict:
    """Repeat one image's embeddings ``n`` times along the batch dimension (one image per object)."""

    def rep(value):
        if isinstance(value, torch.Tensor):
            return value.expand(n, *value.shape[1:])
        return [rep(v) for v in value]

    return {key: rep(value) for key, value in model_inputs(embedding).items()}


class ImageModel:
    """A SAM-family image model and its image processor, seen through one interface.

    Args:
        model: a loaded ``Sam2Model``, ``EdgeTamModel``, ``SamModel``, ``SamHQModel`` or ``Sam3TrackerModel``.
        image_processor: the model's image processor.
        device: where inputs go (the model's device).

    An *embedding* (what :meth:`encode` returns per crop) is a dict of the model's keyword arguments for a
    decoder pass; the fast decoder caches what every object of the image shares in its ``"context"`` key.
    """

    #: Most objects given to the model's own mask decoder in one pass; bounds its memory, not the results.
    decoder_chunk = 16

    def __init__(self, model, image_processor, device):
        self.model = model
        self.image_processor = image_processor
        self.device = device
        self.fast = fast_decoder.supports(model)
        #: True for SAM 1 models, whose processor resizes the longest side and pads (SAM 2 resizes to a square).
        self.keeps_aspect = families.has(model, "keeps_aspect")
        #: True for SAM 2-family models, whose pixels are scaled to [0, 1] before resizing, as Meta's
        #: ``SAM2Transforms``; other models get their processor's own pipeline (SAM 3 resizes the 8-bit pixels).
        self.resizes_floats = families.has(model, "resizes_floats")
        config = model.config.prompt_encoder_config
        #: Side of the square model input (1024 for released checkpoints).
        self.input_size = int(config.image_size)
        #: Side of the low-resolution mask logits (256 for released checkpoints).
        self.mask_size = 4 * int(config.image_size) // int(config.patch_size)

    # ------------------------------------------------------------------ geometry
    def pixel_values(self, crops: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Model-ready pixels of image crops, and the size each crop is resized to inside the model input."""
        if not self.resizes_floats:
            encoded = self.image_processor(images=crops, return_tensors="pt", input_data_format="channels_last")
        else:
            # As Meta's SAM2Transforms: scale to [0, 1] first, then resize the float image (resizing uint8
            # pixels rounds them and changes masks near their edges).
            floats = [crop.astype(np.float32) / 255.0 for crop in crops]
            encoded = self.image_processor(images=floats, do_rescale=False, return_tensors="pt", input_data_format="channels_last")
        if "reshaped_input_sizes" in encoded:
            resized = [tuple(int(v) for v in size) for size in encoded["reshaped_input_sizes"]]
        else:
            resized = [(self.input_size, self.input_size)] * len(crops)
        return encoded["pixel_values"].to(self.device, self.model.dtype), resized

    def to_model_coords(self, xy: torch.Tensor, crop_hw, resized_hw) -> torch.Tensor:
        """Pixel ``(x, y)`` of a crop -> model input coordinates (as Meta: ``x / w * 1024`` for SAM 2)."""
        h, w = crop_hw
        xy = xy.clone()
        if self.keeps_aspect:
            xy[..., 0] = xy[..., 0] * (resized_hw[1] / w)
            xy[..., 1] = xy[..., 1] * (resized_hw[0] / h)
            return xy
        xy[..., 0] = xy[..., 0] / w
        xy[..., 1] = xy[..., 1] / h
        return xy * self.input_size

    def upsample(self, logits: torch.Tensor, crop_hw, resized_hw) -> torch.Tensor:
        """``(N, h, w)`` low-resolution logits -> ``(N, H, W)`` float logits at the crop's resolution (bilinear)."""
        logits = logits[:, None].float()
        if self.keeps_aspect:
            logits = F.interpolate(logits, (self.input_size,) * 2, mode="bilinear", align_corners=False)
            logits = logits[..., : resized_hw[0], : resized_hw[1]]
        return F.interpolate(logits, tuple(crop_hw), mode="bilinear", align_corners=False)[:, 0]

    # ------------------------------------------------------------------ encoder
    def encode(self, pixel_values: torch.Tensor) -> list[dict]:
        """Run the image encoder once; return per-image keyword arguments for the model's decoder pass."""
        if families.has(self.model, "hq"):
            embeddings, intermediate = self.model.get_image_embeddings(pixel_values)
            return [
                {"image_embeddings": embeddings[i : i + 1], "intermediate_embeddings": [x[i : i + 1] for x in intermediate]}
                for i in range(len(pixel_values))
            ]
        embeddings = self.model.get_image_embeddings(pixel_values)
        if isinstance(embeddings, torch.Tensor):
            return [{"image_embeddings": embeddings[i : i + 1]} for i in range(len(pixel_values))]
        return [{"image_embeddings": [e[i : i + 1] for e in embeddings]} for i in range(len(pixel_values))]

    # ------------------------------------------------------------------ decoder
    def decode(self, embedding: dict, points=None, labels=None, boxes=None, masks=None, multimask_output=True):
        """Prompt encoder + mask decoder for ``n`` objects of one image.

        ``points`` ``(n, P, 2)`` / ``labels`` ``(n, P)`` / ``boxes`` ``(n, 4)`` in model coordinates, ``masks``
        ``(n, h, w)`` low-resolution logits. Returns ``(logits (n, k, h, w) float32, iou (n, k) float32)``.

        SAM 2-family models without mask prompts go through :mod:`sam2_pipelines.kernels.fast_decoder` (nothing
        repeated per object). Otherwise objects are decoded at most :attr:`decoder_chunk` at a time: the
        model's decoder repeats the image features for every object (about 40 MB per object at 1024x1024
        input), and objects never interact.
        """
        if masks is None and self.fast:
            decoded = self.decode_fast(embedding, points, labels, boxes)
            logits, scores = fast_decoder.select_outputs(decoded.mask_logits, decoded.iou_scores, multimask_output, self.model.mask_decoder)
            return logits.float(), scores.float()
        n = next(len(v) for v in (points, boxes, masks) if v is not None)
        if n > self.decoder_chunk:
            parts = [
                self._decode_objects(
                    embedding,
                    *(None if v is None else v[part] for v in (points, labels, boxes, masks)),
                    multimask_output,
                )
                for part in amg.batch_ranges(n, self.decoder_chunk)
            ]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return self._decode_objects(embedding, points, labels, boxes, masks, multimask_output)

    def decode_fast(self, embedding: dict, points=None, labels=None, boxes=None, masks_for=fast_decoder.all_rows) -> fast_decoder.Decoded:
        """The fast decoder for ``n`` objects of one image; masks of the objects ``masks_for`` picks (default all).

        What every object shares is computed once per image and kept in ``embedding["context"]``.
        """
        context = embedding.get("context")
        if context is None:
            context = embedding["context"] = fast_decoder.ImageContext(self.model, embedding["image_embeddings"])
        dtype = self.model.dtype
        return fast_decoder.decode(
            context,
            None if points is None else points.to(self.device, dtype),
            None if labels is None else labels.to(self.device),
            None if boxes is None else boxes.to(self.device, dtype),
            masks_for=masks_for,
        )

    def _decode_objects(self, embedding: dict, points, labels, boxes, masks, multimask_output):
        """One pass of the model's own decoder over all the given objects (see :meth:`decode`)."""
        dtype = self.model.dtype
        if masks is None:
            # all objects share the image: (1 image, n objects)
            kwargs = model_inputs(embedding)
            if points is not None:
                kwargs["input_points"] = points[None].to(self.device, dtype)
                kwargs["input_labels"] = labels[None].to(self.device)
            if boxes is not None:
                kwargs["input_boxes"] = boxes[None].to(self.device, dtype)
            with shared_input_projections(self.model):
                outputs = self.model(**kwargs, multimask_output=multimask_output)
            return outputs.pred_masks[0].float(), outputs.iou_scores[0].float()
        # a dense prompt per object: one "image" per object
        n = len(masks)
        kwargs = expand(embedding, n)
        kwargs["input_masks"] = masks[:, None].to(self.device, dtype)
        if points is not None:
            kwargs["input_points"] = points[:, None].to(self.device, dtype)
            kwargs["input_labels"] = labels[:, None].to(self.device)
        if boxes is not None:
            kwargs["input_boxes"] = boxes[:, None].to(self.device, dtype)
        outputs = self.model(**kwargs, multimask_output=multimask_output)
        return outputs.pred_masks[:, 0].float(), outputs.iou_scores[:, 0].float()
