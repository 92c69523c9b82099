"""Display orientation of video files: the container's display matrix, applied to the decoded pixels as players do.

Phones store portrait video as landscape frames plus a display matrix ("rotate 90") in the container; players
turn the frames when showing them. :class:`~sam2_pipelines.io.video.VideoFileSource` turns them the same way, so
sizes, click coordinates, masks and the files written from them all refer to the video as players show it.

FFmpeg's display matrix (``AV_FRAME_DATA_DISPLAYMATRIX``, nine 32-bit integers, 16.16 fixed point) maps a stored
pixel at column ``p``, row ``q`` to the displayed column ``a*p + c*q`` and row ``b*p + d*q`` (plus an offset), with
``a, b, c, d`` its entries 0, 1, 3 and 4. Quarter turns and mirrorings (the eight orientations of EXIF) are applied
exactly; any other angle is refused (:func:`display_transform`) rather than tracked in an orientation no player
shows. All functions are pure.
"""

from __future__ import annotations

import math

import numpy as np

#: What to do with a video whose rotation is not a multiple of 90 degrees (said in the error).
RE_ENCODE_ADVICE = "re-encode it with the rotation applied to the pixels (e.g. `ffmpeg -i in.mp4 out.mp4`, which does so by default)"

#: Entries of a normalised display matrix within this of 0 count as 0 (FFmpeg treats angles within 1 degree of a
#: quarter turn as the quarter turn).
_TOLERANCE = math.sin(math.radians(1))

#: ``(transpose, flip_rows, flip_cols)`` that leaves a frame as stored.
AS_STORED = (False, False, False)


def display_transform(matrix, where: str = "video") -> tuple[bool, bool, bool]:
    """``(transpose, flip_rows, flip_cols)`` that turns a stored frame into the displayed one (see :func:`to_display`).

    ``matrix`` is the display matrix (9 integers, FFmpeg's layout) or ``None`` (no matrix: shown as stored).
    A matrix that is not a quarter turn, a mirroring or both (within 1 degree) raises ValueError naming ``where``
    and the angle.
    """
    if matrix is None:
        return AS_STORED
    a, b, _, c, d = (float(v) for v in list(matrix)[:5])
    scale = math.sqrt(abs(a * d - b * c)) or 1.0
    a, b, c, d = (v / scale for v in (a, b, c, d))
    small = [abs(v) < _TOLERANCE for v in (a, b, c, d)]
    if small == [False, True, True, False]:  # column from column, row from row
        return False, d < 0, a < 0
    if small == [True, False, False, True]:  # column from row, row from column: a transpose first
        return True, b < 0, c < 0
    angle = -math.degrees(math.atan2(b, a))  # as av_display_rotation_get: counter-clockwise degrees
    raise ValueError(
        f"{where} has a display rotation of {angle:.4g} degrees; only multiples of 90 degrees (0, 90, 180, 270, -90, "
        f"mirrored or not) are applied to the frames: {RE_ENCODE_ADVICE}"
    )


def to_display(frame: np.ndarray, transform: tuple[bool, bool, bool]) -> np.ndarray:
    """``frame`` (``(H, W, ...)``, as stored) as displayed under ``transform`` (:func:`display_transform`):
    contiguous, a copy unless the transform leaves it as stored."""
    transpose, flip_rows, flip_cols = transform
    if not (transpose or flip_rows or flip_cols):
        return frame
    shown = frame.swapaxes(0, 1) if transpose else frame
    shown = shown[::-1] if flip_rows else shown
    shown = shown[:, ::-1] if flip_cols else shown
    return np.ascontiguousarray(shown)


def frame_display_matrix(frame) -> np.ndarray | None:
    """The display matrix of a decoded ``av.VideoFrame`` (its side data), or ``None`` when it has none."""
    for item in getattr(frame, "side_data", ()):
        if getattr(getattr(item, "type", None), "name", None) == "DISPLAYMATRIX":
            return np.frombuffer(bytes(item), dtype=np.int32)[:9].copy()
    return None
