"""Encode an image once, then prompt it any number of times (Meta's ``set_image`` + ``predict``).

Annotation tools click many times on one image. ``generator.session(image)`` runs the image encoder once
and keeps that image's features; every :meth:`ImageSession.predict` (points, labels, boxes, mask logits,
as in the pipeline call) and :meth:`ImageSession.generate` (automatic mode) reuses them, so a click costs
one decoder pass. Results equal the pipeline call on the same image and prompts.

    with generator.session("truck.jpg") as session:
        first = session.predict(points=[[[500, 375]]], labels=[[1]])
        best = first["scores"][0].argmax()
        refined = session.predict(points=[[[500, 375], [1125, 625]]], labels=[[1, 0]],
                                  masks=first["logits"][:, best], multimask_output=False)
        everything = session.generate(points_per_side=16)

Memory: one image's features (and, on SAM 2-family models, what the fast decoder derives from them once);
:meth:`ImageSession.close` (or the ``with`` block) releases them.
"""

from __future__ import annotations

import torch

from sam2_pipelines.core.images import load_rgb
from sam2_pipelines.core.lifecycle import SessionLifecycle
from sam2_pipelines.image.options import PROMPT_KEYS, PROMPTED_OPTIONS, translate_builtin_keywords, validate_options
from sam2_pipelines.core.validation import check_int


class ImageSession(SessionLifecycle):
    """One image, encoded once, for any number of prompted calls and automatic runs.

    Args:
        generator: a ``mask-generation`` pipeline of this package.
        image: a path, URL, PIL image or uint8 array (read as the pipeline reads images).
    """

    _what = "image session"
    _reopen = "generator.session(image)"

    def __init__(self, generator, image, *, _encoded=None):
        super().__init__()
        self._generator = generator
        self._image = load_rgb(image)
        if _encoded is None:
            _encoded = _encode(generator, [self._image])[0]
        self._encoded = _encoded  # (embedding, resized size) of the whole image

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the image (as displayed)."""
        return tuple(self._image.shape[:2])

    def predict(self, points=None, labels=None, boxes=None, masks=None, *, multimask_output: bool = True, mask_threshold: float = 0.0) -> dict:
        """Prompted masks, as ``generator(image, points=..., labels=..., boxes=..., masks=...)`` returns them.

        Returns ``{"masks": bool (objects, k, H, W), "scores": (objects, k), "logits": (objects, k, h, w)}``;
        a row of ``logits`` can be given back as ``masks=`` to refine an object.
        """
        self._check_open()
        prompts = {key: value for key, value in zip(PROMPT_KEYS, (points, labels, boxes, masks)) if value is not None}
        if not prompts:
            raise ValueError("give at least one prompt (points with labels, boxes or masks); for every object use generate()")
        options = validate_options({"multimask_output": multimask_output, "mask_threshold": mask_threshold})
        return self._run({"image": self._image, **prompts}, options)

    def generate(self, **options) -> dict:
        """Automatic mask generation on the image (options as the pipeline's), reusing its features.

        Crop layers (``crop_n_layers > 0``) encode their crops; the whole image is not encoded again.
        """
        self._check_open()
        prompted = sorted(set(options) & set(PROMPT_KEYS))
        if prompted:
            raise ValueError(f"generate() is automatic mode; prompts ({', '.join(prompted)}) go to predict()")
        options = validate_options(translate_builtin_keywords(options))
        return self._run(self._image, options)

    def _run(self, inputs, options: dict) -> dict:
        generator = self._generator
        item = generator.preprocess(inputs, **options)
        item["encoded"] = {0: self._encoded}  # crop 0 is always the whole image
        if item["prompts"] is not None:
            options = {key: value for key, value in options.items() if key in PROMPTED_OPTIONS}
        with torch.inference_mode():
            output = generator._forward(item, **options)
        return generator.postprocess(output, **options)

    def _release(self) -> None:
        """Release the image and its features."""
        self._encoded = None
        self._image = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.size[0]}x{self.size[1]}"
        return f"ImageSession({state})"


def _encode(generator, images: list) -> list[tuple[dict, tuple[int, int]]]:
    pixel_values, resized = generator.image_model.pixel_values(images)
    with torch.inference_mode():
        embeddings = generator.image_model.encode(pixel_values)
    return list(zip(embeddings, resized))


def open_sessions(generator, images: list, batch_size: int | None = None) -> list[ImageSession]:
    """Sessions for several images, encoded ``batch_size`` at a time (default: all in one pass)."""
    if not images:
        raise ValueError("no images to open sessions for: the list is empty")
    batch_size = len(images) if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    arrays = [load_rgb(image) for image in images]  # every image is read (and checked) before any encoding
    sessions = []
    for start in range(0, len(arrays), batch_size):
        chunk = arrays[start : start + batch_size]
        for array, encoded in zip(chunk, _encode(generator, chunk)):
            sessions.append(ImageSession(generator, array, _encoded=encoded))
    return sessions
