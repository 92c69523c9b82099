"""The ``mask-generation`` pipeline for SAM-family image models: automatic mask generation and prompted masks.

Automatic mode (no prompts) follows Meta's ``SAM2AutomaticMaskGenerator`` step by step::

    image -> crop boxes -> per crop: encode once, then batches of grid points -> decoder
          -> filter by predicted IoU (on low-resolution logits) -> upsample only the survivors
          -> stability score -> binarise -> boxes -> crop-edge filter -> RLE -> per-crop box NMS
    all crops -> cross-crop NMS preferring smaller crops -> optional small-region removal -> records

Prompted mode runs the decoder on per-object points / boxes / previous mask logits and returns masks
at the original resolution. The array logic lives in :mod:`sam2_pipelines.amg`,
:mod:`sam2_pipelines.masks` and :mod:`sam2_pipelines.prompts`; this module only orchestrates.
"""

from __future__ import annotations

import collections.abc
import contextlib
import os
import re

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Pipeline
from transformers.image_utils import load_image
from transformers.pipelines.mask_generation import MaskGenerationPipeline as BuiltinMaskGenerationPipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from . import amg, fast_decoder
from .images import pil_to_rgb, read_image_file
from .loading import is_image_model
from .validation import OUTPUT_MODES, check_int, is_int, is_real
from .masks import LOGIT_CLAMP, area_rle, batched_mask_to_box, decode_rle, encode_rle_batch, remove_small_regions, rle_to_uncompressed
from .prompts import normalize_image_prompts, normalize_mask_logits, split_per_image

#: Options of automatic mode and their defaults (those of Meta's ``SAM2AutomaticMaskGenerator``), plus ``progress``.
AMG_DEFAULTS = {
    "points_per_side": 32,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.8,
    "stability_score_thresh": 0.95,
    "stability_score_offset": 1.0,
    "mask_threshold": 0.0,
    "box_nms_thresh": 0.7,
    "crop_n_layers": 0,
    "crop_nms_thresh": 0.7,
    "crop_overlap_ratio": 512 / 1500,
    "crop_n_points_downscale_factor": 1,
    "point_grids": None,
    "min_mask_region_area": 0,
    "output_mode": "binary_mask",
    "use_m2m": False,
    "multimask_output": True,
    "progress": False,
    # transformers' built-in pipeline: extra outputs (COCO-uncompressed RLE, XYXY boxes) and the image-loading timeout
    "output_rle_mask": False,
    "output_bboxes_mask": False,
    "timeout": None,
}

#: Options that also apply in prompted mode.
PROMPTED_OPTIONS = ("multimask_output", "mask_threshold", "timeout")

#: Keywords of transformers' built-in mask-generation pipeline and the option each one is here, so code
#: written for the built-in keeps working after ``import sam2_pipelines``.
BUILTIN_ALIASES = {"points_per_crop": "points_per_side", "crops_n_layers": "crop_n_layers", "crops_nms_thresh": "crop_nms_thresh"}


def translate_builtin_keywords(options: dict) -> dict:
    """Rename the built-in pipeline's keywords (:data:`BUILTIN_ALIASES`) to ours; both spellings at once is an error."""
    options = dict(options)
    for alias, name in BUILTIN_ALIASES.items():
        if alias in options:
            if name in options:
                raise ValueError(f"{alias} (transformers' name) and {name} mean the same option; give one of them")
            options[name] = options.pop(alias)
    return options


#: Prompt keywords of prompted mode.
PROMPT_KEYS = ("points", "labels", "boxes", "masks")

#: Strings read by transformers' ``load_image`` (URLs and ``data:`` URIs); any other string is a file path.
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|data:image/)")

#: Upper bound on the number of float32 pixels of upsampled logits held at once (about 128 MB).
UPSAMPLE_CHUNK_PIXELS = 2**25


def validate_options(options: dict) -> dict:
    """Check the option values given by a user (only those given) and return them; raise ValueError otherwise."""
    unknown = sorted(set(options) - set(AMG_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown keyword argument(s) {', '.join(unknown)} for mask-generation. Accepted: prompts "
            f"{', '.join(PROMPT_KEYS)}; options {', '.join(AMG_DEFAULTS)}; and the pipeline's batch_size, num_workers"
        )

    def need(name, ok, accepted):
        if name in options and not ok(options[name]):
            raise ValueError(f"{name} must be {accepted}, got {options[name]!r}")

    need("points_per_side", lambda v: v is None or (is_int(v) and v >= 1), "a positive int or None (then point_grids is required)")
    need("points_per_batch", lambda v: is_int(v) and v >= 1, "a positive int")
    for name in ("stability_score_offset", "mask_threshold", "min_mask_region_area"):
        need(name, is_real, "a finite number")
    need("min_mask_region_area", lambda v: v >= 0, "a number >= 0 (an area in original-image pixels)")
    for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
        need(name, lambda v: is_real(v) and 0 <= v <= 1, "a number in [0, 1]")
    need("crop_n_layers", lambda v: is_int(v) and v >= 0, "an int >= 0")
    need("crop_overlap_ratio", lambda v: is_real(v) and 0 <= v < 1, "a number in [0, 1)")
    need("crop_n_points_downscale_factor", lambda v: is_int(v) and v >= 1, "an int >= 1")
    need("output_mode", lambda v: v in OUTPUT_MODES, f"one of {', '.join(OUTPUT_MODES)}")
    for name in ("use_m2m", "multimask_output", "progress", "output_rle_mask", "output_bboxes_mask"):
        need(name, lambda v: isinstance(v, (bool, np.bool_)), "True or False")
    need("timeout", lambda v: v is None or (is_real(v) and v > 0), "None or a positive number of seconds")
    if options.get("point_grids") is not None:
        grids = options["point_grids"]
        if not isinstance(grids, (list, tuple)) or not grids:
            raise ValueError("point_grids must be a non-empty list with one (N, 2) array of points in [0, 1] per crop layer")
        for i, grid in enumerate(grids):
            array = np.asarray(grid, dtype=np.float64)
            if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0 or np.any(array < 0) or np.any(array > 1):
                raise ValueError(f"point_grids[{i}] must be an (N, 2) array of (x, y) points normalised to [0, 1], got shape {array.shape}")
    return options


def resolve_options(given: dict) -> dict:
    """Fill the defaults in, resolve ``points_per_side`` / ``point_grids`` and build the per-layer grids."""
    options = {**AMG_DEFAULTS, **given}
    if given.get("point_grids") is not None:
        if given.get("points_per_side") is not None:
            raise ValueError("give exactly one of points_per_side and point_grids (set points_per_side=None to use point_grids)")
        grids = [np.asarray(g, dtype=np.float64) for g in given["point_grids"]]
        if len(grids) != options["crop_n_layers"] + 1:
            raise ValueError(
                f"point_grids must hold one grid per crop layer: crop_n_layers={options['crop_n_layers']} needs "
                f"{options['crop_n_layers'] + 1} grids, got {len(grids)}"
            )
    elif options["points_per_side"] is None:
        raise ValueError("points_per_side is None, so point_grids (one (N, 2) grid in [0, 1] per crop layer) is required")
    else:
        side, layers, factor = options["points_per_side"], options["crop_n_layers"], options["crop_n_points_downscale_factor"]
        if int(side / factor**layers) < 1:
            raise ValueError(
                f"points_per_side={side} with crop_n_points_downscale_factor={factor} leaves no grid point in crop layer "
                f"{layers} (points_per_side / factor**layer must be >= 1); lower crop_n_layers or the factor"
            )
        grids = amg.build_all_layer_point_grids(side, layers, factor)
    options["layer_grids"] = grids
    return options


def load_rgb(image, timeout: float | None = None) -> np.ndarray:
    """Load an image (path, URL, PIL image, or ``(H, W)`` / ``(H, W, 3|4)`` uint8 array) as ``(H, W, 3)`` uint8 RGB.

    Files and PIL images follow :mod:`sam2_pipelines.images` (EXIF orientation applied, 16-bit scaled to
    8 bits); a string is a file path unless it is a URL or a ``data:image/...;base64,`` URI (a missing file
    is reported as such). ``timeout`` bounds the download of a URL (seconds), as in transformers' ``load_image``.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                f"an image array must be uint8 with shape (H, W), (H, W, 3) or (H, W, 4); got {image.dtype} {image.shape}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"the image is empty (size {image.shape[:2]})")
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=-1)
        return np.ascontiguousarray(image[..., :3])
    if isinstance(image, os.PathLike) or (isinstance(image, str) and not _URL.match(image)):
        return read_image_file(image)
    if isinstance(image, str):
        try:
            image = load_image(image, timeout=timeout)
        except (TypeError, ValueError, OSError) as error:
            raise ValueError(f"could not read the image at {image!r} ({error})") from None
    if not hasattr(image, "convert"):
        raise ValueError(
            f"could not read the image: got {type(image).__name__}; accepted: a path, a URL, a PIL image or a uint8 array"
        )
    return pil_to_rgb(image)


#: Projections of the mask decoder's first two-way attention layer whose input is the image embedding alone
#: (the same for every object of an image unless a mask prompt changes it).
SHARED_INPUT_PROJECTIONS = (
    "transformer.layers.0.cross_attn_token_to_image.k_proj",
    "transformer.layers.0.cross_attn_token_to_image.v_proj",
    "transformer.layers.0.cross_attn_image_to_token.q_proj",
)


@contextlib.contextmanager
def shared_input_projections(model):
    """While active, the decoder's first-layer image projections run once when all objects share their input.

    The mask decoder repeats the image embedding for every object (grid point) and, in its first layer,
    projects these identical copies again and again. Hooks on those projections check that the copies
    are identical, project one and repeat the result: the same numbers, about a fifth less decoder work.
    Inputs that differ (e.g. per-object mask prompts) are projected as usual. Nothing of the model is
    changed: the hooks are removed on exit.
    """
    decoder = getattr(model, "mask_decoder", None)
    handles, pending = [], {}

    def before(module, args):
        (hidden,) = args
        if hidden.shape[0] > 1 and torch.equal(hidden, hidden[:1].expand_as(hidden)):
            pending[id(module)] = hidden.shape[0]
            return (hidden[:1],)
        return None

    def after(module, args, output):
        copies = pending.pop(id(module), None)
        if copies is None:
            return None
        return output.expand(copies, *output.shape[1:]).contiguous()

    for name in SHARED_INPUT_PROJECTIONS:
        try:
            module = decoder.get_submodule(name)
        except AttributeError:
            continue
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _DatasetRows(torch.utils.data.Dataset):
    """The rows of a ``datasets.Dataset`` as input dicts: its ``image`` column and any prompt columns."""

    def __init__(self, dataset, columns: list[str]):
        self.dataset, self.columns = dataset, columns

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[index]
        return {column: row[column] for column in self.columns}


def _dataset_rows(inputs):
    """A ``datasets.Dataset`` -> its rows as input dicts (``image`` + prompt columns); anything else unchanged."""
    columns = getattr(inputs, "column_names", None)
    if not isinstance(columns, list) or not hasattr(inputs, "features"):
        return inputs
    if "image" not in columns:
        raise ValueError(
            f"a datasets.Dataset given to mask-generation needs an 'image' column (got columns {columns}); or pass "
            "KeyDataset(dataset, 'your_column')"
        )
    return _DatasetRows(inputs, ["image"] + [key for key in PROMPT_KEYS if key in columns])


def _model_inputs(embedding: dict) -> dict:
    """An encoded image's keyword arguments for the model, without the fast decoder's cached ``"context"``."""
    return {key: value for key, value in embedding.items() if key != "context"}


def _as_list(items):
    """DataLoader collate function keeping the preprocessed items as a plain list."""
    return list(items)


class MaskGenerationPipeline(Pipeline):
    """Segment images with a SAM-family model (``Sam2Model``, ``EdgeTamModel``, ``SamModel``, ``SamHQModel``).

    Models this pipeline does not handle are given to the built-in ``transformers`` mask-generation
    pipeline, so ``pipeline("mask-generation", ...)`` keeps working for them.

    Automatic mode, ``generator(image, **options)``, segments everything (options and defaults as in
    Meta's ``SAM2AutomaticMaskGenerator``; see :data:`AMG_DEFAULTS`) and returns
    ``{"masks": [...], "scores": ndarray, "records": [...]}``; records carry ``segmentation``, ``area``,
    ``bbox`` (XYWH), ``predicted_iou``, ``point_coords``, ``stability_score`` and ``crop_box`` (XYWH).

    Prompted mode, ``generator(image, points=[[[x, y]]], labels=[[1]], boxes=..., masks=...)``, returns
    ``{"masks": bool (objects, k, H, W), "scores": (objects, k), "logits": (objects, k, h, w)}``.

    A list of images (with lists of per-image prompts), a generator or a dataset give one result per image.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    #: Most objects (grid points) given to the mask decoder in one pass; bounds its memory, not the results.
    decoder_chunk = 16

    def __new__(cls, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if cls is MaskGenerationPipeline and model is not None and not is_image_model(model):
            return BuiltinMaskGenerationPipeline(*args, **kwargs)
        return super().__new__(cls)

    # ------------------------------------------------------------------ calling
    def __call__(self, inputs, **kwargs):
        """Run on one image, a list of images, a generator or a dataset.

        Args:
            inputs: an image (path, URL, PIL image or ``(H, W, 3)`` uint8 array), a dict ``{"image": ...,
                "points": ..., "labels": ..., "boxes": ..., "masks": ...}``, or a list / generator /
                dataset of those.
            points, labels, boxes, masks: prompts (prompted mode). For one image: ``points``
                ``(objects, points, 2)`` pixels, ``labels`` ``(objects, points)``, ``boxes`` ``(objects, 4)``
                XYXY pixels, ``masks`` ``(objects, h, w)`` low-resolution logits. For a list of images: a
                list with one such entry per image.
            **kwargs: options (see :data:`AMG_DEFAULTS`), ``batch_size``, ``num_workers``.
        """
        kwargs = translate_builtin_keywords(kwargs)
        if "batch_size" in kwargs:
            check_int(kwargs["batch_size"], "batch_size", minimum=1)
        if isinstance(inputs, collections.abc.Sized) and not isinstance(inputs, (str, dict, np.ndarray, torch.Tensor)) and len(inputs) == 0:
            raise ValueError("no images to segment: the list / dataset is empty")
        inputs = _dataset_rows(inputs)
        prompts = {key: kwargs.pop(key) for key in PROMPT_KEYS if key in kwargs}
        prompts = {key: value for key, value in prompts.items() if value is not None}
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if prompts:
            extra = sorted(set(kwargs) - set(PROMPTED_OPTIONS) - {"batch_size", "num_workers"})
            if extra and not set(extra) - set(AMG_DEFAULTS):
                raise ValueError(
                    f"option(s) {', '.join(extra)} apply to automatic mask generation only; with prompts the accepted "
                    f"options are {', '.join(PROMPTED_OPTIONS)}"
                )
            if isinstance(inputs, (list, tuple)):
                per_image = {key: split_per_image(value, len(inputs), key) for key, value in prompts.items()}
                inputs = [
                    self._with_prompts(image, {key: per_image[key][i] for key in per_image}) for i, image in enumerate(inputs)
                ]
            elif not (isinstance(inputs, (str, np.ndarray, torch.Tensor)) or hasattr(inputs, "convert")):
                raise ValueError(
                    "prompts given as keywords need a single image or a list of images; for generators and datasets "
                    "yield dicts {'image': ..., 'points': ..., 'labels': ..., 'boxes': ..., 'masks': ...}"
                )
            else:
                inputs = self._with_prompts(inputs, prompts)
        return super().__call__(inputs, **kwargs)

    @staticmethod
    def _with_prompts(image, prompts: dict) -> dict:
        if isinstance(image, dict):
            raise ValueError("give prompts either inside the input dicts or as keywords, not both")
        return {"image": image, **prompts}

    def _sanitize_parameters(self, **kwargs):
        prompts = sorted(set(kwargs) & set(PROMPT_KEYS))
        if prompts:
            raise ValueError(f"prompts ({', '.join(prompts)}) are given when calling the pipeline, not when creating it")
        options = validate_options(translate_builtin_keywords(kwargs))
        return dict(options), dict(options), dict(options)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """Iterate over many inputs; ``batch_size`` crops of consecutive images are encoded together."""
        from torch.utils.data import DataLoader

        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
            num_workers = 0
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_as_list)

        def results():
            for items in loader:
                for output in self.forward(items, **forward_params):
                    yield self.postprocess(output, **postprocess_params)

        return results()

    # ------------------------------------------------------------------ preprocess
    def preprocess(self, inputs, **options):
        """Load the image, validate its prompts and lay out its crops (no model work here)."""
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {"image", *PROMPT_KEYS})
            if unknown or "image" not in inputs:
                raise ValueError(
                    f"an input dict needs 'image' and may hold {', '.join(PROMPT_KEYS)}; got keys {sorted(inputs)}"
                )
            image, prompts = inputs["image"], {k: inputs.get(k) for k in PROMPT_KEYS}
        else:
            image, prompts = inputs, {k: None for k in PROMPT_KEYS}
        image = load_rgb(image, timeout=options.get("timeout"))
        height, width = image.shape[:2]
        if any(value is not None for value in prompts.values()):
            # automatic-mode options (e.g. set when the pipeline was created) do not apply to prompted images
            if prompts["points"] is None and prompts["boxes"] is None and prompts["labels"] is None:
                normalized = {"points": None, "labels": None, "boxes": None, "num_objects": None}
            else:
                normalized = normalize_image_prompts(prompts["points"], prompts["labels"], prompts["boxes"], (height, width))
            if prompts["masks"] is not None:
                normalized["masks"] = normalize_mask_logits(prompts["masks"], normalized["num_objects"], (self._mask_size,) * 2)
                normalized["num_objects"] = len(normalized["masks"])
            else:
                normalized["masks"] = None
            return {"image": image, "crop_boxes": [[0, 0, width, height]], "layer_idxs": [0], "prompts": normalized}
        resolve_options(options)  # validates the combination early, before any model work
        crop_boxes, layer_idxs = amg.generate_crop_boxes(
            (height, width), options.get("crop_n_layers", 0), options.get("crop_overlap_ratio", AMG_DEFAULTS["crop_overlap_ratio"])
        )
        if any(x1 <= x0 or y1 <= y0 for x0, y0, x1, y1 in crop_boxes):
            raise ValueError(
                f"crop_n_layers={options.get('crop_n_layers', 0)} cuts this {height}x{width} image into crops of no pixels; "
                "use fewer crop layers (or a smaller crop_overlap_ratio) for small images"
            )
        return {"image": image, "crop_boxes": crop_boxes, "layer_idxs": layer_idxs, "prompts": None}

    # ------------------------------------------------------------------ model geometry
    @property
    def _input_size(self) -> int:
        """Side of the square model input (1024 for released checkpoints)."""
        return int(self.model.config.prompt_encoder_config.image_size)

    @property
    def _mask_size(self) -> int:
        """Side of the low-resolution mask logits (256 for released checkpoints)."""
        config = self.model.config.prompt_encoder_config
        return 4 * int(config.image_size) // int(config.patch_size)

    @property
    def _keeps_aspect(self) -> bool:
        """True for SAM 1 models, whose processor resizes the longest side and pads (SAM 2 resizes to a square)."""
        return type(self.model).__name__ in ("SamModel", "SamHQModel")

    def _pixel_values(self, crops: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Model-ready pixels of image crops, and the size each crop is resized to inside the model input."""
        image_processor = getattr(self.processor, "image_processor", None) or self.image_processor
        if self._keeps_aspect:
            encoded = image_processor(images=crops, return_tensors="pt", input_data_format="channels_last")
        else:
            # As Meta's SAM2Transforms: scale to [0, 1] first, then resize the float image (resizing uint8
            # pixels rounds them and changes masks near their edges).
            floats = [crop.astype(np.float32) / 255.0 for crop in crops]
            encoded = image_processor(images=floats, do_rescale=False, return_tensors="pt", input_data_format="channels_last")
        if "reshaped_input_sizes" in encoded:
            resized = [tuple(int(v) for v in size) for size in encoded["reshaped_input_sizes"]]
        else:
            resized = [(self._input_size, self._input_size)] * len(crops)
        return encoded["pixel_values"].to(self.device, self.model.dtype), resized

    def _to_model_coords(self, xy: torch.Tensor, crop_hw, resized_hw) -> torch.Tensor:
        """Pixel ``(x, y)`` of a crop -> model input coordinates (as Meta: ``x / w * 1024`` for SAM 2)."""
        h, w = crop_hw
        xy = xy.clone()
        if self._keeps_aspect:
            xy[..., 0] = xy[..., 0] * (resized_hw[1] / w)
            xy[..., 1] = xy[..., 1] * (resized_hw[0] / h)
            return xy
        xy[..., 0] = xy[..., 0] / w
        xy[..., 1] = xy[..., 1] / h
        return xy * self._input_size

    def _upsample(self, logits: torch.Tensor, crop_hw, resized_hw) -> torch.Tensor:
        """``(N, h, w)`` low-resolution logits -> ``(N, H, W)`` float logits at the crop's resolution (bilinear)."""
        logits = logits[:, None].float()
        if self._keeps_aspect:
            logits = F.interpolate(logits, (self._input_size,) * 2, mode="bilinear", align_corners=False)
            logits = logits[..., : resized_hw[0], : resized_hw[1]]
        return F.interpolate(logits, tuple(crop_hw), mode="bilinear", align_corners=False)[:, 0]

    def _encode(self, pixel_values: torch.Tensor) -> list[dict]:
        """Run the image encoder once; return per-image keyword arguments for the model's decoder pass."""
        name = type(self.model).__name__
        if name == "SamHQModel":
            embeddings, intermediate = self.model.get_image_embeddings(pixel_values)
            return [
                {"image_embeddings": embeddings[i : i + 1], "intermediate_embeddings": [x[i : i + 1] for x in intermediate]}
                for i in range(len(pixel_values))
            ]
        embeddings = self.model.get_image_embeddings(pixel_values)
        if isinstance(embeddings, torch.Tensor):
            return [{"image_embeddings": embeddings[i : i + 1]} for i in range(len(pixel_values))]
        return [{"image_embeddings": [e[i : i + 1] for e in embeddings]} for i in range(len(pixel_values))]

    @staticmethod
    def _expand(embedding: dict, n: int) -> dict:
        """Repeat one image's embeddings ``n`` times along the batch dimension (one image per object)."""

        def rep(value):
            if isinstance(value, torch.Tensor):
                return value.expand(n, *value.shape[1:])
            return [rep(v) for v in value]

        return {key: rep(value) for key, value in _model_inputs(embedding).items()}

    def _decode(self, embedding: dict, points=None, labels=None, boxes=None, masks=None, multimask_output=True):
        """Prompt encoder + mask decoder for ``n`` objects of one image.

        ``points`` ``(n, P, 2)`` / ``labels`` ``(n, P)`` / ``boxes`` ``(n, 4)`` in model coordinates, ``masks``
        ``(n, h, w)`` low-resolution logits. Returns ``(logits (n, k, h, w) float32, iou (n, k) float32)``.

        SAM 2-family models without mask prompts go through :mod:`sam2_pipelines.fast_decoder` (nothing
        repeated per object). Otherwise objects are decoded at most :attr:`decoder_chunk` at a time: the
        model's decoder repeats the image features for every object (about 40 MB per object at 1024x1024
        input), and objects never interact.
        """
        if masks is None and fast_decoder.supports(self.model):
            decoded = self._decode_fast(embedding, points, labels, boxes)
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

    def _decode_fast(self, embedding: dict, points=None, labels=None, boxes=None, masks_for=fast_decoder.all_rows) -> fast_decoder.Decoded:
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
        """One decoder pass over all the given objects (see :meth:`_decode`)."""
        dtype = self.model.dtype
        if masks is None:
            # all objects share the image: (1 image, n objects)
            kwargs = _model_inputs(embedding)
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
        kwargs = self._expand(embedding, n)
        kwargs["input_masks"] = masks[:, None].to(self.device, dtype)
        if points is not None:
            kwargs["input_points"] = points[:, None].to(self.device, dtype)
            kwargs["input_labels"] = labels[:, None].to(self.device)
        if boxes is not None:
            kwargs["input_boxes"] = boxes[:, None].to(self.device, dtype)
        outputs = self.model(**kwargs, multimask_output=multimask_output)
        return outputs.pred_masks[:, 0].float(), outputs.iou_scores[:, 0].float()

    # ------------------------------------------------------------------ forward
    def _forward(self, model_inputs, **options):
        """Encode every crop once and decode its prompts (or grid points); accepts one item or a list."""
        single = isinstance(model_inputs, dict)
        items = [model_inputs] if single else list(model_inputs)
        automatic = any(item["prompts"] is None for item in items)
        opts = resolve_options(options) if automatic else {**AMG_DEFAULTS, **options}
        tasks = [(i, c) for i, item in enumerate(items) for c in range(len(item["crop_boxes"]))]
        crop_results = [[] for _ in items]
        progress = None
        if opts["progress"]:
            from tqdm.auto import tqdm

            total = sum(self._num_batches(items[i], c, opts) for i, c in tasks if items[i]["prompts"] is None)
            progress = tqdm(total=total, desc="mask generation", unit="batch")
        chunk = max(1, len(items))
        for start in range(0, len(tasks), chunk):
            group = tasks[start : start + chunk]
            for (i, c), (embedding, resized_hw) in zip(group, self._encode_crops(items, group)):
                item = items[i]
                if item["prompts"] is None:
                    crop_results[i].append(self._process_crop(embedding, item, c, resized_hw, opts, progress))
                else:
                    crop_results[i] = self._predict_prompts(embedding, item, resized_hw, opts)
        if progress is not None:
            progress.close()
        outputs = []
        for item, result in zip(items, crop_results):
            if item["prompts"] is None:
                result = self._merge_crops(result, item["image"].shape[:2], opts)
                result["mode"] = "automatic"
            else:
                result["mode"] = "prompted"
            outputs.append(result)
        return outputs[0] if single else outputs

    def _encode_crops(self, items: list[dict], group: list[tuple[int, int]]) -> list[tuple[dict, tuple[int, int]]]:
        """``(embedding, resized size)`` of the crops ``group`` (``(item, crop)`` pairs) in one encoder pass.

        Crops an item already holds encoded (``item["encoded"][crop]``, an image session's) are not encoded again.
        """
        out = [items[i].get("encoded", {}).get(c) for i, c in group]
        missing = [k for k, value in enumerate(out) if value is None]
        if missing:
            crops = []
            for k in missing:
                i, c = group[k]
                x0, y0, x1, y1 = items[i]["crop_boxes"][c]
                crops.append(items[i]["image"][y0:y1, x0:x1])
            pixel_values, resized = self._pixel_values(crops)
            for k, embedding, resized_hw in zip(missing, self._encode(pixel_values), resized):
                out[k] = (embedding, resized_hw)
        return out

    def session(self, image, batch_size: int | None = None):
        """Encode ``image`` once and return an :class:`~sam2_pipelines.image_session.ImageSession` for many calls.

        A list of images gives a list of sessions, encoded ``batch_size`` images per encoder pass (default:
        all at once). See :mod:`sam2_pipelines.image_session`.
        """
        from .image_session import ImageSession, open_sessions

        if isinstance(image, (list, tuple)):
            return open_sessions(self, list(image), batch_size=batch_size)
        return ImageSession(self, image)

    @staticmethod
    def _num_batches(item, crop_index, opts) -> int:
        points = len(opts["layer_grids"][item["layer_idxs"][crop_index]])
        return -(-points // opts["points_per_batch"])

    def _predict_prompts(self, embedding, item, resized_hw, opts) -> dict:
        """Prompted mode for one image: group objects by prompt layout, decode, upsample to the image size."""
        prompts = item["prompts"]
        height, width = item["image"].shape[:2]
        n = prompts["num_objects"]
        groups: dict[tuple, list[int]] = {}
        for obj in range(n):
            num_points = 0 if prompts["points"] is None else len(prompts["points"][obj])
            groups.setdefault((num_points,), []).append(obj)
        logits = [None] * n
        scores = [None] * n
        for (num_points,), members in groups.items():
            points = labels = boxes = masks = None
            if num_points:
                xy = torch.as_tensor(np.stack([prompts["points"][o] for o in members]), dtype=torch.float32)
                points = self._to_model_coords(xy, (height, width), resized_hw)
                labels = torch.as_tensor(np.stack([prompts["labels"][o] for o in members]), dtype=torch.long)
            if prompts["boxes"] is not None:
                corners = torch.as_tensor(prompts["boxes"][members], dtype=torch.float32).reshape(-1, 2, 2)
                boxes = self._to_model_coords(corners, (height, width), resized_hw).reshape(-1, 4)
            if prompts["masks"] is not None:
                masks = torch.as_tensor(prompts["masks"][members])
            group_logits, group_scores = self._decode(embedding, points, labels, boxes, masks, opts["multimask_output"])
            for row, obj in enumerate(members):
                logits[obj], scores[obj] = group_logits[row], group_scores[row]
        logits = torch.stack(logits).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        scores = torch.stack(scores)
        binary = torch.stack(
            [self._upsample(obj_logits, (height, width), resized_hw) > opts["mask_threshold"] for obj_logits in logits]
        )
        return {"masks": binary.cpu().numpy(), "scores": scores.cpu().numpy(), "logits": logits.cpu().numpy()}

    def _process_crop(self, embedding, item, crop_index, resized_hw, opts, progress) -> dict:
        """All point batches of one crop, then box NMS within the crop; results in image coordinates."""
        crop_box = item["crop_boxes"][crop_index]
        x0, y0, x1, y1 = crop_box
        crop_hw = (y1 - y0, x1 - x0)
        points_scale = np.array(crop_hw)[None, ::-1]
        points_for_image = opts["layer_grids"][item["layer_idxs"][crop_index]] * points_scale
        empty = _empty_batch()
        batches = []  # only batches with survivors: many small empty results would fragment the heap
        for batch in amg.batch_ranges(len(points_for_image), opts["points_per_batch"]):
            result = self._process_batch(embedding, points_for_image[batch], crop_hw, crop_box, item["image"].shape[:2], resized_hw, opts)
            if result["rles"]:
                batches.append(result)
            if progress is not None:
                progress.update(1)
        data = {key: torch.cat([empty[key]] + [b[key] for b in batches]) for key in empty if key != "rles"}
        data["rles"] = [rle for b in batches for rle in b["rles"]]
        keep = amg.box_nms(data["boxes"], data["iou_preds"], opts["box_nms_thresh"])
        data = _filter(data, keep)
        data["boxes"] = amg.uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = amg.uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor([crop_box for _ in range(len(data["rles"]))], dtype=torch.long).reshape(-1, 4)
        return data

    def _process_batch(self, embedding, points, crop_hw, crop_box, orig_hw, resized_hw, opts) -> dict:
        """One batch of grid points: decode, IoU filter on low-res logits, then upsample survivors only."""
        orig_h, orig_w = orig_hw
        points = torch.as_tensor(points, dtype=torch.float32)
        in_points = self._to_model_coords(points, crop_hw, resized_hw)
        in_labels = torch.ones(len(in_points), dtype=torch.long)
        low_res, iou_preds, points = self._candidates(embedding, in_points[:, None, :], in_labels[:, None], points, opts)
        if opts["use_m2m"]:
            low_res, iou_preds = self._refine_with_m2m(embedding, self._to_model_coords(points, crop_hw, resized_hw), low_res, opts)
        if opts["pred_iou_thresh"] > 0.0:
            keep = iou_preds > opts["pred_iou_thresh"]
            low_res, iou_preds, points = low_res[keep.to(low_res.device)], iou_preds[keep], points[keep]

        out = {"boxes": [], "iou_preds": [], "points": [], "stability_score": [], "rles": []}
        chunk = max(1, UPSAMPLE_CHUNK_PIXELS // (crop_hw[0] * crop_hw[1]))
        for part in amg.batch_ranges(len(low_res), chunk):
            logits = self._upsample(low_res[part], crop_hw, resized_hw)
            stability = amg.calculate_stability_score(logits, opts["mask_threshold"], opts["stability_score_offset"]).cpu()
            keep = torch.ones(len(logits), dtype=torch.bool)
            if opts["stability_score_thresh"] > 0.0:
                keep = stability >= opts["stability_score_thresh"]
            masks = (logits[keep.to(logits.device)] > opts["mask_threshold"]).cpu()  # boxes and RLE on the CPU
            del logits
            boxes = batched_mask_to_box(masks)
            keep_edge = ~amg.is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
            masks = masks[keep_edge]
            out["boxes"].append(boxes[keep_edge])
            out["iou_preds"].append(iou_preds[part][keep][keep_edge])
            out["points"].append(points[part][keep][keep_edge])
            out["stability_score"].append(stability[keep][keep_edge])
            out["rles"].extend(encode_rle_batch(amg.uncrop_masks(masks, crop_box, orig_h, orig_w)))
            del masks
        if not out["boxes"]:
            return _empty_batch()
        return {key: (value if key == "rles" else torch.cat(value)) for key, value in out.items()}

    def _candidates(self, embedding, in_points, in_labels, points, opts):
        """Decode one batch of grid points; return ``(low-res logits, predicted IoU, point)`` per candidate mask.

        Candidates are the point's masks in point-major order. With the fast decoder, single-pass multimask
        output and no m2m refinement, the IoU threshold is applied before any mask is computed (as Meta
        filters on the predicted IoU first): only candidates above it are returned, and only their points'
        masks are upscaled. Otherwise every candidate is returned and filtered by the caller.
        """
        multimask = opts["multimask_output"]
        if fast_decoder.supports(self.model) and multimask and not opts["use_m2m"]:
            threshold = opts["pred_iou_thresh"]
            decoded = self._decode_fast(embedding, in_points, in_labels, masks_for=lambda iou: (iou[:, 1:] > threshold).any(dim=1))
            iou_preds = decoded.iou_scores[:, 1:].float().cpu()  # filters and points live on the CPU
            keep = iou_preds > threshold
            rows = decoded.mask_rows.cpu()
            low_res = decoded.mask_logits[:, 1:].float()
            keep = keep[rows]
            points = points[rows].repeat_interleave(iou_preds.shape[1], dim=0)[keep.flatten()]
            return low_res[keep.to(low_res.device)], iou_preds[rows][keep], points
        low_res, iou_preds = self._decode(embedding, in_points, in_labels, multimask_output=multimask)
        k = low_res.shape[1]
        return low_res.flatten(0, 1), iou_preds.flatten(0, 1).cpu(), points.repeat_interleave(k, dim=0)

    def _refine_with_m2m(self, embedding, in_points, low_res, opts):
        """One refinement step: each point again, with its own previous (clamped) logits as mask prompt."""
        low_res = low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        labels = torch.ones(len(in_points), 1, dtype=torch.long)
        new_logits, new_iou = [], []
        for part in amg.batch_ranges(len(in_points), opts["points_per_batch"]):
            logits, iou = self._decode(embedding, in_points[part][:, None], labels[part], masks=low_res[part], multimask_output=False)
            new_logits.append(logits[:, 0])
            new_iou.append(iou[:, 0])
        if not new_logits:
            return low_res, torch.zeros(0)
        return torch.cat(new_logits), torch.cat(new_iou).cpu()

    def _merge_crops(self, crop_results: list[dict], image_size, opts) -> dict:
        """Concatenate crops, remove duplicates across crops (smaller crops win), then small-region removal."""
        data = {key: torch.cat([r[key] for r in crop_results]) for key in ("boxes", "iou_preds", "points", "stability_score", "crop_boxes")}
        data["rles"] = [rle for r in crop_results for rle in r["rles"]]
        if len(crop_results) > 1:
            scores = amg.crop_preference_scores(data["crop_boxes"])
            data = _filter(data, amg.box_nms(data["boxes"], scores, opts["crop_nms_thresh"]))
        if opts["min_mask_region_area"] > 0:
            data = postprocess_small_regions(data, opts["min_mask_region_area"], max(opts["box_nms_thresh"], opts["crop_nms_thresh"]))
        return data

    # ------------------------------------------------------------------ postprocess
    def postprocess(self, model_outputs, **options):
        """Build Meta-style records (automatic) or return the prompted arrays as they are."""
        if model_outputs["mode"] == "prompted":
            return {key: model_outputs[key] for key in ("masks", "scores", "logits")}
        output_mode = options.get("output_mode", AMG_DEFAULTS["output_mode"])
        records = []
        for idx, rle in enumerate(model_outputs["rles"]):
            if output_mode == "coco_rle":
                segmentation = rle
            elif output_mode == "binary_mask":
                segmentation = decode_rle(rle)
            else:
                segmentation = rle_to_uncompressed(rle)
            records.append(
                {
                    "segmentation": segmentation,
                    "area": area_rle(rle),
                    "bbox": amg.box_xyxy_to_xywh(model_outputs["boxes"][idx].float()),
                    "predicted_iou": model_outputs["iou_preds"][idx].item(),
                    "point_coords": [model_outputs["points"][idx].float().tolist()],
                    "stability_score": model_outputs["stability_score"][idx].item(),
                    "crop_box": amg.box_xyxy_to_xywh(model_outputs["crop_boxes"][idx].float()),
                }
            )
        result = {
            "masks": [record["segmentation"] for record in records],
            "scores": np.array([record["predicted_iou"] for record in records], dtype=np.float32),
            "records": records,
        }
        if options.get("output_rle_mask"):  # transformers' built-in outputs
            result["rle_mask"] = [rle_to_uncompressed(rle) for rle in model_outputs["rles"]]
        if options.get("output_bboxes_mask"):
            result["bounding_boxes"] = model_outputs["boxes"].reshape(-1, 4).clone()
        return result


def _empty_batch() -> dict:
    """The per-batch mask data of a batch without survivors (fields as :meth:`_process_batch` returns them)."""
    return {
        "boxes": torch.zeros(0, 4, dtype=torch.long),
        "iou_preds": torch.zeros(0),
        "points": torch.zeros(0, 2),
        "stability_score": torch.zeros(0),
        "rles": [],
    }


def _filter(data: dict, keep: torch.Tensor) -> dict:
    """Keep the rows ``keep`` (indices or bool mask) of every field of a mask-data dict."""
    if keep.dtype == torch.bool:
        keep = torch.nonzero(keep).flatten()
    indices = keep.tolist()
    return {key: ([value[i] for i in indices] if isinstance(value, list) else value[keep]) for key, value in data.items()}


def postprocess_small_regions(data: dict, min_area: float, nms_thresh: float) -> dict:
    """Fill holes and remove islands smaller than ``min_area`` pixels in every mask, then re-run box NMS.

    Follows Meta's ``postprocess_small_regions``: masks changed by the clean-up get NMS score 0 and
    unchanged ones 1, so NMS prefers masks that needed no clean-up; the RLE and box of a kept changed
    mask are replaced by the cleaned ones. Works one mask at a time (no stack of full-size masks).
    """
    if not data["rles"]:
        return data
    new_rles, new_boxes, scores = [], [], []
    for rle in data["rles"]:
        mask = decode_rle(rle)
        mask, changed_holes = remove_small_regions(mask, min_area, mode="holes")
        mask, changed_islands = remove_small_regions(mask, min_area, mode="islands")
        changed = changed_holes or changed_islands
        scores.append(0.0 if changed else 1.0)
        new_boxes.append(batched_mask_to_box(torch.as_tensor(mask)))
        new_rles.append(encode_rle_batch(mask[None])[0] if changed else rle)
    boxes = torch.stack(new_boxes)
    keep = amg.box_nms(boxes, torch.tensor(scores), nms_thresh)
    data = dict(data)
    data["rles"] = list(data["rles"])
    data["boxes"] = data["boxes"].clone()
    for i in keep.tolist():
        if scores[i] == 0.0:
            data["rles"][i] = new_rles[i]
            data["boxes"][i] = boxes[i]
    return _filter(data, keep)
