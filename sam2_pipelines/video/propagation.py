"""Which frames a ``propagate()`` call tracks, in which order: a pure plan of passes."""

from __future__ import annotations

from sam2_pipelines.core.validation import DIRECTIONS, check_choice, check_int


def plan_passes(direction: str, start_frame, max_frames, num_frames: int, prompted: list[int]) -> list[tuple[list[int], bool]]:
    """The passes ``[(frames, reverse), ...]`` of a propagation; ValueError for bad arguments.

    ``start_frame`` defaults to the earliest prompted frame (``"backward"``: the latest); ``max_frames`` bounds
    each direction (the start frame included); ``"both"`` goes forward from the start, then backward from the
    frame before it.
    """
    check_choice(direction, "direction", DIRECTIONS)
    if start_frame is None:
        start_frame = prompted[-1] if direction == "backward" else prompted[0]
    else:
        start_frame = check_int(start_frame, "start_frame", minimum=0)
        if start_frame >= num_frames:
            raise ValueError(f"start_frame {start_frame} is past the end of the video ({num_frames} frames: 0..{num_frames - 1})")
    if max_frames is not None:
        max_frames = check_int(max_frames, "max_frames", minimum=1)
    limit = max_frames if max_frames is not None else num_frames
    forward = list(range(start_frame, min(start_frame + limit, num_frames)))
    backward_from = start_frame - 1 if direction == "both" else start_frame
    backward = list(range(backward_from, max(backward_from - limit, -1), -1))
    passes = []
    if direction in ("forward", "both"):
        passes.append((forward, False))
    if direction in ("backward", "both") and backward:
        passes.append((backward, True))
    return passes
