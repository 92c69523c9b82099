"""The ``mask-generation`` pipeline for SAM-family image models: automatic mask generation and prompted masks.

This module is the transformers ``Pipeline``: it takes images (one, a list, a generator or a dataset, with
or without prompts), encodes each crop once, batching crops of consecutive images, and hands the work to
one of two modes, as Meta's ``SAM2AutomaticMaskGenerator`` sits on an image predictor:

* automatic mode (no prompts): :class:`~sam2_pipelines.image.automatic.AutomaticMaskGenerator`;
* prompted mode: :mod:`sam2_pipelines.image.prompted`.

Both see the model only through :class:`~sam2_pipelines.image.model.ImageModel`; options are checked and
resolved by :mod:`sam2_pipelines.image.options`.
"""

from __future__ import annotations


import collections.abc
import os

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines.mask_generation import MaskGenerationPipeline as BuiltinMaskGenerationPipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from sam2_pipelines.image import amg
from sam2_pipelines.image import automatic as automatic_masks
from sam2_pipelines.image import prompted as prompted_masks
from sam2_pipelines.image import text as text_masks
from sam2_pipelines.image.automatic import AutomaticMaskGenerator, MaskData
from sam2_pipelines.image.model import ImageModel
from sam2_pipelines.core.images import load_rgb
from sam2_pipelines.models import internals
from sam2_pipelines.models.loading import is_image_model
from sam2_pipelines.image.options import (
    AMG_DEFAULTS,
    PROMPT_KEYS,
    PROMPTED_OPTIONS,
    TEXT_ONLY_OPTIONS,
    TEXT_OPTIONS,
    prompted_options,
    resolve_options,
    text_options,
    translate_builtin_keywords,
    validate_options,
)
from sam2_pipelines.core.prompts import split_per_image
from sam2_pipelines.core.validation import check_int


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
    """A ``datasets.Dataset`` -> its rows as input dicts (``image`` + prompt / ``text`` columns); anything else unchanged."""
    columns = getattr(inputs, "column_names", None)
    if not isinstance(columns, list) or not hasattr(inputs, "features"):
        return inputs
    if "image" not in columns:
        raise ValueError(
            f"a datasets.Dataset given to mask-generation needs an 'image' column (got columns {columns}); or pass "
            "KeyDataset(dataset, 'your_column')"
        )
    return _DatasetRows(inputs, ["image"] + [key for key in (*PROMPT_KEYS, "text", *text_masks.EXEMPLAR_KEYS) if key in columns])


def _as_list(items):
    """DataLoader collate function keeping the preprocessed items as a plain list."""
    return list(items)


class MaskGenerationPipeline(Pipeline):
    """Segment images with a SAM-family model (``Sam2Model``, ``EdgeTamModel``, ``SamModel``, ``SamHQModel``,
    ``Sam3TrackerModel``).

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

    def __new__(cls, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if cls is MaskGenerationPipeline and model is not None and not (is_image_model(model) or text_masks.is_text_model(model)):
            return BuiltinMaskGenerationPipeline(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        image_processor = getattr(self.processor, "image_processor", None) or self.image_processor
        #: the model behind one interface (geometry, encoder, decoder); None for SAM 3's text model
        self.image_model = None if text_masks.is_text_model(self.model) else ImageModel(self.model, image_processor, self.device)
        internals.cache_position_encodings(self.model)

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
            text: with a SAM 3 ``Sam3Model``: a concept (``"red car"``) or a list of concepts; every instance
                of each is segmented (records with ``score`` and ``concept``). The same for every image of a list.
            exemplars, exemplar_labels: with text (one concept) or alone, SAM 3's exemplar boxes ``[[x0, y0, x1,
                y1], ...]`` (pixels) around examples of the concept, labelled 1 (an example) or 0 (not one; default
                all 1). Alone they are SAM 3's visual prompt (concept ``"visual"``).
            **kwargs: options (see :data:`AMG_DEFAULTS`; with text :class:`~sam2_pipelines.image.options.TextOptions`),
                ``batch_size``, ``num_workers``.
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
        text = kwargs.pop("text", None)
        exemplars = {key: value for key in text_masks.EXEMPLAR_KEYS if (value := kwargs.pop(key, None)) is not None}
        if text is not None or exemplars:  # each input becomes a dict; preprocess reads its text and exemplars
            if prompts:
                raise ValueError(
                    f"text and {', '.join(prompts)} cannot be combined in one call: text finds every instance of a "
                    "concept (Sam3Model); clicks and boxes segment one object each (Sam3TrackerModel or SAM 2 models)"
                )
            extra = sorted(set(kwargs) - set(TEXT_OPTIONS) - {"batch_size", "num_workers"})
            if extra and not set(extra) - set(AMG_DEFAULTS):
                raise ValueError(f"option(s) {', '.join(extra)} do not apply to text prompts; accepted: {', '.join(TEXT_OPTIONS)}")
            if isinstance(inputs, list):
                inputs = [self._with_prompts(image, {"text": text, **exemplars}) for image in inputs]
            elif not (isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor)) or hasattr(inputs, "convert")):
                raise ValueError("text given as a keyword needs a single image or a list of images; for generators and datasets yield dicts {'image': ..., 'text': ...}")
            else:
                inputs = self._with_prompts(inputs, {"text": text, **exemplars})
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
            elif not (isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor)) or hasattr(inputs, "convert")):
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
        text = None
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {"image", "text", *text_masks.EXEMPLAR_KEYS, *PROMPT_KEYS})
            if unknown or "image" not in inputs:
                raise ValueError(
                    f"an input dict needs 'image' and may hold {', '.join(PROMPT_KEYS)} or text (with exemplars, "
                    f"exemplar_labels); got keys {sorted(inputs)}"
                )
            image, prompts, text = inputs["image"], {k: inputs.get(k) for k in PROMPT_KEYS}, inputs.get("text")
            exemplars = {k: inputs.get(k) for k in text_masks.EXEMPLAR_KEYS}
            text = text_masks.text_with_exemplars(text, exemplars["exemplars"], exemplars["exemplar_labels"])
        else:
            image, prompts = inputs, {k: None for k in PROMPT_KEYS}
        name = type(self.model).__name__
        if text is not None:
            concepts = text_masks.check_concepts(text)
            text_masks.check_text_length(concepts, self.processor, self.model)
            if not text_masks.is_text_model(self.model):
                raise ValueError(f"text prompts need SAM 3's text model (Sam3Model, e.g. 'facebook/sam3'); this pipeline runs {name}")
            if any(value is not None for value in prompts.values()):
                raise ValueError("an input holds both text and point/box/mask prompts; give one kind per image")
            image = load_rgb(image, timeout=options.get("timeout"))
            found = text_masks.check_exemplars(exemplars["exemplars"], exemplars["exemplar_labels"], concepts, image.shape[:2])
            return {"image": image, "text": concepts, "exemplars": found}
        if text_masks.is_text_model(self.model):
            raise ValueError(
                f"{name} segments what a text prompt names: give text='a concept' (or a list of concepts); for clicks, "
                "boxes and automatic masks use SAM 3's tracker (Sam3TrackerModel) or a SAM 2 model"
            )
        given_text_options = sorted(set(options) & set(TEXT_ONLY_OPTIONS))
        if given_text_options:
            raise ValueError(f"{', '.join(given_text_options)} applies to text prompts (SAM 3's Sam3Model) only")
        image = load_rgb(image, timeout=options.get("timeout"))
        height, width = image.shape[:2]
        if any(value is not None for value in prompts.values()):
            # automatic-mode options (e.g. set when the pipeline was created) do not apply to prompted images
            normalized = prompted_masks.prepare_prompts(prompts, (height, width), self.image_model.mask_size)
            return {"image": image, "crop_boxes": [[0, 0, width, height]], "layer_idxs": [0], "prompts": normalized}
        opts = resolve_options(options)  # validates the combination early, before any model work
        crop_boxes, layer_idxs = amg.generate_crop_boxes((height, width), opts.crop_n_layers, opts.crop_overlap_ratio)
        if any(x1 <= x0 or y1 <= y0 for x0, y0, x1, y1 in crop_boxes):
            raise ValueError(
                f"crop_n_layers={opts.crop_n_layers} cuts this {height}x{width} image into crops of no pixels; "
                "use fewer crop layers (or a smaller crop_overlap_ratio) for small images"
            )
        return {"image": image, "crop_boxes": crop_boxes, "layer_idxs": layer_idxs, "prompts": None}

    # ------------------------------------------------------------------ forward
    def _forward(self, model_inputs, **options):
        """Encode every crop once and run its image's mode on it; accepts one item or a list.

        Returns, per item, the automatic mode's :class:`~sam2_pipelines.image.automatic.MaskData` or the
        prompted mode's arrays.
        """
        single = isinstance(model_inputs, dict)
        items = [model_inputs] if single else list(model_inputs)
        outputs = [[] for _ in items]
        opts = text_options(options)
        for i, item in enumerate(items):
            if "text" in item:
                outputs[i] = text_masks.segment_concepts(
                    self.model, self.processor, item["image"], item["text"], opts.score_threshold, opts.mask_threshold, opts.output_mode,
                    exemplars=item["exemplars"],
                )
        automatic = [item.get("prompts") is None and "text" not in item for item in items]
        generator = AutomaticMaskGenerator(self.image_model, resolve_options(options)) if any(automatic) else None
        prompted = prompted_options(options)
        tasks = [(i, c) for i, item in enumerate(items) if "text" not in item for c in range(len(item["crop_boxes"]))]
        progress = None
        if generator is not None and generator.options.progress:
            from tqdm.auto import tqdm

            total = sum(generator.num_batches(items[i]["layer_idxs"][c]) for i, c in tasks if automatic[i])
            progress = tqdm(total=total, desc="mask generation", unit="batch")
        chunk = max(1, len(items))
        for start in range(0, len(tasks), chunk):
            group = tasks[start : start + chunk]
            for (i, c), (embedding, resized_hw) in zip(group, self._encode_crops(items, group)):
                item = items[i]
                image_hw = item["image"].shape[:2]
                if automatic[i]:
                    crop = generator.process_crop(embedding, image_hw, item["crop_boxes"][c], item["layer_idxs"][c], resized_hw, progress)
                    outputs[i].append(crop)
                else:
                    outputs[i] = prompted_masks.predict(self.image_model, embedding, image_hw, resized_hw, item["prompts"], prompted)
        if progress is not None:
            progress.close()
        outputs = [generator.merge_crops(out) if auto else out for auto, out in zip(automatic, outputs)]
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
            pixel_values, resized = self.image_model.pixel_values(crops)
            for k, embedding, resized_hw in zip(missing, self.image_model.encode(pixel_values), resized):
                out[k] = (embedding, resized_hw)
        return out

    def session(self, image, batch_size: int | None = None):
        """Encode ``image`` once and return an :class:`~sam2_pipelines.image.session.ImageSession` for many calls.

        A list of images gives a list of sessions, encoded ``batch_size`` images per encoder pass (default:
        all at once). See :mod:`sam2_pipelines.image.session`.
        """
        from sam2_pipelines.image.session import ImageSession, open_sessions

        if self.image_model is None:
            raise ValueError(f"image sessions take clicks and boxes; {type(self.model).__name__} takes text: call the pipeline with text=...")

        if isinstance(image, (list, tuple)):
            return open_sessions(self, list(image), batch_size=batch_size)
        return ImageSession(self, image)

    # ------------------------------------------------------------------ postprocess
    def postprocess(self, model_outputs, **options):
        """Build Meta-style records (automatic mode) or return the prompted arrays / text records as they are."""
        if not isinstance(model_outputs, MaskData):
            return model_outputs
        keys = ("output_mode", "output_rle_mask", "output_bboxes_mask")
        return automatic_masks.records(model_outputs, **{key: options.get(key, AMG_DEFAULTS[key]) for key in keys})
