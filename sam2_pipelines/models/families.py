"""The model families this package serves: the one place that names their transformers classes.

Each :class:`Family` says which classes serve each task, what the models can do and which fast paths apply.
Adding a family means one entry here (and, where its internals differ, one adapter function in
:mod:`sam2_pipelines.models.internals`).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Family:
    """One SAM-family model as transformers ships it.

    Attributes:
        name: short name.
        image_class / video_class: the class serving ``mask-generation`` / ``video-object-tracking`` (or None).
        model_types: ``config.model_type`` values whose checkpoints load as ``video_class``.
        image_model_types: those that are image-only checkpoints (a video model built from one lacks memory weights).
        text: prompts are text concepts (SAM 3's detector and text tracker), not clicks.
        keeps_aspect: the processor resizes the longest side and pads (SAM 1), instead of a square resize.
        resizes_floats: pixels are scaled to [0, 1] before resizing, as Meta's ``SAM2Transforms``.
        hq: the decoder also reads the encoder's intermediate embeddings (SAM-HQ).
        fast_decoder: SAM 2's mask decoder structure: the many-prompt decoder of :mod:`..kernels.fast_decoder` applies.
        fast_tracking: the shared-work tracking step of :mod:`..kernels.tracking_step` applies.
    """

    name: str
    image_class: str | None = None
    video_class: str | None = None
    model_types: tuple[str, ...] = ()
    image_model_types: tuple[str, ...] = ()
    text: bool = False
    keeps_aspect: bool = False
    resizes_floats: bool = False
    hq: bool = False
    fast_decoder: bool = False
    fast_tracking: bool = False


FAMILIES = (
    Family("sam2", "Sam2Model", "Sam2VideoModel", ("sam2_video", "sam2"), ("sam2",), resizes_floats=True, fast_decoder=True, fast_tracking=True),
    Family("edgetam", "EdgeTamModel", "EdgeTamVideoModel", ("edgetam_video", "edgetam"), ("edgetam",), resizes_floats=True, fast_decoder=True),
    Family("sam3-tracker", "Sam3TrackerModel", "Sam3TrackerVideoModel", ("sam3_tracker_video", "sam3_tracker"), ("sam3_tracker",), fast_decoder=True),
    Family("sam", "SamModel", keeps_aspect=True),
    Family("sam-hq", "SamHQModel", keeps_aspect=True, hq=True),
    Family("sam3-text", "Sam3Model", "Sam3VideoModel", ("sam3_video",), text=True),
)


def named(name: str) -> Family:
    """The family called ``name`` (e.g. ``"sam2"``)."""
    return next(f for f in FAMILIES if f.name == name)


def family(model) -> Family | None:
    """The family of a model instance (by its class), or None for a model of no family here."""
    name = type(model).__name__
    return next((f for f in FAMILIES if name in (f.image_class, f.video_class)), None)


def has(model, ability: str, side: str | None = None) -> bool:
    """Whether ``model`` belongs to a family with ``ability`` (a :class:`Family` flag), optionally only as its
    ``"image"`` or ``"video"`` class."""
    found = family(model)
    if found is None or not getattr(found, ability):
        return False
    return side is None or type(model).__name__ == getattr(found, f"{side}_class")


def image_classes(text: bool | None = None) -> tuple[str, ...]:
    """Classes of the ``mask-generation`` side (``text``: only text models, or only prompted ones)."""
    return tuple(f.image_class for f in FAMILIES if f.image_class and (text is None or f.text == text))


def video_classes(text: bool | None = None) -> tuple[str, ...]:
    """Classes of the ``video-object-tracking`` side (``text`` as in :func:`image_classes`)."""
    return tuple(f.video_class for f in FAMILIES if f.video_class and (text is None or f.text == text))


def video_class_for(model_type: str) -> str | None:
    """The video class that loads a checkpoint of ``config.model_type``, or None."""
    return next((f.video_class for f in FAMILIES if model_type in f.model_types), None)


def image_model_types() -> tuple[str, ...]:
    """``config.model_type`` values of image-only checkpoints."""
    return tuple(t for f in FAMILIES for t in f.image_model_types)


def is_class(model, side: str, text: bool | None = None) -> bool:
    """Whether ``model`` is one of the ``side`` (``"image"`` / ``"video"``) classes (``text`` as above)."""
    classes = image_classes(text) if side == "image" else video_classes(text)
    return type(model).__name__ in classes
