"""Video frames -> the model's input pixels, with Meta's frame loader or transformers' video processor.

A tracking session turns each ``(H, W, 3)`` uint8 RGB frame into a normalised ``(3, size, size)`` tensor when
the model needs it. Two resizes are offered (:data:`FRAME_RESIZES`):

* ``"bicubic"`` (the default): exactly Meta's ``SAM2VideoPredictor`` frame loader
  (``sam2.utils.misc.load_video_frames`` / ``_load_img_as_tensor``): PIL's bicubic resize of the uint8 image
  to the square input size, division by 255 (in float64, as numpy does), cast to float32, then ImageNet
  mean/std normalisation in float32. Tracking results follow Meta's predictor bit for bit on its inputs.
* ``"bilinear"``: transformers' ``Sam2VideoVideoProcessor`` (bilinear resize on tensors), what
  ``Sam2VideoProcessor.init_video_session`` feeds the model.

The two differ by up to about 0.5 per normalised pixel on sharp edges, enough to move masks (IoU ~0.97 after
a few tracked frames), so the choice matters for comparisons with either reference.

The input size and the mean/std are read from the loaded processor (``processor.video_processor``), never
hard-coded.
"""

from __future__ import annotations

import numpy as np
import torch

from sam2_pipelines.core.validation import FRAME_RESIZES, check_choice

#: Default of ``frame_resize``.
DEFAULT_FRAME_RESIZE = "bicubic"


def check_frame_resize(frame_resize) -> str:
    """Return ``frame_resize`` if it is one of :data:`FRAME_RESIZES`, else raise ValueError."""
    return check_choice(frame_resize, "frame_resize", FRAME_RESIZES)


def input_size(video_processor) -> tuple[int, int]:
    """``(height, width)`` of the model input configured in a ``Sam2VideoVideoProcessor`` (its ``size``)."""
    size = video_processor.size
    if isinstance(size, int):
        return size, size
    height, width = size["height"], size["width"]
    return int(height), int(width)


def bicubic_frame_pixels(frame: np.ndarray, size: tuple[int, int], mean, std) -> torch.Tensor:
    """One frame preprocessed exactly as Meta's video predictor loads it.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB array.
        size: ``(height, width)`` of the model input (Meta: ``image_size`` x ``image_size``).
        mean, std: per-channel normalisation in ``[0, 1]`` units (ImageNet's in every SAM 2 processor).

    Returns:
        float32 ``(3, height, width)`` tensor: ``(bicubic_resize(frame) / 255 - mean) / std``, with the same
        operations in the same precisions as ``sam2.utils.misc._load_img_as_tensor`` followed by
        ``load_video_frames_from_jpg_images``' in-place normalisation, hence bit-identical to Meta's.
    """
    from PIL import Image

    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame must be a uint8 (H, W, 3) RGB array, got {frame.dtype} {frame.shape}")
    height, width = size
    resized = np.array(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))
    scaled = resized / 255.0  # float64, as in Meta's loader
    pixels = torch.from_numpy(scaled).permute(2, 0, 1).to(torch.float32)  # Meta copies into a float32 buffer
    pixels -= torch.tensor(mean, dtype=torch.float32)[:, None, None]
    pixels /= torch.tensor(std, dtype=torch.float32)[:, None, None]
    return pixels


def bilinear_frame_pixels(frame: np.ndarray, video_processor) -> torch.Tensor:
    """One frame through transformers' ``Sam2VideoVideoProcessor`` (as ``init_video_session`` does).

    Returns the processor's ``(3, height, width)`` tensor (float32) unchanged.
    """
    return video_processor(videos=np.asarray(frame)[None], return_tensors="pt").pixel_values_videos[0, 0]


def frame_pixels(frame: np.ndarray, processor, frame_resize: str = DEFAULT_FRAME_RESIZE) -> torch.Tensor:
    """Model input pixels of one ``(H, W, 3)`` uint8 RGB frame, float32 ``(3, height, width)``.

    Args:
        frame: the frame.
        processor: the model's ``Sam2VideoProcessor``; its ``video_processor`` gives the input size and the
            normalisation mean/std (``"bicubic"``) or does the whole preprocessing (``"bilinear"``).
        frame_resize: ``"bicubic"`` (Meta's frame loader) or ``"bilinear"`` (transformers' processor).
    """
    check_frame_resize(frame_resize)
    video_processor = processor.video_processor
    if frame_resize == "bilinear":
        return bilinear_frame_pixels(frame, video_processor)
    return bicubic_frame_pixels(frame, input_size(video_processor), video_processor.image_mean, video_processor.image_std)
