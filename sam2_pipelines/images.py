"""One rule for turning image files and PIL images into model input: what a viewer shows, as 8-bit RGB.

Every entry point (the ``mask-generation`` pipeline, video frames from folders or lists, the CLI and the
demo) reads images through :func:`read_image_file` / :func:`pil_to_rgb`, so:

* the EXIF orientation of phone photos is applied (as ``PIL.ImageOps.exif_transpose``), and prompts,
  masks and sizes all refer to the image as displayed;
* 16-bit images (greyscale PNG/TIFF) are scaled to 8 bits (``value / 257``), not clipped to white;
* palette, greyscale and alpha images become RGB; float images are refused with the fix to apply;
* unreadable files (missing, empty, not an image, truncated) raise ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: PIL modes holding 16-bit samples (``"I"`` is how older Pillow versions open 16-bit greyscale PNGs).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def pil_to_rgb(image, where: str = "image") -> np.ndarray:
    """A PIL image as displayed (EXIF orientation applied) -> contiguous ``(H, W, 3)`` uint8 RGB array."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{where} holds 32-bit integer values outside 0..65535; give an 8-bit or 16-bit image")
        grey = np.rint(values / 257.0).astype(np.uint8)
        array = np.repeat(grey[..., None], 3, axis=-1)
    elif image.mode == "F":
        raise ValueError(
            f"{where} holds floating-point pixels (PIL mode 'F'); convert it to 8 bits first, e.g. "
            "Image.fromarray((np.clip(values, 0, 1) * 255).round().astype(np.uint8))"
        )
    else:
        array = np.asarray(image.convert("RGB"))
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{where} is empty (size {array.shape[:2]})")
    return np.ascontiguousarray(array)


def read_image_file(path, where: str | None = None) -> np.ndarray:
    """Read an image file as displayed: ``(H, W, 3)`` uint8 RGB; ValueError naming the file otherwise."""
    from PIL import Image

    path = Path(os.fspath(path))
    where = where or f"image file {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist" if not path.exists() else f"{where} is not a file")
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_rgb(image, where)
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        size = path.stat().st_size
        detail = "the file is empty" if size == 0 else str(error)
        raise ValueError(f"could not read {where}: {detail}. Accepted: image files Pillow can open (JPEG, PNG, ...)") from None
