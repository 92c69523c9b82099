"""Where a tracking session's frames come from: a video read lazily (with read-ahead), or a stream of pushed frames.

The model reads a frame's pixels when it encodes the frame, never before, so no video is decoded up front and
at most a few frames are held: for a video, the frames the bounded read-ahead decodes and preprocesses on a
worker thread while the model works (:mod:`sam2_pipelines.video.read_ahead`); for a stream, the latest pushed frame.
"""

from __future__ import annotations

import numpy as np
import torch

from sam2_pipelines.video.frame_pixels import frame_pixels
from sam2_pipelines.video.read_ahead import ReadAhead
from sam2_pipelines.io.video import FrameSource, open_video


class FrameFeed:
    """The frames of one tracking session as model input pixels, loaded on demand.

    Args:
        video: anything :func:`~sam2_pipelines.io.video.open_video` accepts, or ``None`` for a stream.
        processor: the model's ``Sam2VideoProcessor`` (input size, normalisation).
        frame_resize: ``"bicubic"`` or ``"bilinear"`` (:func:`~sam2_pipelines.video.frame_pixels.frame_pixels`).
        device, dtype: where and in which dtype the pixels go.
        read_ahead: frames decoded ahead of the model while propagating (videos only).
    """

    def __init__(self, video, processor, frame_resize: str, device: torch.device, dtype: torch.dtype, read_ahead: int):
        self.streaming = video is None
        self.source: FrameSource | None = None if video is None else open_video(video)
        self._owns_source = video is not None and not isinstance(video, FrameSource)  # closed by close()
        self.height = None if video is None else self.source.height
        self.width = None if video is None else self.source.width
        self._processor = processor
        self._frame_resize = frame_resize
        self._device = device
        self._dtype = dtype
        self.pushed = 0  # streamed frames so far
        self.latest = None  # preprocessed latest streamed frame
        self._reader = ReadAhead(self._read, depth=0 if self.streaming else read_ahead + 1)

    def __len__(self) -> int:
        """Frames of the video (a stream: frames pushed so far)."""
        return self.pushed if self.streaming else len(self.source)

    def pixels(self, frame: np.ndarray) -> torch.Tensor:
        """One ``(H, W, 3)`` uint8 frame -> model input pixels on the device, in the model's dtype (computed in
        float32 with the session's ``frame_resize``, then cast)."""
        return frame_pixels(frame, self._processor, self._frame_resize).to(self._device, dtype=self._dtype)

    def load(self, frame_idx: int) -> torch.Tensor:
        """Frame ``frame_idx``'s pixels (read ahead if asked for with :meth:`want`)."""
        if self.streaming:
            if frame_idx != self.pushed - 1 or self.latest is None:
                raise RuntimeError(f"streamed frame {frame_idx} is no longer held")
            return self.latest
        return self._reader.get(frame_idx)

    def want(self, frames: list[int]) -> None:
        """Frames about to be loaded, in order: read them on the worker thread (at most the read-ahead depth)."""
        self._reader.want(frames)

    def push(self, frame: np.ndarray) -> int:
        """Streaming: append a checked RGB frame; returns its index."""
        self.latest = self.pixels(frame)
        self.pushed += 1
        return self.pushed - 1

    def _read(self, frame_idx: int) -> torch.Tensor:
        return self.pixels(self.source[frame_idx])

    def close(self) -> None:
        """Stop reading ahead and close the video if this feed opened it (a given FrameSource stays open)."""
        self._reader.close()
        if self._owns_source and self.source is not None:
            self.source.close()
