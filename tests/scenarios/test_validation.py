"""The shared checks of user-given values: what they accept, and messages that name the value and the choices."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from sam2_pipelines.core import validation


def test_check_int():
    assert validation.check_int(np.int64(3), "n", minimum=0) == 3 and type(validation.check_int(np.int64(3), "n")) is int
    for bad in (True, 1.0, "1", None):
        with pytest.raises(ValueError, match=f"n must be an integer, got {bad!r}"):
            validation.check_int(bad, "n")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        validation.check_int(0, "n", minimum=1)


def test_check_bool():
    assert validation.check_bool(np.bool_(True), "flag") is True
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match=f"flag must be True or False, got {bad!r}"):
            validation.check_bool(bad, "flag")


def test_check_choice_and_literal_types():
    assert validation.check_choice("both", "direction", validation.DIRECTIONS) == "both"
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'backward', 'both'; got 'sideways'"):
        validation.check_choice("sideways", "direction", validation.DIRECTIONS)
    with pytest.raises(ValueError, match="got \\['forward'\\]"):
        validation.check_choice(["forward"], "direction", validation.DIRECTIONS)  # unhashable: still a ValueError
    # the tuples are the Literal types' values
    assert validation.OUTPUTS == typing.get_args(validation.Output) == ("binary", "rle")
    assert validation.FRAME_RESIZES == ("bicubic", "bilinear")
    assert validation.OUTPUT_MODES == ("binary_mask", "uncompressed_rle", "coco_rle")


def test_is_int_and_is_real():
    assert validation.is_int(np.int32(2)) and not validation.is_int(True) and not validation.is_int(2.0)
    assert validation.is_real(0.5) and validation.is_real(np.float32(1)) and validation.is_real(3)
    assert not validation.is_real(float("nan")) and not validation.is_real(np.bool_(True)) and not validation.is_real("1")
