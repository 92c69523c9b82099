"""Checks of values users give, in one place: each raises ``ValueError`` saying what was given and what is accepted.

The choice-valued options have ``Literal`` types (for editors and type checkers) and tuples of their values
(for checks and messages), the tuple derived from the type so the two cannot disagree.
"""

from __future__ import annotations

import numbers
from typing import Literal, get_args

import numpy as np

Direction = Literal["forward", "backward", "both"]
Output = Literal["binary", "rle"]
FrameResize = Literal["bicubic", "bilinear"]
OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle"]

#: Propagation directions of video tracking.
DIRECTIONS: tuple[str, ...] = get_args(Direction)
#: Mask formats of video tracking results.
OUTPUTS: tuple[str, ...] = get_args(Output)
#: How video frames become model input pixels (see :mod:`sam2_pipelines.video.frame_pixels`).
FRAME_RESIZES: tuple[str, ...] = get_args(FrameResize)
#: Mask formats of mask-generation records (transformers' and Meta's names).
OUTPUT_MODES: tuple[str, ...] = get_args(OutputMode)


def is_int(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A finite real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value))


def check_int(value, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as an int (Python or numpy integer, not bool), or raise ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a bool if it is one (Python or numpy), else raise ValueError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError naming ``name`` and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
