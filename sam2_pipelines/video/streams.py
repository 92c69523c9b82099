"""What a streamed frame brings: the frame itself and the prompts given with it, checked before any work."""

from __future__ import annotations

from sam2_pipelines.core.prompts import normalize_video_prompt
from sam2_pipelines.io.video import to_rgb_frame


def checked_push(frame, prompts, index: int, size: tuple[int, int] | None) -> tuple:
    """``(array, size, prompts)`` of the frame pushed as ``index`` to a stream of frames of ``size`` (None before
    the first): an RGB array of the stream's size, and prompts normalised for that frame (their ``"frame"`` may be
    omitted; if given it must be ``index``). ValueError otherwise."""
    array = to_rgb_frame(frame, where=f"streamed frame {index}")
    if size is not None and tuple(array.shape[:2]) != tuple(size):
        raise ValueError(f"streamed frame {index} has size {array.shape[:2]} but the stream's frames are {tuple(size)}")
    size = tuple(array.shape[:2])
    checked = []
    for prompt in list(prompts or []):
        if isinstance(prompt, dict) and "frame" not in prompt:
            prompt = {**prompt, "frame": index}
        prompt = normalize_video_prompt(prompt, size)
        if prompt["frame"] != index:
            raise ValueError(f"a prompt passed with streamed frame {index} must be for that frame, got frame {prompt['frame']}")
        checked.append(prompt)
    return array, size, checked
