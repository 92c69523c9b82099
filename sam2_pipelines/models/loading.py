"""Which ``transformers`` model classes each of our tasks loads, and how a checkpoint is resolved.

``transformers.pipeline(task, model=PATH_OR_ID)`` calls ``from_pretrained`` on the classes registered
for the task. The classes below pick the right SAM-family model from the checkpoint's config.
"""

from __future__ import annotations

import transformers

from sam2_pipelines.models import families

#: Default checkpoint of both tasks (pipeline defaults, CLI, example and demo).
DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"


#: What to do with an image-only checkpoint given to video-object-tracking (shared by every check of it).
VIDEO_CHECKPOINT_ADVICE = (
    "An image-only checkpoint (no memory weights) works with 'mask-generation'; for tracking use a video checkpoint: "
    "a Hub id such as 'facebook/sam2.1-hiera-tiny', a Meta .pt file, or 'sam2-pipelines convert CKPT OUT --kind video'."
)



def is_image_model(model) -> bool:
    """True when ``model`` is an image-side SAM-family model handled by our mask-generation pipeline."""
    return families.is_class(model, "image", text=False)


def is_video_model(model) -> bool:
    """True when ``model`` is a SAM 2-style video model handled by our video-object-tracking pipeline."""
    return families.is_class(model, "video")


class AutoModelForVideoObjectTracking:
    """Loads the video model (``Sam2VideoModel``, ``EdgeTamVideoModel``, ``Sam3TrackerVideoModel``) that fits a
    checkpoint's config."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load the video model for ``pretrained_model_name_or_path`` (a Hub id or a local directory)."""
        kwargs.pop("_from_pipeline", None)
        config = kwargs.pop("config", None)
        if config is None or isinstance(config, str):
            config = transformers.AutoConfig.from_pretrained(pretrained_model_name_or_path)
        name = families.video_class_for(config.model_type)
        if name is None:
            raise ValueError(
                f"video-object-tracking needs a SAM 2-style video model; {pretrained_model_name_or_path!r} has "
                f"model_type {config.model_type!r}. Accepted model types: {', '.join(sorted(t for f in families.FAMILIES for t in f.model_types))}."
            )
        model, info = getattr(transformers, name).from_pretrained(
            pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
        )
        if info.get("missing_keys") and config.model_type in families.image_model_types():
            raise ValueError(
                f"{pretrained_model_name_or_path!r} is an image-only checkpoint (model_type {config.model_type!r}, no memory "
                f"weights: {len(info['missing_keys'])} of the video model's weights are missing), so it cannot track "
                f"objects through a video. {VIDEO_CHECKPOINT_ADVICE}"
            )
        return model


#: Which converted model each task builds from a Meta ``.pt`` checkpoint.
_CHECKPOINT_KIND_FOR_TASK = {"mask-generation": "image", "video-object-tracking": "video"}


def pipeline(task: str | None = None, model=None, **kwargs):
    """``transformers.pipeline`` that also accepts a Meta SAM 2 / 2.1 ``.pt`` checkpoint as ``model``.

    ``transformers.pipeline`` resolves a config from the model string before anything else, so it cannot
    read a ``.pt`` file. This function converts such a checkpoint in memory with
    :func:`sam2_pipelines.models.convert.load_checkpoint` (``Sam2Model`` for ``"mask-generation"``,
    ``Sam2VideoModel`` for ``"video-object-tracking"``) and hands the model and its processor to
    ``transformers.pipeline``. Every other ``model`` (Hub id, directory, model instance) is passed
    through unchanged, as are all keyword arguments.

    Example::

        import sam2_pipelines

        generator = sam2_pipelines.pipeline("mask-generation", model="checkpoints/sam2.1_hiera_tiny.pt")
        tracker = sam2_pipelines.pipeline("video-object-tracking", model="checkpoints/sam2.1_hiera_tiny.pt")

    Raises:
        ValueError: a ``.pt`` checkpoint given for a task other than the two above, or together with
            ``config=`` (the config comes from the checkpoint).
    """
    from sam2_pipelines.models.convert import is_meta_checkpoint_path, load_checkpoint

    if is_meta_checkpoint_path(model):
        kind = _CHECKPOINT_KIND_FOR_TASK.get(task)
        if kind is None:
            raise ValueError(
                f"a Meta SAM 2 checkpoint ({model!r}) can be loaded for the tasks "
                f"{', '.join(_CHECKPOINT_KIND_FOR_TASK)}; got task={task!r}"
            )
        if kwargs.get("config") is not None:
            raise ValueError("config= cannot be combined with a Meta .pt checkpoint: the config is derived from its weights")
        kwargs.pop("config", None)
        model, processor = load_checkpoint(model, kind=kind)
        dtype = kwargs.get("dtype", "auto")
        if isinstance(dtype, str) and dtype != "auto":
            import torch

            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r}; accepted: 'auto', a torch.dtype or its name such as 'float16'")
            dtype = getattr(torch, dtype)
        if dtype not in ("auto", None):
            # transformers.pipeline applies dtype= only to models it loads itself
            model = model.to(dtype)
        if kwargs.get("processor") is None:
            kwargs["processor"] = processor
    return transformers.pipeline(task, model=model, **kwargs)


#: Sub-modules of a video model compiled by :func:`compile_model` (those with fixed input shapes).
COMPILED_PARTS = ("vision_encoder", "mask_decoder", "memory_encoder")


def compile_model(model) -> None:
    """Compile ``model``'s image encoder, mask decoder and memory encoder in place with ``torch.compile``.

    What Meta's predictor users get with ``vos_optimized=True``: the first calls compile (slow), later ones
    run the compiled code. Parameters and ``state_dict`` keys are unchanged (``nn.Module.compile``). Memory
    attention stays eager: its number of memory tokens changes while the memory bank fills.
    """
    for name in COMPILED_PARTS:
        part = getattr(model, name, None)
        if part is not None:
            part.compile()
