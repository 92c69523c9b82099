"""Options of the ``mask-generation`` pipeline: their defaults, their checks, and the frozen values a run uses.

Users give options as keywords (to the call, or when creating the pipeline). :func:`validate_options` checks
the values given, before any model work; :func:`resolve_options` fills in the defaults (Meta's
``SAM2AutomaticMaskGenerator``'s) and builds the point grid of every crop layer, giving the frozen
:class:`AmgOptions` that automatic mode runs with; :class:`PromptedOptions` are the few that prompted mode reads.
transformers' built-in pipeline spells three options differently (:data:`BUILTIN_ALIASES`); both spellings work.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sam2_pipelines.image import amg
from sam2_pipelines.core.validation import OUTPUT_MODES, OutputMode, check_bool, is_int, is_real

#: Prompt keywords of prompted mode.
PROMPT_KEYS = ("points", "labels", "boxes", "masks")


@dataclasses.dataclass(frozen=True)
class PromptedOptions:
    """What prompted mode reads: how many masks per object, and where logits become mask pixels."""

    multimask_output: bool = True
    mask_threshold: float = 0.0
    #: seconds allowed for downloading an image given by URL (transformers' ``load_image``)
    timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class AmgOptions:
    """Options of automatic mode, defaults as Meta's ``SAM2AutomaticMaskGenerator`` (plus ``progress``,
    transformers' built-in outputs and the URL timeout), and ``layer_grids``: the normalised point grid of
    every crop layer, derived from ``points_per_side`` or ``point_grids`` by :func:`resolve_options`."""

    points_per_side: int | None = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: list | None = None
    min_mask_region_area: float = 0
    output_mode: OutputMode = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True
    progress: bool = False
    # transformers' built-in pipeline: extra outputs (COCO-uncompressed RLE, XYXY boxes) and the image-loading timeout
    output_rle_mask: bool = False
    output_bboxes_mask: bool = False
    timeout: float | None = None
    layer_grids: tuple = ()


@dataclasses.dataclass(frozen=True)
class TextOptions:
    """What text prompts (SAM 3) read: the score an instance needs, where mask logits become pixels (0.0:
    probability 0.5, SAM 3's default), the record format and the URL timeout."""

    score_threshold: float = 0.5
    mask_threshold: float = 0.0
    output_mode: OutputMode = "binary_mask"
    timeout: float | None = None


#: Options of automatic mode and their defaults, by name (what users may give; ``layer_grids`` is derived).
AMG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(AmgOptions) if field.name != "layer_grids"}

#: Options that also apply in prompted mode.
PROMPTED_OPTIONS = tuple(field.name for field in dataclasses.fields(PromptedOptions))

#: Options of text prompts (SAM 3), and the one of them automatic mode does not have.
TEXT_OPTIONS = tuple(field.name for field in dataclasses.fields(TextOptions))
TEXT_ONLY_OPTIONS = tuple(name for name in TEXT_OPTIONS if name not in AMG_DEFAULTS)

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


def validate_options(options: dict) -> dict:
    """Check the option values given by a user (only those given) and return them; raise ValueError otherwise."""
    unknown = sorted(set(options) - set(AMG_DEFAULTS) - set(TEXT_ONLY_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown keyword argument(s) {', '.join(unknown)} for mask-generation. Accepted: prompts "
            f"{', '.join(PROMPT_KEYS)}, text (with exemplars, exemplar_labels); options {', '.join(AMG_DEFAULTS)}; with text also "
            f"{', '.join(TEXT_ONLY_OPTIONS)}; and the pipeline's batch_size, num_workers"
        )

    def need(name, ok, accepted):
        if name in options and not ok(options[name]):
            raise ValueError(f"{name} must be {accepted}, got {options[name]!r}")

    need("points_per_side", lambda v: v is None or (is_int(v) and v >= 1), "a positive int or None (then point_grids is required)")
    need("points_per_batch", lambda v: is_int(v) and v >= 1, "a positive int")
    for name in ("stability_score_offset", "mask_threshold", "min_mask_region_area"):
        need(name, is_real, "a finite number")
    need("min_mask_region_area", lambda v: v >= 0, "a number >= 0 (an area in original-image pixels)")
    for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh", "score_threshold"):
        need(name, lambda v: is_real(v) and 0 <= v <= 1, "a number in [0, 1]")
    need("crop_n_layers", lambda v: is_int(v) and v >= 0, "an int >= 0")
    need("crop_overlap_ratio", lambda v: is_real(v) and 0 <= v < 1, "a number in [0, 1)")
    need("crop_n_points_downscale_factor", lambda v: is_int(v) and v >= 1, "an int >= 1")
    need("output_mode", lambda v: v in OUTPUT_MODES, f"one of {', '.join(OUTPUT_MODES)}")
    for name in ("use_m2m", "multimask_output", "progress", "output_rle_mask", "output_bboxes_mask"):
        if name in options:
            check_bool(options[name], name)
    need("timeout", lambda v: v is None or (is_real(v) and v > 0), "None or a positive number of seconds")
    if options.get("point_grids") is not None:
        grids = options["point_grids"]
        if not isinstance(grids, (list, tuple)) or not grids:
            raise ValueError("point_grids must be a non-empty list with one (N, 2) array of points in [0, 1] per crop layer")
        for i, grid in enumerate(grids):
            array = np.asarray(grid, dtype=np.float64)
            if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0 or not np.all((array >= 0) & (array <= 1)):
                raise ValueError(f"point_grids[{i}] must be an (N, 2) array of (x, y) points normalised to [0, 1], got shape {array.shape}")
    return options


def resolve_options(given: dict) -> AmgOptions:
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
    return AmgOptions(**options, layer_grids=tuple(grids))


def prompted_options(given: dict) -> PromptedOptions:
    """The options prompted mode reads, defaults filled in (automatic-mode options given too are not read)."""
    return PromptedOptions(**{name: given[name] for name in PROMPTED_OPTIONS if name in given})


def text_options(given: dict) -> TextOptions:
    """The options text prompts read, defaults filled in."""
    return TextOptions(**{name: given[name] for name in TEXT_OPTIONS if name in given})
